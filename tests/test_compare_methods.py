"""tools/compare_methods.py: real train + test runs, results saved as they end, restart skips
what is done, failures reported; table statistics and the plot."""
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT
from tiny_demo import TRANSFER
from tiny_demo import tiny_transfer_cfg as tiny_method

TOOL = os.path.join(ROOT, 'tools', 'compare_methods.py')


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args],
                          capture_output=True,
                          text=True,
                          timeout=600)


@pytest.fixture(scope='module')
def comparison(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('compare')
    methods = [
        tiny_method(tmp, 'lora', 'lora.py'),
        tiny_method(tmp, 'liera', 'liera_taylor.py'),
        # fails in the train subprocess (the optimizer refuses it)
        tiny_method(tmp, 'broken', 'lora.py', 'optim_wrapper = dict(optimizer=dict(lr=-1.0))\n'),
        # fails before any run: the model does not build
        tiny_method(tmp, 'unbuildable', 'lora.py',
                    "model = dict(backbone=dict(adapter=dict(mode='bogus')))\n")
    ]
    work = tmp / 'work'
    first = run_tool(*methods, '--seeds', '0', '--work-dir', str(work))
    return tmp, methods, work, first


def test_runs_end_to_end_and_writes_json_csv_table_and_plot(comparison):
    tmp, methods, work, done = comparison
    assert done.returncode == 1, done.stdout + done.stderr  # two methods failed
    out = done.stdout
    assert '[1/4] lora seed 0: training and testing' in out
    assert '[2/4] liera seed 0: bbox' in out and 'ETA' in out
    assert '[3/4] broken seed 0: FAILED (train exit status 1: ValueError: Invalid learning ' \
        'rate: -1.0); log: ' in out
    assert "[4/4] unbuildable seed 0: FAILED (the config does not build: AdapterConfigError: " \
        "adapter: unknown LieRA mode 'bogus'" in out
    assert '2 of 4 runs failed: broken seed 0; unbuildable seed 0' in out

    results = json.loads((work / 'results.json').read_text())
    runs = {r['method']: r for r in results['runs']}
    assert list(runs) == ['lora', 'liera', 'broken', 'unbuildable']
    for name in ('lora', 'liera'):
        r = runs[name]
        assert r['status'] == 'ok' and r['seed'] == 0
        assert 0 <= r['bbox_mAP'] <= 1 and 0 <= r['segm_mAP'] <= 1
        assert r['sec_per_iter'] > 0 and r['peak_memory_mib'] > 100
        assert r['memory_kind'] == 'cpu peak RSS (train process)'
        # rank-8 factors on every layer of ConvNeXt-atto; LoRA and LieRA: the same shapes
        assert 0 < r['backbone_trainable_params'] < r['trainable_params']
        ckpt = work / name / 'seed_0' / 'iter_3.pth'
        assert ckpt.is_file() and (work / name / 'seed_0' / 'test').is_dir()
    assert runs['lora']['trainable_params'] == runs['liera']['trainable_params']
    assert runs['broken']['status'] == runs['unbuildable']['status'] == 'failed'
    assert 'Invalid learning rate' in runs['broken']['error']
    assert "unknown LieRA mode 'bogus'" in runs['unbuildable']['error']
    assert results['meta']['commit'] and results['meta']['torch']

    csv_lines = (work / 'results.csv').read_text().splitlines()
    assert csv_lines[0].startswith('method,seed,status,bbox_mAP,segm_mAP')
    assert [ln.split(',')[:3] for ln in csv_lines[1:]] == [['lora', '0', 'ok'],
                                                           ['liera', '0', 'ok'],
                                                           ['broken', '0', 'failed'],
                                                           ['unbuildable', '0', 'failed']]

    table = (work / 'table.md').read_text().splitlines()
    rows = {ln.split('|')[1].strip(): ln for ln in table if ln.startswith('| ')}
    assert set(rows) == {'Method', 'lora', 'liera', 'broken', 'unbuildable'}
    assert f"{runs['lora']['bbox_mAP']:.3f}" in rows['lora']
    assert '**failed**: seed 0: train exit status 1: ValueError: Invalid learning rate' \
        in rows['broken']
    assert "unknown LieRA mode 'bogus'" in rows['unbuildable']

    from PIL import Image
    with Image.open(work / 'plot.png') as im:
        assert im.format == 'PNG' and im.size[0] > 600 and im.size[1] > 300


def test_plot_has_one_marker_per_method_that_ran(comparison):
    from mmliera.cli.compare import plot, summarise
    tmp, methods, work, _ = comparison
    results = json.loads((work / 'results.json').read_text())
    rows = summarise(results, [(n, None) for n in ('lora', 'liera', 'broken', 'unbuildable')])
    fig = plot(rows, str(tmp / 'again.png'))
    for ax in fig.axes:  # bbox and segm panels: one errorbar (marker) per method that ran
        assert [c.get_label() for c in ax.containers] == ['lora', 'liera']
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ['lora', 'liera']


def test_restart_skips_what_is_done_and_retries_failures(comparison):
    tmp, methods, work, _ = comparison
    ckpt = work / 'lora' / 'seed_0' / 'iter_3.pth'
    stamp = ckpt.stat().st_mtime_ns
    before = json.loads((work / 'results.json').read_text())['runs']
    again = run_tool(*methods, '--seeds', '0', '--work-dir', str(work))
    assert again.returncode == 1
    assert '[1/4] lora seed 0: done earlier' in again.stdout
    assert '[2/4] liera seed 0: done earlier' in again.stdout
    assert '[3/4] broken seed 0: training and testing' in again.stdout  # failed: run again
    assert ckpt.stat().st_mtime_ns == stamp  # not trained again
    after = json.loads((work / 'results.json').read_text())['runs']
    assert after[:2] == before[:2]
    # another seed of one method in the same folder: only it runs, the rest is kept
    more = run_tool(methods[0], '--seeds', '0', '1', '--work-dir', str(work))
    assert more.returncode == 0, more.stdout + more.stderr
    assert '[1/2] lora seed 0: done earlier' in more.stdout
    assert '[2/2] lora seed 1: bbox' in more.stdout
    runs = json.loads((work / 'results.json').read_text())['runs']
    assert [(r['method'], r['seed']) for r in runs] == [('lora', 0), ('lora', 1), ('liera', 0),
                                                        ('broken', 0), ('unbuildable', 0)]
    table = (work / 'table.md').read_text()
    assert '| lora |' in table and '| liera |' in table and '| broken |' in table
    lora_row = next(ln for ln in table.splitlines() if ln.startswith('| lora |'))
    assert ' ± ' in lora_row and '| 0, 1 |' in lora_row  # two seeds: mean ± std


def test_changed_config_is_run_again(tmp_path, comparison):
    from mmliera.cli.compare import fingerprint
    tmp, methods, work, _ = comparison
    a = fingerprint(methods[0], {})
    assert fingerprint(methods[0], {}) == a
    assert fingerprint(methods[0], {'train_cfg.max_iters': 4}) != a
    assert fingerprint(methods[1], {}) != a


def test_table_statistics_and_failures():
    from mmliera.cli.compare import markdown_table, summarise
    runs = [
        dict(
            method='a',
            config='a.py',
            seed=s,
            status='ok',
            bbox_mAP=v,
            segm_mAP=v / 2,
            sec_per_iter=1.0,
            peak_memory_mib=10.0,
            memory_kind='cpu peak RSS',
            trainable_params=120,
            backbone_trainable_params=20) for s, v in ((0, 0.2), (1, 0.4), (2, 0.6))
    ]
    runs.append(
        dict(
            method='b',
            config='b.py',
            seed=0,
            status='failed',
            error='error: x|y',
            trainable_params=100,
            backbone_trainable_params=0))
    rows = summarise(dict(runs=runs), [('a', 'a.py'), ('b', 'b.py')])
    mean, std = rows[0]['bbox_mAP']
    assert mean == pytest.approx(0.4) and std == pytest.approx(0.2)  # sample std (n - 1)
    table = markdown_table(rows)
    assert '| a | 120 (20) | 0.400 ± 0.200 | 0.200 ± 0.100 | 1.000 ± 0.000 |' in table
    assert '| b | 100 (0) | - | - | - | - | none; **failed**: seed 0: error: x\\|y |' in table


@pytest.mark.parametrize('args,msg', [
    (['missing.py'], 'method missing: config missing.py does not exist'),
    ([
        os.path.join(TRANSFER, 'lora.py'), 'x=' + os.path.join(TRANSFER, 'lora.py'),
        'lora=' + os.path.join(TRANSFER, 'dora.py')
    ], "method name 'lora' is given twice"),
    ([os.path.join(TRANSFER, 'lora.py'), '--seeds', '1', '1'], '--seeds has repeats'),
])
def test_bad_requests_are_refused_before_anything_runs(tmp_path, args, msg):
    from mmliera.cli.compare import ComparisonError, main
    with pytest.raises(ComparisonError) as e:
        main(args + ['--work-dir', str(tmp_path / 'w')])
    assert str(e.value).startswith(msg)
    assert not (tmp_path / 'w').exists()


def test_a_bad_request_is_one_error_line(tmp_path):
    done = run_tool('missing.py', '--work-dir', str(tmp_path / 'w'))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        'error: method missing: config missing.py does not exist'
    ]
