"""projects/liera_study/tools/compare_methods.py: per-method grids chosen on val, final runs on
test, paired
intervals, diagnostics, resume; unit tests of the grid, the selection rule, the statistics and
the plot, plus one real (tiny) comparison."""
import contextlib
import io
import json
import math
import os
import shutil
import subprocess

import pytest
from helpers import ROOT, run, tool_in_process
from tiny_demo import TRANSFER
from tiny_demo import tiny_transfer_cfg as tiny_method


def run_tool(*args, runs=None):
    """The comparison driver in this process: (exit code, stdout + stderr). Its training runs
    are subprocesses as always; with ``runs`` (:func:`_stand_ins`) they are stand-ins, given to
    the tool's ``main`` (the study's ``train`` / ``test`` seams), called as the tool calls it."""
    if runs is None:
        code, out, err = tool_in_process('compare_methods', *args)
        return code, out + err
    from mmliera.cli import exit_on_user_error
    from projects.liera_study.liera_study.compare import main
    buf = io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(buf), \
            contextlib.redirect_stderr(buf):
        try:
            code = exit_on_user_error(main)([str(a) for a in args],
                                            train=runs.train,
                                            test=runs.test)
        except SystemExit as e:
            code = e.code
    return code, buf.getvalue()


# ---------------------------------------------------------------------------------------------
# units: grid, selection, pairs, statistics, plot


def test_grid_per_method_overrides_the_general_one_and_keys_resolve():
    from mmengine.config import Config

    from projects.liera_study.liera_study.compare.grid import (parse_grid, resolve_key, settings,
                                                               slug)
    grids = parse_grid(['lr_mult=0.1,1,10', 'full:lr_mult=0.3,1', 'a,full:x=True,no'],
                       ['a', 'full', 'b'])
    assert grids['b'] == {'lr_mult': [0.1, 1, 10]}
    assert grids['full'] == {'lr_mult': [0.3, 1], 'x': [True, 'no']}
    assert settings(grids['full'])[:2] == [(('lr_mult', 0.3), ('x', True)),
                                           (('lr_mult', 0.3), ('x', 'no'))]
    assert settings({}) == [()] and slug(()) == 'default'
    assert slug((('a.b.lr_mult', 3), )) == 'lr_mult=3'
    cfg = Config.fromfile(os.path.join(TRANSFER, 'lora.py'))
    full_key = 'optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult'
    assert resolve_key(cfg, 'lr_mult', 'lora') == full_key
    assert resolve_key(cfg, full_key, 'lora') == full_key
    assert resolve_key(cfg, 'max_iters', 'lora') == 'max_iters'  # a top-level key as it is


@pytest.mark.parametrize('specs,msg', [
    (['lr_mult'], 'write [METHOD[,METHOD]:]KEY=V1,V2'),
    (['nope:lr_mult=1,2'], "no method named 'nope'"),
    (['lr_mult=1,1'], 'a value is given twice'),
])
def test_bad_grids_are_refused(specs, msg):
    from projects.liera_study.liera_study.compare.errors import ComparisonError
    from projects.liera_study.liera_study.compare.grid import parse_grid
    with pytest.raises(ComparisonError, match=msg.replace('[', r'\[').replace(']', r'\]')):
        parse_grid(specs, ['a'])


def test_unknown_or_ambiguous_keys_name_the_fix():
    from projects.liera_study.liera_study.compare.errors import ComparisonError
    from projects.liera_study.liera_study.compare.grid import resolve_key
    cfg = dict(a=dict(lr=1), b=dict(lr=2), c=dict(d=3))
    with pytest.raises(ComparisonError, match=r'several keys ending in \.lr: a\.lr, b\.lr'):
        resolve_key(cfg, 'lr', 'm')
    with pytest.raises(ComparisonError, match="has no config key 'zz'"):
        resolve_key(cfg, 'zz', 'm')
    assert resolve_key(cfg, 'd', 'm') == 'c.d'


def test_selection_takes_the_best_val_score_and_ties_go_to_the_lower_value():
    from projects.liera_study.liera_study.compare.grid import select
    k = 'lr_mult'
    assert select({((k, 0.1), ): 0.2, ((k, 1), ): 0.4, ((k, 10), ): 0.3}) == ((k, 1), )
    assert select({((k, 10), ): 0.4, ((k, 0.3), ): 0.4, ((k, 3), ): 0.4}) == ((k, 0.3), )
    assert select({}) is None


def test_a_choice_at_the_grids_edge_is_flagged_in_the_grid_table():
    from projects.liera_study.liera_study.compare.grid import at_edge, edge_note, settings
    from projects.liera_study.liera_study.compare.report import grid_table
    k = 'optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult'
    grid = settings({k: [0.1, 1, 10, 100]})
    assert at_edge(((k, 100), ), grid) == [(k, 100, 'highest')]
    assert at_edge(((k, 0.1), ), grid) == [(k, 0.1, 'lowest')]
    assert at_edge(((k, 10), ), grid) == []  # inside the grid
    assert at_edge(((k, 30), ), settings({k: [3, 30]})) == []  # two values: a plain choice
    assert at_edge((('type', 'b'), ), settings({'type': ['a', 'b', 'c']})) == []  # no order
    product = settings({k: [1, 3, 10], 'lr': [1e-3, 1e-2, 1e-1]})
    assert at_edge(((k, 3), ('lr', 1e-1)), product) == [('lr', 1e-1, 'highest')]
    note = edge_note(at_edge(((k, 100), ), grid))
    assert note == "lr_mult=100 is the grid's highest value"
    runs = [
        dict(
            method='m',
            seed=0,
            screen=True,
            status='trained',
            setting_label=f'lr_mult={v}',
            val=dict(bbox_mAP=v / 1000, segm_mAP=0.0)) for v in (0.1, 1, 10, 100)
    ]
    table = grid_table(dict(runs=runs), [('m', 'm.py')], {'m': 'lr_mult=100'}, {'m': note})
    row, = [line for line in table.splitlines() if '**chosen**' in line]
    assert row.startswith('| m | lr_mult=100 |')
    assert "(lr_mult=100 is the grid's highest value: the best may lie beyond it)" in row
    assert 'beyond' not in grid_table(dict(runs=runs), [('m', 'm.py')], {'m': 'lr_mult=100'})


def test_the_grid_table_lists_settings_low_to_high_when_a_grid_was_extended_later():
    from projects.liera_study.liera_study.compare.report import grid_table
    runs = [
        dict(
            method='m',
            seed=seed,
            screen=True,
            status='trained',
            setting_label=f'lr_mult={v},type={t}',
            setting=[['lr_mult', v], ['type', t]],
            val=dict(bbox_mAP=v / 10, segm_mAP=0.0))
        for v, t, seed in ((0.03, 'b', 0), (0.3, 'a', 0), (0.01, 'a', 1), (0.01, 'a', 0),
                           (0.1, 'a', 0), (0.03, 'a', 0))
    ]
    rows = [
        line.split(' | ')[1:3]
        for line in grid_table(dict(runs=runs), [('m', 'm.py')], {}).splitlines()
        if line.startswith('| m |')
    ]
    assert [(label, int(seed)) for label, seed in rows] == [('lr_mult=0.01,type=a', 0),
                                                            ('lr_mult=0.01,type=a', 1),
                                                            ('lr_mult=0.03,type=a', 0),
                                                            ('lr_mult=0.03,type=b', 0),
                                                            ('lr_mult=0.1,type=a', 0),
                                                            ('lr_mult=0.3,type=a', 0)]


def test_pairs_split_where_both_sides_are_methods():
    from projects.liera_study.liera_study.compare import parse_pairs
    from projects.liera_study.liera_study.compare.errors import ComparisonError
    names = ['lora', 'liera-t', 'full']
    assert parse_pairs(['liera-t-lora', 'full-lora'], names) == [('liera-t', 'lora'),
                                                                 ('full', 'lora')]
    with pytest.raises(ComparisonError, match="--diff 'x-lora'"):
        parse_pairs(['x-lora'], names)


def test_interval_arithmetic():
    from projects.liera_study.liera_study.compare.stats import bootstrap_interval, t_interval
    lo, hi = t_interval([0.01, 0.03, 0.02])
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2) from the tables
    assert lo == pytest.approx(0.02 - half) and hi == pytest.approx(0.02 + half)
    assert t_interval([0.5]) is None and bootstrap_interval([0.5]) is None
    assert bootstrap_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)
    # two seeds: resampled means are 0, 0.5, 1 (1/4, 1/2, 1/4): the 95 % interval is [0, 1]
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    a = bootstrap_interval([0.01, 0.05, 0.02, 0.04, 0.03])
    assert a == bootstrap_interval([0.01, 0.05, 0.02, 0.04, 0.03])  # same input, same interval
    assert 0.01 < a[0] < 0.03 < a[1] < 0.05


def _runs():
    """Final runs of three methods (a: 3 seeds, b and c: 2, b and c with equal counts)."""
    runs = []
    for method, params, scores in (('a', 0, (0.2, 0.4, 0.6)), ('b', 50, (0.5, 0.7)), ('c', 50,
                                                                                      (0.45, 0.8))):
        for seed, v in enumerate(scores):
            runs.append(
                dict(
                    method=method,
                    config=f'{method}.py',
                    seed=seed,
                    final=True,
                    status='ok',
                    setting_label='lr_mult=1',
                    bbox_mAP=v,
                    segm_mAP=v / 2,
                    sec_per_iter=1.0,
                    peak_memory_mib=10.0,
                    memory_kind='cpu',
                    trainable_params=100 + params,
                    backbone_trainable_params=params,
                    weight_change={'stage 0': 0.1 * (seed + 1)}))
    runs.append(
        dict(
            method='c',
            config='c.py',
            seed=2,
            final=True,
            status='failed',
            setting_label='lr_mult=1',
            error='error: x|y'))
    runs.append(
        dict(
            method='b',
            config='b.py',
            seed=0,
            screen=True,
            status='trained',
            setting_label='lr_mult=10',
            val=dict(bbox_mAP=0.9, segm_mAP=0.8)))
    return dict(runs=runs)


def test_summary_pairs_and_tables():
    from projects.liera_study.liera_study.compare import (markdown_table, paired_differences,
                                                          summarise)
    from projects.liera_study.liera_study.compare.report import diagnostics_table, pairs_table
    rows = summarise(_runs(), [('a', 'a.py'), ('b', 'b.py'), ('c', 'c.py')])
    mean, std = rows[0]['bbox_mAP']
    assert mean == pytest.approx(0.4) and std == pytest.approx(0.2)  # sample std (n - 1)
    assert rows[1]['seeds'] == [0, 1]  # the screening run at another setting is not final
    assert rows[2]['failed'] == [(2, 'error: x|y')]
    table = markdown_table(rows)
    assert '| a | lr_mult=1 | 100 (0) | 0.400 ± 0.200 | 0.200 ± 0.100 | 1.000 ± 0.000 |' in table
    assert '0, 1; **failed**: seed 2: error: x\\|y |' in table
    diffs = paired_differences(rows, [('b', 'a'), ('c', 'b')])
    bbox = {d['pair']: d for d in diffs if d['metric'] == 'bbox_mAP'}
    assert bbox['b − a']['seeds'] == [0, 1]  # seeds present in both
    assert bbox['b − a']['diffs'] == pytest.approx([0.3, 0.3])
    assert bbox['c − b']['diffs'] == pytest.approx([-0.05, 0.1])
    assert bbox['c − b']['mean'] == pytest.approx(0.025)
    text = pairs_table(diffs)
    assert '| b − a | bbox mAP | 2 | +0.300 |' in text and '0: -0.050, 1: +0.100' in text
    assert '| a | 2.00e-01 | 100 |' not in diagnostics_table(rows)  # (no params_by_part)
    assert '| a | 2.00e-01 |' in diagnostics_table(rows)  # mean of 0.1, 0.2, 0.3
    assert 'CPU threads per run: not recorded.' in table and 'at a time' not in table
    mixed = _runs()
    for r in mixed['runs']:
        r['threads'] = 1 if r['method'] != 'b' or r['seed'] else 2
    table = markdown_table(summarise(mixed, [('a', 'a.py'), ('b', 'b.py'), ('c', 'c.py')]))
    assert 'CPU threads per run differ: a: 1; b: 1, 2; c: 1.' in table, table


def test_a_run_stopped_by_the_user_is_interrupted_not_failed(tmp_path, monkeypatch):
    from projects.liera_study.liera_study.compare import runs

    def stopped(cmd, log_path, env=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, '_run', stopped)
    record = dict(seed=0)
    with pytest.raises(KeyboardInterrupt):
        runs.train(record, 'unused.py', {}, str(tmp_path / 'run'))
    assert record['status'] == 'interrupted' and 'error' not in record
    from projects.liera_study.liera_study.compare.stats import summarise
    results = dict(runs=[dict(record, method='m', setting_label='default', final=True)])
    row, = summarise(results, [('m', 'm.py')])
    assert row['failed'] == [] and row['pending'] == [0]


def test_a_run_that_detects_nothing_says_so_in_the_grid(tmp_path, monkeypatch):
    """mmdet's CocoMetric logs an error line and no metric when a model detects nothing (a
    screening run at a far too high learning rate): the run is trained, has no val figure, and
    the grid says why instead of a bare '-'."""
    from projects.liera_study.liera_study.compare import runs
    from projects.liera_study.liera_study.compare.report import grid_table
    run_dir = tmp_path / 'run'

    def detects_nothing(cmd, log_path, env=None):
        with open(log_path, 'a') as log:
            log.write('12/05 09:04:38 - mmengine - ERROR - .../coco_metric.py - compute_metrics'
                      ' - 465 - The testing results of the whole dataset is empty.\n')
        (run_dir / 'iter_3.pth').write_bytes(b'')
        (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_3.pth'))
        return 0, 1.0

    monkeypatch.setattr(runs, '_run', detects_nothing)
    record = dict(seed=0)
    runs.train(record, 'unused.py', {}, str(run_dir))
    assert record['status'] == 'trained' and 'val' not in record, record
    assert 'no detections' in record['val_note']
    rows = [
        dict(record, method='m', screen=True, setting_label='lr_mult=100'),
        dict(record, method='m', screen=True, setting_label='lr_mult=30', val_note=None)
    ]
    table = grid_table(dict(runs=rows), [('m', 'm.py')], {})
    assert '| m | lr_mult=100 | 0 | - | - | no detections at its validation' in table, table
    assert '| m | lr_mult=30 | 0 | - | - | trained, no val figure (see its log) |' in table
    # a log without mmdet's line: no reason is made up
    run_dir2 = tmp_path / 'run2'
    monkeypatch.setattr(
        runs,
        '_run',
        lambda cmd, log, env=None: ((run_dir2 / 'last_checkpoint').write_text('x.pth'),
                                    (0, 1.0))[1])
    record2 = dict(seed=0, val_note='stale')
    runs.train(record2, 'unused.py', {}, str(run_dir2))
    assert record2['status'] == 'trained' and 'val_note' not in record2, record2


class _StandIns:
    """Stand-ins for the tool's training and testing (subprocesses), given to its ``main`` as
    the study's ``train`` and ``test``: a run's val bbox and segm mAP are ``val(method,
    lr_mult)``; methods in ``fail`` fail in training; ``trained`` lists the methods trained, in
    order. A test may put its own ``train`` (e.g. one wrapping this one) in its place."""

    def __init__(self, val, fail=()):
        self.val, self.fail, self.trained = val, fail, []
        self.train, self.test = self.fake_train, self.fake_test

    def fake_train(self,
                   record,
                   config,
                   options,
                   run_dir,
                   metrics,
                   env=None,
                   resume=False,
                   val_iters=()):
        os.makedirs(run_dir, exist_ok=True)
        name = os.path.basename(config)[:-3]
        self.trained.append(name)
        log = os.path.join(run_dir, 'run.log')
        if name in self.fail:
            record.update(status='failed', log=log, train_s=1.0, error='train exit status 1: boom')
            return record
        lr_mult = next((v for k, v in options.items() if k.endswith('lr_mult')), 1)
        score = self.val(name, lr_mult)
        ckpt = os.path.join(run_dir, 'iter_3.pth')
        open(ckpt, 'w').close()
        record.update(
            status='trained',
            log=log,
            train_s=1.0,
            sec_per_iter=0.1,
            peak_memory_mib=1.0,
            memory_kind='cpu',
            checkpoint=ckpt,
            val_curve=[[3, score, score]],
            val=dict(bbox_mAP=score, segm_mAP=score))
        return record

    def fake_test(self, record, config, options, metrics, env=None):
        record.update(status='ok', test_s=1.0, bbox_mAP=0.5, segm_mAP=0.5)
        return record


def _stand_ins(val, fail=()):
    """:class:`_StandIns` (pass it to :func:`run_tool` as ``runs``)."""
    return _StandIns(val, fail)


def _two_methods(tmp_path):
    return [
        tiny_method(tmp_path, n, 'lora.py' if n == 'lora' else 'liera_taylor.py')
        for n in ('lora', 'liera')
    ]


def test_a_choice_at_the_grids_edge_is_warned_about_and_kept(tmp_path):
    """Screening with stand-in runs: lora's best is the grid's highest value (warned about,
    noted in grid.md), liera's lies inside (no warning); the best is chosen either way."""
    shape = dict(lora={1: 0.1, 3: 0.2, 10: 0.3}, liera={1: 0.1, 3: 0.3, 10: 0.2})
    runs = _stand_ins(lambda name, lr_mult: shape[name][lr_mult])
    methods = _two_methods(tmp_path)
    work = tmp_path / 'work'
    code, out = run_tool(
        *methods,
        '--grid',
        'lr_mult=1,3,10',
        '--seeds',
        '0',
        '--no-diagnostics',
        '--work-dir',
        str(work),
        runs=runs)
    assert code == 0, out
    assert 'lora: chose lr_mult=10' in out and 'liera: chose lr_mult=3' in out
    warned = [line for line in out.splitlines() if line.startswith('WARNING')]
    assert warned == [
        "WARNING: lora: lr_mult=10 is the grid's highest value: the best may lie "
        'beyond it; extend the grid that way (--grid) and run again (what is done '
        'is kept)'
    ], out
    grid = (work / 'grid.md').read_text()
    assert "| lora | lr_mult=10 | 0 | 0.300 | 0.300 | **chosen** (lr_mult=10 is the grid's " \
        'highest value: the best may lie beyond it) |' in grid
    assert '| liera | lr_mult=3 | 0 | 0.300 | 0.300 | **chosen** |' in grid


def test_several_screening_seeds_choose_by_the_mean_val_figure(tmp_path):
    """--screen-seeds 0 1: every setting trains on both seeds, the best mean val figure wins
    (seed 0 alone would pick another), and each screening run of the chosen setting is the
    final run of its seed (tested, not trained again)."""
    val = {(1, 0): 0.30, (1, 1): 0.10, (3, 0): 0.25, (3, 1): 0.25, (3, 2): 0.2}  # (lr_mult, seed)
    runs = _stand_ins(lambda name, lr_mult: 0.0)

    def train(record, config, options, run_dir, metrics, **kw):
        runs.fake_train(record, config, options, run_dir, metrics, **kw)
        lr_mult = next(v for k, v in options.items() if k.endswith('lr_mult'))
        score = val[(lr_mult, record['seed'])]
        record.update(val_curve=[[3, score, score]], val=dict(bbox_mAP=score, segm_mAP=score))
        return record

    runs.train = train
    work = tmp_path / 'work'
    code, out = run_tool(
        tiny_method(tmp_path, 'lora', 'lora.py'),
        '--grid',
        'lr_mult=1,3',
        '--seeds',
        '0',
        '1',
        '2',
        '--screen-seeds',
        '0',
        '1',
        '--no-diagnostics',
        '--work-dir',
        str(work),
        runs=runs)
    assert code == 0, out
    assert 'lora: chose lr_mult=3 (val bbox mAP 0.250' in out, out
    # 2 settings x 2 screening seeds, then only seed 2's final is trained
    assert runs.trained == ['lora'] * 5
    results = json.loads((work / 'results.json').read_text())
    assert results['meta']['screen_seeds'] == [0, 1]
    finals = sorted((r['seed'], r['setting_label'], r.get('screen', False)) for r in results['runs']
                    if r.get('final'))
    assert finals == [(0, 'lr_mult=3', True), (1, 'lr_mult=3', True), (2, 'lr_mult=3', False)]


def test_screening_runs_tested_sealed_become_finals_without_their_checkpoints(tmp_path):
    """--test-screening: each screening run of a final seed is tested right after it trains
    (its checkpoint then goes, as a session's end takes it); the figures are sealed (printed
    nowhere, in no table, the record stays 'trained'); the chosen setting's runs become its
    final runs without a new test or training, the others stay sealed."""
    val = {1: 0.30, 3: 0.10}
    runs = _stand_ins(lambda name, lr_mult: val[lr_mult])
    tested = []

    def test(record, config, options, metrics, env=None):
        lr_mult = next(v for k, v in options.items() if k.endswith('lr_mult'))
        tested.append((lr_mult, record['seed']))
        figure = 0.4 + lr_mult / 100 + record['seed'] / 1000
        record.update(status='ok', test_s=1.0, bbox_mAP=figure, segm_mAP=figure)
        if record.get('screen'):  # the checkpoint is gone before the finals
            os.remove(os.path.join(work, record['checkpoint']))
        return record

    runs.test = test
    work = tmp_path / 'work'
    code, out = run_tool(
        tiny_method(tmp_path, 'lora', 'lora.py'),
        '--grid',
        'lr_mult=1,3',
        '--seeds',
        '0',
        '1',
        '2',
        '--screen-seeds',
        '0',
        '1',
        '--test-screening',
        '--no-diagnostics',
        '--work-dir',
        str(work),
        runs=runs)
    assert code == 0, out
    assert 'lora: chose lr_mult=1' in out
    # 4 sealed tests, then seed 2's final; 2 settings x 2 seeds + seed 2 trained
    assert tested == [(1, 0), (3, 0), (1, 1), (3, 1), (1, 2)], tested
    assert runs.trained == ['lora'] * 5, runs.trained
    assert 'sealed' in out and '0.43' not in out, out
    results = json.loads((work / 'results.json').read_text())
    finals = sorted((r['seed'], r['bbox_mAP']) for r in results['runs'] if r.get('final'))
    assert finals == [(0, pytest.approx(0.41)), (1, pytest.approx(0.411)),
                      (2, pytest.approx(0.412))], finals
    others = [r for r in results['runs'] if r['setting_label'] == 'lr_mult=3']
    assert len(others) == 2 and all(
        r['status'] == 'trained' and 'bbox_mAP' not in r and r['sealed']['bbox_mAP'] > 0.43
        for r in others), others
    for name in ('table.md', 'results.csv', 'grid.md', 'pairs.md'):
        if (work / name).exists():
            assert '0.43' not in (work / name).read_text(), name
    assert '0.41' in (work / 'table.md').read_text()


@pytest.mark.slow  # four passes of the tool (~35 s)
def test_failed_runs_and_runs_from_another_start_are_run_again(tmp_path):
    """With stand-in runs: a failed run is never "done" (a restart trains it again); a run
    recorded from another starting checkpoint (weights sha256) is trained again, and a run
    whose study holds runs from another start says so."""
    from projects.liera_study.liera_study.compare import fingerprint
    methods = _two_methods(tmp_path)
    assert fingerprint(methods[0], {}) == fingerprint(methods[0], {})
    assert fingerprint(methods[0], {'train_cfg.max_iters': 4}) != fingerprint(methods[0], {})
    work = tmp_path / 'work'
    args = [*methods, '--seeds', '0', '--no-diagnostics', '--work-dir', str(work)]
    stand_ins = _stand_ins(lambda name, lr_mult: 0.2, fail={'liera'})
    trained = stand_ins.trained
    code, out = run_tool(*args, runs=stand_ins)
    assert code == 1 and 'liera seed 0: FAILED (train exit status 1: boom)' in out, out
    assert trained == ['lora', 'liera']
    code, out = run_tool(*args, runs=stand_ins)  # the failed run again, the finished one not
    assert code == 1 and trained[2:] == ['liera'] and 'lora seed 0: done earlier' in out, out
    stand_ins = _stand_ins(lambda name, lr_mult: 0.2)
    trained = stand_ins.trained
    code, out = run_tool(*args, runs=stand_ins)
    assert code == 0 and trained == ['liera'], out
    results = json.loads((work / 'results.json').read_text())
    runs = {r['method']: r for r in results['runs']}
    assert runs['lora']['start_sha256'] == runs['liera']['start_sha256']
    assert len(runs['lora']['start_sha256']) == 64
    for r in results['runs']:
        r['start_sha256'] = 'f' * 64  # earlier runs, another starting backbone
    # kept, never run again, not compared: another method's, and another schedule's
    history = [
        dict(runs['lora'], method='old', start_sha256='e' * 64),
        dict(runs['lora'], fingerprint='0' * 64, seed=7, start_sha256='d' * 64)
    ]
    results['runs'] += history
    (work / 'results.json').write_text(json.dumps(results))
    code, out = run_tool(*args, runs=stand_ins)
    assert code == 0 and trained == ['liera', 'lora', 'liera'], out  # not "done earlier"
    warned = [line for line in out.splitlines() if 'WARNING: started from a backbone' in line]
    assert len(warned) == 1, out  # once, not for every run
    assert 'ffffffffffffffff...' in warned[0] and 'eeee' not in warned[0] and \
        'dddd' not in warned[0], warned


def test_added_runs_of_another_schedule_do_not_replace_this_studys_own(tmp_path):
    """--add-runs with a tested run under the same key (method, setting, seed, phase) but of
    another schedule (an earlier pass): the study's own tested run of this plan stays and is
    not trained again; an added run only fills a key the study has no run for."""
    runs = _stand_ins(lambda name, lr_mult: 0.2)
    trained = runs.trained
    lora = tiny_method(tmp_path, 'lora', 'lora.py')
    work = tmp_path / 'work'
    args = [
        lora, '--seeds', '0', '1', '--no-diagnostics', '--final-cfg-options',
        'train_cfg.max_iters=4', '--work-dir',
        str(work)
    ]
    code, out = run_tool(*args, runs=runs)
    assert code == 0 and trained == ['lora', 'lora'], out
    earlier = json.loads((work / 'results.json').read_text())
    for r in earlier['runs']:
        r.update(fingerprint='0' * 64, bbox_mAP=0.9)  # another schedule's runs
    (tmp_path / 'earlier.json').write_text(json.dumps(earlier))
    own = json.loads((work / 'results.json').read_text())
    own['runs'] = [r for r in own['runs'] if r['seed'] == 0]  # seed 1: only the added one
    (work / 'results.json').write_text(json.dumps(own))
    code, out = run_tool(*args, '--add-runs', str(tmp_path / 'earlier.json'), runs=runs)
    assert code == 0 and 'lora seed 0: done earlier (test bbox mAP 0.500' in out, out
    assert trained == ['lora', 'lora',
                       'lora'], out  # seed 1 again: the added one is not this plan's


def test_report_only_rewrites_the_outputs_from_the_records_and_trains_nothing(tmp_path):
    """--report-only after a study of seed 0: another --diff pair and a seed not made yet give
    new pairs.md rows and a count of the runs left out, nothing trained or tested; the study's
    own command stays in meta. Without results.json, or with --rerun, it is refused."""
    shape = dict(lora={1: 0.1, 3: 0.2}, liera={1: 0.2, 3: 0.1})
    runs = _stand_ins(lambda name, lr_mult: shape[name][lr_mult])
    trained = runs.trained
    methods = _two_methods(tmp_path)
    work = tmp_path / 'work'
    args = [*methods, '--grid', 'lr_mult=1,3', '--no-diagnostics', '--work-dir', str(work)]
    code, out = run_tool(*args, '--seeds', '0', '1', '--diff', 'liera-lora', runs=runs)
    assert code == 0 and len(trained) == 6, out  # 2 x 2 screening (seed 0's finals), seed 1
    assert 'lora − liera' not in (work / 'pairs.md').read_text()
    before = json.loads((work / 'results.json').read_text())
    code, out = run_tool(
        *args, '--seeds', '0', '1', '2', '--diff', 'lora-liera', '--report-only', runs=runs)
    assert code == 0, out
    assert len(trained) == 6, trained  # nothing trained (nor tested: no "testing" line)
    assert 'testing' not in out and 'lora: chose lr_mult=3' in out, out
    assert 'final runs not tested yet are left out' in out and ' 2 final runs' in out, out
    pairs = (work / 'pairs.md').read_text()
    assert '| lora − liera | bbox mAP | 2 |' in pairs, pairs
    after = json.loads((work / 'results.json').read_text())
    assert after['runs'] == before['runs']
    for key in ('command', 'commit', 'started', 'finished'):  # the study's own, kept
        assert after['meta'][key] == before['meta'][key], key
    assert '--report-only' in after['meta']['reported']['command']
    from projects.liera_study.liera_study.compare import ComparisonError, main
    with pytest.raises(ComparisonError, match='--report-only trains nothing'):
        main([*args, '--seeds', '0', '--report-only', '--rerun'])
    with pytest.raises(ComparisonError, match='no .*results.json to report from'):
        main([*methods, '--seeds', '0', '--report-only', '--work-dir', str(tmp_path / 'none')])
    assert not (tmp_path / 'none').exists()


def test_finals_of_another_schedule_are_not_reported_as_this_ones(tmp_path):
    """Final runs recorded with other final options (a longer schedule chosen later) are left
    out of the tables from the start of the new pass, before any new final run is made; the
    screening runs are kept (not trained again) and the old records stay in results.json."""
    runs = _stand_ins(lambda name, lr_mult: 0.1 * lr_mult)
    trained = runs.trained
    methods = _two_methods(tmp_path)
    work = tmp_path / 'work'

    def args(iters):
        return [
            *methods, '--grid', 'lr_mult=1,3', '--seeds', '0', '1', '--no-diagnostics',
            '--final-cfg-options', f'train_cfg.max_iters={iters}', '--work-dir',
            str(work)
        ]

    code, out = run_tool(*args(4), runs=runs)
    assert code == 0 and len(trained) == 8, out  # 2 x 2 screening, 2 x 2 final
    table = (work / 'table.md').read_text()
    assert '| lora | lr_mult=3 |' in table and table.count('0, 1 |') == 2, table

    def interrupted(record, *_, **__):
        raise KeyboardInterrupt  # (the new pass stops at its first final run)

    runs.train = interrupted
    code, out = run_tool(*args(5), '--order', 'seed', runs=runs)  # (both screened first)
    assert code == 130 and 'lora: chose lr_mult=3' in out and '[lora: screen' not in out, out
    results = json.loads((work / 'results.json').read_text())
    finals = [r for r in results['runs'] if r.get('final')]
    assert [(r['method'], r['seed'], r['status']) for r in finals] == [('lora', 0, 'pending')]
    old = [r for r in results['runs'] if not r.get('screen') and r['status'] == 'ok']
    assert sorted((r['method'], r['seed']) for r in old) == [('liera', 0), ('liera', 1),
                                                             ('lora', 1)]
    table = (work / 'table.md').read_text()
    assert '| lora | lr_mult=3 | 2,093,314 (905,568) | - | - |' in table, table
    # (liera: chosen, no final run yet: the table names the choice)
    assert '| liera | lr_mult=3 | - | - |' in table and '0.500' not in table, table


def test_runs_side_by_side_match_one_at_a_time_and_get_their_threads(tmp_path):
    """--jobs 2: two runs at a time (never more), each with --threads CPU threads in its
    environment and in its record; the same choices, runs and figures as one at a time."""
    import threading
    import time

    runs = _stand_ins(lambda name, lr_mult: 0.1 * lr_mult)
    trained = runs.trained
    fake_train, guard = runs.train, threading.Lock()
    live, peak, envs = [0], [0], []

    def slow_train(record, config, options, run_dir, metrics, env=None, resume=False, val_iters=()):
        with guard:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            envs.append(env)
        time.sleep(0.3)
        with guard:
            live[0] -= 1
        return fake_train(record, config, options, run_dir, metrics, env)

    runs.train = slow_train
    methods = _two_methods(tmp_path)

    def args(work, *more):
        return [
            *methods, '--grid', 'lr_mult=1,3', '--seeds', '0', '1', '--no-diagnostics',
            '--work-dir',
            str(tmp_path / work), *more
        ]

    code, out1 = run_tool(*args('one'), runs=runs)  # 2 x 2 screening, then seed 1 of each
    assert code == 0 and peak[0] == 1 and envs == [None] * 6, out1
    del envs[:], trained[:]
    code, out2 = run_tool(*args('two', '--jobs', '2', '--threads', '3'), runs=runs)
    assert code == 0 and peak[0] == 2 and len(trained) == 6, out2
    assert all(e['OMP_NUM_THREADS'] == e['MKL_NUM_THREADS'] == '3' for e in envs), envs
    for out in (out1, out2):
        assert 'lora: chose lr_mult=3' in out and 'liera: chose lr_mult=3' in out, out

    def runs_of(work):
        found = json.loads((tmp_path / work / 'results.json').read_text())
        keys = ('method', 'setting_label', 'seed', 'phase', 'status', 'val', 'bbox_mAP', 'final',
                'screen')
        return found['meta'], sorted(
            (tuple(str(r.get(k)) for k in keys), r['threads']) for r in found['runs'])

    (meta1, runs1), (meta2, runs2) = runs_of('one'), runs_of('two')
    assert [r for r, _ in runs1] == [r for r, _ in runs2] and len(runs1) == 6
    assert {t for _, t in runs2} == {3} == {meta2['threads']} and meta2['jobs'] == 2
    assert {t for _, t in runs1} == {meta1['threads']} and meta1['threads'] >= 1
    table1, table2 = ((tmp_path / w / 'table.md').read_text() for w in ('one', 'two'))
    assert f'CPU threads per run: {meta1["threads"]}.' in table1 and 'at a time' not in table1
    assert 'CPU threads per run: 3.' in table2 and 'up to 2 at a time' in table2, table2


def test_a_stop_while_runs_go_side_by_side_ends_them_all(tmp_path):
    """A kill of the tool (SIGTERM, e.g. a session's end) with two runs at work: both run
    processes are first asked to stop (SIGINT: a training run ends its step and leaves its
    checkpoints whole) and end, their records say interrupted (not failed), the tool exits
    130."""
    import signal
    import sys
    import threading
    import time

    from projects.liera_study.liera_study.compare import runs
    logs = []
    script = ('import signal, sys, time\n'
              'def stop(*_):\n'
              '    print("stopped on SIGINT", flush=True)\n'
              '    sys.exit(130)\n'
              'signal.signal(signal.SIGINT, stop)\n'
              'print("ready", flush=True)\n'
              'time.sleep(60)\n')

    def sleeping_train(record, config, options, run_dir, metrics, env=None, **_):
        os.makedirs(run_dir, exist_ok=True)
        log = os.path.join(run_dir, 'run.log')
        logs.append(log)
        record.update(status='failed', log=log)
        try:
            runs._run([sys.executable, '-c', script], log, env)
        except KeyboardInterrupt:
            record.update(status='interrupted')
            raise
        record.update(error='the run ended by itself')
        return record

    stand_ins = _stand_ins(lambda name, lr_mult: 0.2)
    stand_ins.train = sleeping_train
    seen = []

    def kill_when_both_run():
        for _ in range(300):
            with runs._live_lock:
                seen[:] = [p.pid for p in runs._live]
            if len(seen) == 2 and len(logs) == 2 and \
                    all('ready' in open(p).read().splitlines() for p in logs):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_both_run)
    killer.start()
    start = time.time()
    code, out = run_tool(
        *_two_methods(tmp_path),
        '--grid',
        'lr_mult=1,3',
        '--seeds',
        '0',
        '--no-diagnostics',
        '--jobs',
        '2',
        '--work-dir',
        str(tmp_path / 'w'),
        runs=stand_ins)
    killer.join()
    assert code == 130 and len(seen) == 2 and time.time() - start < 30, out
    for pid in seen:  # ended and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for p in logs:  # asked first, not killed outright
        assert 'stopped on SIGINT' in open(p).read().splitlines(), open(p).read()
    found = json.loads((tmp_path / 'w' / 'results.json').read_text())['runs']
    assert sorted(r['status']
                  for r in found) == ['interrupted', 'interrupted', 'pending', 'pending'], found


@pytest.mark.slow
def test_a_run_stopped_mid_way_goes_on_from_its_checkpoint(tmp_path, monkeypatch):
    """A final run stopped while it validates after its iteration-2 checkpoint (the tool
    killed, e.g. at a session's end) goes on from there when the comparison is run again: its
    record says where; the validation it skipped is made from the checkpoint, so its val curve
    holds both parts, and weights and figures equal those of a run that was not stopped (same
    config, seed and threads)."""
    import glob
    import signal
    import threading
    import time

    import torch
    tests = os.path.join(ROOT, 'tests', 'support')
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([tests, ROOT]))
    backbone = tmp_path / 'backbone.pth'
    method = tiny_method(
        tmp_path, 'lora', 'lora.py', f"""
custom_imports = dict(imports=['mmliera', 'projects.liera_study.liera_study', 'fault_hooks'],
                      allow_failed_imports=False)
train_cfg = dict(max_iters=4, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
custom_hooks = [dict(type='LieRAFreezeHook'), dict(type='PauseInValHook'),
                dict(type='PretrainBackboneHook', config='unused.py', checkpoint='{backbone}')]
""")

    def args(work):
        return [
            method, '--seeds', '0', '--threads', '1', '--no-diagnostics', '--work-dir',
            str(tmp_path / work)
        ]

    def stop_when_paused():
        for _ in range(1200):
            if glob.glob(str(tmp_path / 'cut' / '**' / 'paused_at'), recursive=True):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    monkeypatch.setenv('MMLIERA_TEST_PAUSE_IN_VAL_AT_ITER', '2')
    stopper = threading.Thread(target=stop_when_paused)
    stopper.start()
    code, out = run_tool(*args('cut'))
    stopper.join()
    assert code == 130, out
    rec, = json.loads((tmp_path / 'cut' / 'results.json').read_text())['runs']
    assert rec['status'] == 'interrupted' and rec['threads'] == 1 and rec['train_s'] > 0, rec
    monkeypatch.delenv('MMLIERA_TEST_PAUSE_IN_VAL_AT_ITER')
    code, out = run_tool(*args('cut'))
    assert code == 0 and 'went on from iteration 2 of its stopped run' in out, out
    rec, = json.loads((tmp_path / 'cut' / 'results.json').read_text())['runs']
    assert rec['status'] == 'ok' and rec['resumed_at'] == [2], rec
    assert [c[0] for c in rec['val_curve']] == [2, 4], rec
    assert rec['checkpoint'] == os.path.join('lora', 'default', 'seed_0', 'iter_4.pth'), rec
    checkpoint = tmp_path / 'cut' / rec['checkpoint']  # (relative to the work dir)
    assert glob.glob(os.path.join(os.path.dirname(checkpoint), 'val_2', '*', '*.json'))
    # the same run not stopped: the same weights and val curve (test figures follow)
    straight = tmp_path / 'straight'
    run([
        'python', '-m', 'mmliera.cli', 'train', method, '--work-dir',
        str(straight), '--cfg-options', 'randomness.seed=0'
    ],
        env=dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
    from projects.liera_study.liera_study.compare.runs import read_train_log
    assert read_train_log(str(straight))[2] == rec['val_curve']
    a, b = (
        torch.load(p, map_location='cpu', weights_only=False)['state_dict']
        for p in (checkpoint, straight / 'iter_4.pth'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_validation_iterations_follow_mmengines_loop():
    """The validations a resumed run may have skipped: mmengine's IterBasedTrainLoop validates
    every ``val_interval`` from ``val_begin`` and after the last iteration; none are known for
    an epoch-based run or a config without validation."""
    from mmengine.config import Config

    from projects.liera_study.liera_study.compare.configs import validation_iters

    def cfg(**loop):
        return Config(dict(train_cfg=loop, val_dataloader=dict(batch_size=1)))

    assert validation_iters(cfg(max_iters=960, val_interval=80), 960) == list(range(80, 961, 80))
    assert validation_iters(cfg(max_iters=10, val_interval=4), 10) == [4, 8, 10]
    assert validation_iters(cfg(max_iters=10, val_interval=4, val_begin=5), 9) == [8]
    assert validation_iters(cfg(max_iters=10), 3) == [1, 2, 3]  # (mmengine's default: 1)
    assert validation_iters(cfg(by_epoch=True, max_epochs=3), 3) is None
    assert validation_iters(Config(dict(train_cfg=dict(max_iters=10))), 10) is None


def test_the_eta_counts_iterations_and_runs_side_by_side(tmp_path):
    """The ETA weighs runs by their iterations (finals 10x the screening's 3 here) and divides
    by --jobs: after the first screening run (1 s for 3 iterations) 3 + 30 iterations and one
    test (0.15 s) are left: 11 s; with --jobs 2 both screening runs are under way by then:
    30 iterations and the test, on two lanes: 5 s."""
    import threading

    runs = _stand_ins(lambda name, lr_mult: 0.1 * lr_mult)
    stand_in = runs.train
    started = {}

    def train(record, *a, **kw):
        # with --jobs 2, neither screening run ends before both are under way (as with real
        # runs of minutes); without this the second thread may not have started yet
        if record.get('screen') and started.get('barrier'):
            started['barrier'].wait(timeout=30)
        return stand_in(record, *a, **kw)

    runs.train = train
    lora = tiny_method(tmp_path, 'lora', 'lora.py')
    for work, jobs, eta in (('one', '1', 'ETA 11 s'), ('two', '2', 'ETA 5 s')):
        started['barrier'] = threading.Barrier(2) if jobs == '2' else None
        code, out = run_tool(
            lora,
            '--grid',
            'lr_mult=1,3',
            '--seeds',
            '0',
            '--no-diagnostics',
            '--final-cfg-options',
            'train_cfg.max_iters=30',
            '--jobs',
            jobs,
            '--work-dir',
            str(tmp_path / work),
            runs=runs)
        first = next(ln for ln in out.splitlines() if 'screen' in ln and 'trained' in ln)
        assert code == 0 and first.endswith(eta), out


def test_the_eta_leaves_out_failed_runs(tmp_path):
    """A run that failed early (NaN at its 23rd of 160 iterations in the study) took a fraction
    of its iterations' time: counted as all of them it made the ETA 3x too short. Here the
    lr_mult=1 screening run fails after 0.1 s, the lr_mult=3 one trains 3 iterations in 1 s:
    30 final iterations and one test are left, 10 s (6 s with the failure counted)."""
    runs = _stand_ins(lambda name, lr_mult: 0.1 * lr_mult)
    stand_in = runs.train

    def train(record, config, options, run_dir, *a, **kw):
        if record.get('screen') and options.get(next(
                k for k in options if k.endswith('lr_mult'))) == 1:
            record.update(
                status='failed',
                log=os.path.join(run_dir, 'run.log'),
                train_s=0.1,
                error='train exit status 1: error: iteration 23: the loss is not finite')
            return record
        return stand_in(record, config, options, run_dir, *a, **kw)

    runs.train = train
    code, out = run_tool(
        tiny_method(tmp_path, 'lora', 'lora.py'),
        '--grid',
        'lr_mult=1,3',
        '--seeds',
        '0',
        '--no-diagnostics',
        '--final-cfg-options',
        'train_cfg.max_iters=30',
        '--work-dir',
        str(tmp_path / 'w'),
        runs=runs)
    lines = [
        ln for ln in out.splitlines() if 'screen' in ln and ('trained' in ln or 'FAILED' in ln)
    ]
    assert code == 1 and len(lines) == 2, out  # (the failed screening run is reported)
    assert 'FAILED' in lines[0] and 'ETA' not in lines[0], out  # no trained run to time yet
    assert lines[1].endswith('ETA 10 s'), out


def test_bad_jobs_or_threads_are_refused(tmp_path):
    for flag, value in (('--jobs', '0'), ('--threads', '0')):
        code, out = run_tool(*_two_methods(tmp_path), flag, value, '--work-dir',
                             str(tmp_path / 'w'))
        assert code == 1 and f'error: {flag} 0' in out, out


def test_fingerprints_hold_the_checkout_as_root_and_know_the_earlier_form(tmp_path):
    """The same configs in two checkouts (two machines, two clones) fingerprint alike although
    their ``{{ fileDirname }}`` paths differ; the earlier forms (of ``pretty_text``, with the
    path itself and as ``<root>``) are known, so records of earlier versions are recognised."""
    from projects.liera_study.liera_study.compare.configs import earlier_fingerprints, fingerprints
    found, earlier = [], []
    for where in ('a', 'b/deeper'):
        checkout = tmp_path / where
        for folder in ('configs', 'projects/liera_study/configs'):  # (the study's bases)
            shutil.copytree(os.path.join(ROOT, folder), checkout / folder)
        (checkout / '.git').mkdir()
        config = str(checkout / 'projects/liera_study/configs/transfer/lora.py')
        found.append(fingerprints(config, {}))
        earlier.append(earlier_fingerprints(config, {}))
    assert found[0] == found[1]
    assert len(earlier[0] | earlier[1]) == 3  # (the path form differed, the <root> one not)
    assert found[0][0] not in earlier[0]
    other = tmp_path / 'a/projects/liera_study/configs/transfer/liera_taylor.py'
    assert fingerprints(str(other), {})[0] != found[0][0]
    options = {'train_cfg.max_iters': 4}
    assert fingerprints(config, options)[0] != found[1][0]
    assert fingerprints(config, options)[1] == found[1][1]  # (the model did not change)


def test_runs_made_elsewhere_are_added_and_earlier_fingerprints_recognised(tmp_path):
    """Two parts of a study run side by side (each its own work and out dir, as on one GPU);
    a third invocation with --add-runs trains nothing and reports both methods and their pair.
    A record holding the earlier fingerprint form is recognised (not trained again)."""
    methods = _two_methods(tmp_path)
    runs = _stand_ins(lambda name, lr_mult: 0.2)
    trained = runs.trained
    for m in methods:
        code, out = run_tool(
            m,
            '--seeds',
            '0',
            '1',
            '--no-diagnostics',
            '--work-dir',
            str(tmp_path / ('lane_' + os.path.basename(m))),
            runs=runs)
        assert code == 0, out
    assert trained == ['lora', 'lora', 'liera', 'liera']
    lanes = [str(tmp_path / f'lane_{n}.py' / 'results.json') for n in ('lora', 'liera')]
    lane = json.loads(open(lanes[0]).read())
    assert {r['device'] for r in lane['runs']} == {lane['meta']['device']}
    from projects.liera_study.liera_study.compare.configs import earlier_fingerprints, fingerprints
    earlier = sorted(earlier_fingerprints(methods[0], {}))[0]
    assert earlier != fingerprints(methods[0], {})[0]
    for r in lane['runs']:
        r['fingerprint'] = earlier
    lane['runs'].append(dict(lane['runs'][0], seed=5, status='interrupted'))  # (not taken)
    open(lanes[0], 'w').write(json.dumps(lane))
    work = tmp_path / 'merged'
    code, out = run_tool(
        *methods,
        '--seeds',
        '0',
        '1',
        '--no-diagnostics',
        '--work-dir',
        str(work),
        '--diff',
        'liera-lora',
        '--add-runs',
        *lanes,
        runs=runs)
    assert code == 0, out
    assert trained == ['lora', 'lora', 'liera', 'liera'], out  # nothing trained again
    assert out.count('done earlier') == 4, out
    merged = json.loads((work / 'results.json').read_text())
    assert merged['meta']['added_runs'] == lanes
    assert sorted(r['seed'] for r in merged['runs']) == [0, 0, 1, 1]
    assert {r['fingerprint'] for r in merged['runs'] if r['method'] == 'lora'} == \
        {fingerprints(methods[0], {})[0]}
    assert '| liera − lora |' in (work / 'pairs.md').read_text()
    code, out = run_tool(
        *methods, '--work-dir', str(work), '--add-runs', str(tmp_path / 'x.json'), runs=runs)
    assert code == 1 and out.count('error:') == 1 and 'x.json: not a results.json' in out, out


def test_records_hold_paths_relative_to_the_work_dir_and_a_moved_work_dir_goes_on(tmp_path):
    """A record's log and checkpoint are relative to the work dir (``meta.work_dir``); its config
    as given outside the checkout. A work dir moved elsewhere (another clone, another machine)
    goes on from there: a final run trained but not tested yet is tested from its new place."""
    runs = _stand_ins(lambda name, lr_mult: 0.2)
    lora = tiny_method(tmp_path, 'lora', 'lora.py')
    work, out = tmp_path / 'w', tmp_path / 'o'
    args = [lora, '--seeds', '0', '1', '--no-diagnostics', '--out-dir', str(out)]
    code, text = run_tool(*args, '--work-dir', str(work), runs=runs)
    assert code == 0, text
    results = json.loads((out / 'results.json').read_text())
    assert results['meta']['work_dir'] == str(work)  # (outside the checkout: as given)
    for r in results['runs']:
        run_dir = os.path.join('lora', 'default', f'seed_{r["seed"]}')
        assert r['log'] == os.path.join(run_dir, 'run.log'), r
        assert r['checkpoint'] == os.path.join(run_dir, 'iter_3.pth'), r
        assert r['config'] == lora, r
    seed1, = [r for r in results['runs'] if r['seed'] == 1]  # trained, its test not made yet
    seed1['status'] = 'trained'
    for key in ('bbox_mAP', 'segm_mAP', 'test_s'):
        seed1.pop(key)
    (out / 'results.json').write_text(json.dumps(results))
    moved = tmp_path / 'elsewhere' / 'w'
    shutil.move(str(work), str(moved))
    tested, stand_in = [], runs.test

    def test(record, *a, **kw):
        tested.append(record['checkpoint'])
        return stand_in(record, *a, **kw)

    runs.test = test
    code, text = run_tool(*args, '--work-dir', str(moved), runs=runs)
    assert code == 0 and runs.trained == ['lora', 'lora'], text  # nothing trained again
    assert 'lora seed 0: done earlier' in text, text
    assert tested == [str(moved / 'lora' / 'default' / 'seed_1' / 'iter_3.pth')], text
    again = json.loads((out / 'results.json').read_text())
    seed1, = [r for r in again['runs'] if r['seed'] == 1]
    assert seed1['status'] == 'ok' and seed1['checkpoint'] == os.path.join(
        'lora', 'default', 'seed_1', 'iter_3.pth'), seed1
    assert again['meta']['work_dir'] == str(moved)


def test_paths_of_earlier_records_and_of_added_runs_are_made_relative_to_the_work_dir(tmp_path):
    """Records of an earlier version (no ``meta.work_dir``: an absolute checkpoint, a log
    relative to the folder the tool ran in) are read as such and written relative to the work
    dir; runs added from another study's work dir (--add-runs) name their files from this one's
    (``../lane/...``)."""
    runs = _stand_ins(lambda name, lr_mult: 0.2)
    lora = tiny_method(tmp_path, 'lora', 'lora.py')
    lane, work = tmp_path / 'lane', tmp_path / 'work'
    args = [lora, '--seeds', '0', '1', '--no-diagnostics']
    code, text = run_tool(*args, '--work-dir', str(lane), runs=runs)
    assert code == 0, text
    made = json.loads((lane / 'results.json').read_text())
    earlier = json.loads(json.dumps(made))  # as an earlier version wrote it
    del earlier['meta']['work_dir']
    for r in earlier['runs']:
        r['checkpoint'] = str(lane / r['checkpoint'])
        r['log'] = os.path.relpath(lane / r['log'], ROOT)  # (the tool runs from the checkout)
    (lane / 'results.json').write_text(json.dumps(earlier))
    code, text = run_tool(*args, '--work-dir', str(lane), runs=runs)
    assert code == 0 and text.count('done earlier') == 2 and runs.trained == ['lora'] * 2, text
    again = json.loads((lane / 'results.json').read_text())
    assert [(r['log'], r['checkpoint']) for r in again['runs']] == \
        [(r['log'], r['checkpoint']) for r in made['runs']]
    code, text = run_tool(
        *args, '--work-dir', str(work), '--add-runs', str(lane / 'results.json'), runs=runs)
    assert code == 0 and text.count('done earlier') == 2 and runs.trained == ['lora'] * 2, text
    merged = json.loads((work / 'results.json').read_text())
    assert sorted((r['log'], r['checkpoint']) for r in merged['runs']) == [
        (os.path.join('..', 'lane', 'lora', 'default', f'seed_{s}', 'run.log'),
         os.path.join('..', 'lane', 'lora', 'default', f'seed_{s}', 'iter_3.pth')) for s in (0, 1)
    ]


def test_plot_shows_every_seed_reference_lines_and_equal_counts_at_one_x(tmp_path):
    from projects.liera_study.liera_study.compare import paired_differences, plot, summarise
    rows = summarise(_runs(), [('a', 'a.py'), ('b', 'b.py'), ('c', 'c.py')])
    diffs = paired_differences(rows, [('b', 'a'), ('c', 'b')])
    fig = plot(rows, str(tmp_path / 'plot.png'), diffs, references=['a'])
    ax_b, ax_s, ax_d, ax_p = fig.axes
    for ax, key in ((ax_b, 'bbox_mAP'), (ax_s, 'segm_mAP')):
        points = [
            tuple(p) for c in ax.collections if c.get_label() in 'abc' for p in c.get_offsets()
        ]
        assert len(points) == 7  # one marker per final run that ran: 3 + 2 + 2
        assert sorted(round(y, 3) for _, y in points) == sorted(
            round(v, 3) for r in rows for v in r['per_seed'][key].values())
        refs = [ln for ln in ax.get_lines() if ln.get_label() == 'a (mean)']
        assert len(refs) == 1 and refs[0].get_ydata()[0] == pytest.approx(rows[0][key][0])
    from matplotlib.collections import PathCollection
    dots = [c for c in ax_d.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 4  # 2 pairs x 2 seeds
    xs = {c.get_label(): {float(x) for x, _ in c.get_offsets()} for c in ax_p.collections}
    assert xs['b'] == xs['c'] == {50.0} and xs['a'] == {0.0}  # equal counts: one x
    assert (tmp_path / 'plot.png').stat().st_size > 10000


# ---------------------------------------------------------------------------------------------
# a real (tiny) comparison


@pytest.fixture(scope='module')
def comparison(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('compare')
    methods = [
        tiny_method(tmp, 'lora', 'lora.py'),
        tiny_method(tmp, 'liera', 'liera_taylor.py'),
        # fails before any run: the model does not build (a run that fails in its training
        # subprocess: test_a_changed_config_is_run_again)
        tiny_method(tmp, 'unbuildable', 'lora.py',
                    "model = dict(backbone=dict(adapter=dict(mode='bogus')))\n")
    ]
    work = tmp / 'work'
    args = [
        *methods, '--grid', 'lora:lr_mult=1,30', '--seeds', '0', '1', '--diff', 'liera-lora',
        '--reference', 'lora', '--work-dir',
        str(work)
    ]
    code, out = run_tool(*args)
    return tmp, methods, work, (code, out), args


@pytest.mark.slow
def test_runs_screen_on_val_choose_and_test_the_finals(comparison):
    tmp, methods, work, (code, out), _ = comparison
    assert code == 1, out  # a method failed
    assert '[lora: screen 1/2] lr_mult=1 seed 0: training' in out
    assert '[lora: screen 2/2] lr_mult=30 seed 0: trained, val bbox' in out and 'ETA' in out
    assert 'lora: chose lr_mult=' in out
    results = json.loads((work / 'results.json').read_text())
    runs = {(r['method'], r['setting_label'], r['seed']): r for r in results['runs']}
    screen = {k: r for k, r in runs.items() if r.get('screen')}
    assert set(screen) == {('lora', 'lr_mult=1', 0), ('lora', 'lr_mult=30', 0)}
    val = {k[1]: r['val']['bbox_mAP'] for k, r in screen.items()}
    chosen = max(sorted(val, key=lambda s: float(s.split('=')[1])), key=lambda s: val[s])
    assert f'lora: chose {chosen} (val bbox mAP {val[chosen]:.3f}' in out
    # the chosen screening run is the final run of seed 0: tested, not trained again
    final0 = runs[('lora', chosen, 0)]
    assert final0['final'] and final0['status'] == 'ok'
    assert out.count(f'lr_mult={chosen.split("=")[1]} seed 0: training') == 1
    for key in (('lora', chosen, 1), ('liera', 'default', 0), ('liera', 'default', 1)):
        r = runs[key]
        assert r['status'] == 'ok' and r['final']
        assert r['val_curve'] and [p[0] for p in r['val_curve']] == [2, 3]
        assert r['val']['bbox_mAP'] == r['val_curve'][-1][1]
        assert r['sec_per_iter'] > 0 and r['peak_memory_mib'] > 100
        # diagnostics: each backbone stage moved (adapters train), counts per part
        assert set(r['weight_change']) == {f'stage {i}' for i in range(4)}
        assert all(0 < v < 1 for v in r['weight_change'].values())
        assert r['params_by_part']['backbone'] == r['backbone_trainable_params'] > 0
        assert sum(r['params_by_part'].values()) == r['trainable_params']
        assert r['start_sha256'] and len(r['start_sha256']) == 64
    # test and val are different splits: the test mAP is not the val one
    assert (work / 'lora' / chosen / 'seed_1' / 'test').is_dir()
    assert "unknown LieRA mode 'bogus'" in runs[('unbuildable', 'default', 0)]['error']
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    assert results['meta']['commit'] in (head, head + '+uncommitted'), results['meta']
    assert results['meta']['torch'] == __import__('torch').__version__
    # the figures are the test run's own, bbox as bbox and segm as segm (mmengine's json)
    for (method, label, seed), r in runs.items():
        if r['status'] == 'ok':
            logged, = (work / method / label / f'seed_{seed}' / 'test').glob('*/*.json')
            found = json.loads(logged.read_text())
            assert (r['bbox_mAP'], r['segm_mAP']) == (found['coco/bbox_mAP'],
                                                      found['coco/segm_mAP'])
    for name in ('table.md', 'grid.md', 'pairs.md', 'diagnostics.md', 'plot.png', 'curves.png',
                 'results.csv'):
        assert (work / name).is_file(), name
    grid = (work / 'grid.md').read_text()
    assert f'| lora | {chosen} | 0 |' in grid and '**chosen**' in grid
    pairs = (work / 'pairs.md').read_text()
    assert '| liera − lora | bbox mAP | 2 |' in pairs
    table = {
        ln.split('|')[1].strip(): ln
        for ln in (work / 'table.md').read_text().splitlines() if ln.startswith('| ')
    }
    assert f"| lora | {chosen} |" in table['lora']
    test_bbox = [runs[('lora', chosen, s)]['bbox_mAP'] for s in (0, 1)]
    assert f'{sum(test_bbox) / 2:.3f} ± ' in table['lora']


@pytest.mark.slow
def test_restart_skips_what_is_done_and_a_changed_grid_runs_only_what_is_new(comparison):
    tmp, methods, work, _, args = comparison
    ckpt = work / 'liera' / 'default' / 'seed_0' / 'iter_3.pth'
    stamp = ckpt.stat().st_mtime_ns
    code, again = run_tool(*args)
    assert code == 1
    assert '[2/6] liera seed 0: done earlier' in again
    assert "unbuildable seed 0: FAILED (the config does not build" in again
    assert ckpt.stat().st_mtime_ns == stamp  # not trained again
    assert 'screen' not in again.split('lora: chose')[0]  # screening runs were kept


@pytest.mark.slow
def test_a_changed_config_is_run_again(comparison, tmp_path):
    """The same method with one setting changed: its earlier run is not reused. (The change
    makes the run fail in its first seconds: what is checked is that it runs again, and that a
    failure in the training subprocess is recorded with the log's error; that a failed run is
    trained again on a restart: test_failed_runs_and_runs_from_another_start_are_run_again.)"""
    tmp, methods, shared, _, _ = comparison
    work = tmp_path / 'w'
    shutil.copytree(shared, work)
    changed = tmp_path / 'liera.py'
    changed.write_text(
        f"_base_ = ['{methods[1]}']\noptim_wrapper = dict(optimizer=dict(lr=-2e-3))\n")
    code, out = run_tool(str(changed), '--seeds', '0', '--work-dir', str(work))
    assert code == 1, out
    assert 'liera seed 0: training' in out and 'done earlier' not in out
    # the run failed in its training subprocess: recorded with the log's error
    run, = [
        r for r in json.loads((work / 'results.json').read_text())['runs']
        if r['method'] == 'liera' and r['seed'] == 0
    ]
    assert run['config'] == str(changed) and run['status'] == 'failed', run
    assert 'Invalid learning rate: -0.002' in run['error'], run


@pytest.mark.slow
def test_final_options_train_the_finals_anew_with_their_own_schedule(comparison, tmp_path):
    """--final-cfg-options on the shared run's lora grid: the screening runs (the same settings
    as before) are kept, the final run is trained anew with its own schedule."""
    tmp, methods, shared, _, _ = comparison
    work, out = tmp_path / 'w', tmp_path / 'out'
    shutil.copytree(shared, work)
    out.mkdir()
    shutil.copy(shared / 'results.json', out / 'results.json')
    args = [
        methods[0], '--grid', 'lr_mult=1,30', '--seeds', '0', '--final-cfg-options',
        'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=4', '--work-dir',
        str(work), '--out-dir',
        str(out)
    ]
    code, done = run_tool(*args)
    assert code == 0, done
    runs = [
        r for r in json.loads((out / 'results.json').read_text())['runs'] if r['method'] == 'lora'
    ]
    screen = [r for r in runs if r.get('screen')]
    final = [r for r in runs if r.get('phase') == 'final']
    assert len(screen) == 2 and all('phase' not in r for r in screen)
    assert not any(r.get('final') for r in screen)  # the earlier final of seed 0 no longer is
    assert len(final) == 1 and final[0]['final'] and final[0]['status'] == 'ok'
    assert final[0]['checkpoint'].endswith(f'{final[0]["setting_label"]}/final_seed_0/iter_4.pth')
    assert [p[0] for p in final[0]['val_curve']] == [2, 4]  # its own schedule
    assert done.count('seed 0: training') == 1  # only the final run: screening was done
    assert '[lora: screen' not in done and 'lora: chose' in done
    code, again = run_tool(*args)  # everything done: nothing runs
    assert code == 0 and 'training' not in again
    shutil.rmtree(work)  # a fresh clone: only the committed results are left
    code, again = run_tool(*args)
    assert code == 0 and 'training' not in again, again


def test_a_screening_run_without_a_val_figure_is_not_run_again_in_a_fresh_clone(tmp_path):
    """A screening run that trained but gave no val figure (it detected nothing) is done: a
    fresh clone (no work dir, only the committed results) does not train it again each time."""
    runs = _stand_ins(lambda name, lr_mult: 0.1 * lr_mult)
    trained = runs.trained
    stand_in = runs.train

    def train(record, config, options, *a, **kw):
        stand_in(record, config, options, *a, **kw)
        if 30 in options.values():  # detects nothing: no validation figure at all
            record.pop('val')
            record.update(val_curve=[], val_note='no detections at its validation')
        return record

    runs.train = train
    work, out = tmp_path / 'w', tmp_path / 'o'
    args = [
        tiny_method(tmp_path, 'lora', 'lora.py'), '--grid', 'lr_mult=1,30', '--seeds', '0',
        '--no-diagnostics', '--work-dir',
        str(work), '--out-dir',
        str(out)
    ]
    code, first = run_tool(*args, runs=runs)
    assert code == 0 and len(trained) == 2, first  # two screening runs (lr_mult=1's is final)
    assert 'lora: chose lr_mult=1' in first
    grid = (out / 'grid.md').read_text()
    assert '| lora | lr_mult=30 | 0 | - | - | no detections at its validation |' in grid, grid
    shutil.rmtree(work)  # a fresh clone
    code, again = run_tool(*args, runs=runs)
    assert code == 0 and 'training' not in again and len(trained) == 2, again


def test_grid_without_a_validation_split_is_refused(tmp_path):
    from projects.liera_study.liera_study.compare import ComparisonError, main
    cfg = tiny_method(
        tmp_path, 'noval', 'lora.py', 'val_dataloader = None\nval_cfg = None\n'
        'val_evaluator = None\ntrain_cfg = dict(val_interval=1000)\n')
    with pytest.raises(ComparisonError, match='a grid is chosen on the validation split'):
        main([cfg, '--grid', 'lr_mult=1,2', '--work-dir', str(tmp_path / 'w')])
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('args,msg', [
    (['missing.py'], 'method missing: config missing.py does not exist'),
    ([
        os.path.join(TRANSFER, 'lora.py'), 'x=' + os.path.join(TRANSFER, 'lora.py'),
        'lora=' + os.path.join(TRANSFER, 'dora.py')
    ], "method name 'lora' is given twice"),
    ([os.path.join(TRANSFER, 'lora.py'), '--seeds', '1', '1'], '--seeds has repeats'),
    ([os.path.join(TRANSFER, 'lora.py'), '--screen-seeds', '0', '0'], '--screen-seeds has repeats'),
    ([os.path.join(TRANSFER, 'lora.py'), '--reference', 'full'], '--reference full: no such'),
    ([os.path.join(TRANSFER, 'lora.py'), '--grid', 'lr_mult=1,3', 'lora:momentum=1,2'
      ], "--grid momentum: method lora"),
])
def test_bad_requests_are_refused_before_anything_runs(tmp_path, args, msg):
    from projects.liera_study.liera_study.compare import ComparisonError, main
    with pytest.raises(ComparisonError) as e:
        main(args + ['--work-dir', str(tmp_path / 'w')])
    assert str(e.value).startswith(msg)
    assert not (tmp_path / 'w').exists()


def test_a_bad_request_is_one_error_line(tmp_path):
    code, _, err = tool_in_process('compare_methods', 'missing.py', '--work-dir', tmp_path / 'w')
    assert code == 1
    assert err.strip().splitlines() == ['error: method missing: config missing.py does not exist']
