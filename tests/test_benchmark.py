"""The benchmark tool runs end to end on a tiny arch and reports every figure it promises."""
import importlib.util
import json
import re
import sys

import pytest

from helpers import run

METHODS = ['full', 'frozen', 'lora', 'liera', 'liera_exp', 'peft_hira', 'liera_peft',
           'plain_infer', 'merged_infer']
RATIOS = {  # name -> (numerator, denominator, which figure)
    'liera / full (time)': ('liera', 'full', 'median_s'),
    'liera / full (peak memory)': ('liera', 'full', 'peak_mb'),
    'liera / lora (time)': ('liera', 'lora', 'median_s'),
    'liera_exp / liera (time)': ('liera_exp', 'liera', 'median_s'),
    'liera_exp / liera (peak memory)': ('liera_exp', 'liera', 'peak_mb'),
    'liera / full (step memory above the built model)': ('liera', 'full', 'above_model_mb'),
    'merged_infer / plain_infer (time)': ('merged_infer', 'plain_infer', 'median_s'),
    'liera_peft / peft_hira (time)': ('liera_peft', 'peft_hira', 'median_s'),
}


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('bench')
    out = run([sys.executable, 'tools/benchmark.py', '--device', 'cpu', '--arch', 'atto',
               '--size', '64', '--repeats', '2', '--warmup', '1', '--out', str(out_dir),
               '--methods', *METHODS])
    data = json.loads((out_dir / 'benchmark.json').read_text())
    return out, data, (out_dir / 'benchmark.md').read_text()


def test_rows_and_counts(bench):
    out, data, table = bench
    assert 'device: cpu' in out and 'device cpu' in data['setting']
    have_peft = importlib.util.find_spec('peft') is not None
    expected = [m for m in METHODS if have_peft or not m.startswith('peft_')]
    if not have_peft:
        assert 'PEFT is not installed' in out
    rows = {r['method']: r for r in data['rows']}
    assert list(rows) == expected
    for m, r in rows.items():
        assert len(r) == 7 and r['peak_mb'] > r['above_model_mb'] >= 0, r
        assert r['min_s'] <= r['median_s'] <= r['max_s'], r
        # each row of the markdown table shows the JSON's figures
        line = (f"| {m} | {r['trainable']:,} | {r['median_s']:.3f} | {r['min_s']:.3f}-"
                f"{r['max_s']:.3f} | {r['peak_mb']:.0f} | {r['above_model_mb']:.0f} |")
        assert line in table.splitlines(), line
    assert rows['frozen']['trainable'] == 0 and rows['plain_infer']['trainable'] == 0
    assert rows['merged_infer']['trainable'] == rows['liera']['trainable']  # factors, merged
    # same factor shapes for the three adapter modes; atto: 3.4M parameters in all
    assert rows['liera']['trainable'] == rows['lora']['trainable'] == \
        rows['liera_exp']['trainable']
    assert 0 < rows['liera']['trainable'] < rows['full']['trainable']
    assert 3_000_000 < rows['full']['trainable'] < 4_000_000
    if have_peft:  # the layers PEFT accepts: no depthwise convs
        assert 0 < rows['liera_peft']['trainable'] < rows['liera']['trainable']


def test_ratios_are_the_rows_arithmetic(bench):
    _, data, table = bench
    rows = {r['method']: r for r in data['rows']}
    for name, (a, b, key) in RATIOS.items():
        got = data['ratios'][name]
        if a not in rows or b not in rows:
            assert got is None, name
            continue
        assert got == pytest.approx(rows[a][key] / rows[b][key], rel=1e-12), name
        target = data['targets'][name]
        verdict = 'ok' if got <= target else 'missed'
        assert f'| {name} | {got:.3f} | <= {target:.2f} ({verdict}) |' in table, name
    assert set(data['ratios']) == set(RATIOS)
    assert re.search(r'ConvNeXt-V2-atto, batch 1, 3x64x64, rank 16, device cpu', table)
