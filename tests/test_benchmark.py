"""The benchmark tool runs end to end on a tiny arch and reports every figure it promises."""
import json
import sys

from helpers import run


def test_benchmark_tiny(tmp_path):
    out = run([sys.executable, 'tools/benchmark.py', '--arch', 'atto', '--size', '64',
               '--repeats', '2', '--warmup', '1', '--out', str(tmp_path),
               '--methods', 'full', 'frozen', 'lora', 'liera', 'liera_exp', 'peft_hira',
               'liera_peft', 'plain_infer', 'merged_infer'])
    assert 'device: cpu' in out
    data = json.loads((tmp_path / 'benchmark.json').read_text())
    rows = {r['method']: r for r in data['rows']}
    try:
        import peft  # noqa: F401
        assert 'peft_hira' in rows and data['ratios']['liera_peft / peft_hira (time)'] > 0
    except Exception:
        assert 'PEFT is not installed' in out and 'peft_hira' not in rows
    for m in ('full', 'frozen', 'lora', 'liera', 'liera_exp', 'plain_infer', 'merged_infer'):
        r = rows[m]
        assert r['median_s'] > 0 and r['min_s'] <= r['median_s'] <= r['max_s']
        assert r['peak_mb'] > 0
    assert rows['frozen']['trainable'] == 0 and rows['plain_infer']['trainable'] == 0
    assert rows['liera']['trainable'] == rows['lora']['trainable'] == rows['liera_exp'][
        'trainable'] < rows['full']['trainable']
    for k in ('liera / full (time)', 'liera / lora (time)', 'liera_exp / liera (time)',
              'merged_infer / plain_infer (time)', 'liera / full (peak memory)'):
        assert data['ratios'][k] > 0
    table = (tmp_path / 'benchmark.md').read_text()
    assert '| liera |' in table and '| ratio | measured | target |' in table
