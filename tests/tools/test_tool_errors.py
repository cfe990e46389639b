"""One error convention for every tool: an expected mistake is one ``error:`` line, exit 1, no
traceback; ``--debug`` shows the traceback. One bad input per tool, run as a user runs it."""
import os
import subprocess
import sys

import pytest
from helpers import DEMO, ROOT, tool_in_process

OTHER = os.path.join(ROOT, 'configs', 'liera_maskrcnn_r50.py')


def _cases(tmp):
    fake = tmp / 'photo.jpg'
    fake.write_text('not an image')
    legacy = os.path.join(ROOT, 'tests', 'fixtures', 'legacy', 'train_iter_2.pth')
    return {
        'train': ([
            'tools/train.py', DEMO, '--work-dir',
            str(tmp / 'w'), '--cfg-options', 'model.backbone.adapter.rank=-3'
        ], 'rank must be a positive int'),
        'test': (['tools/test.py', DEMO, str(tmp / 'missing.pth')], 'does not exist'),
        'infer': (['tools/infer.py', DEMO, legacy, str(fake)], 'cannot be read as an image'),
        'merge_adapters':
        (['tools/model_converters/merge_adapters.py', OTHER, legacy,
          str(tmp / 'out')], 'checkpoint ' + legacy),
        'count_params':
        (['tools/analysis_tools/count_params.py',
          str(tmp / 'nope.py')], 'config ' + str(tmp / 'nope.py') + ' does not exist'),
        'compare_methods': (['projects/liera_study/tools/compare_methods.py',
                             str(tmp / 'nope.py')], 'does not exist'),
        'browse_dataset': (['tools/analysis_tools/browse_dataset.py', DEMO, '--num',
                            '0'], '--num and --cols must be at least 1'),
        'plot_curves': (['tools/analysis_tools/plot_curves.py',
                         str(tmp / 'no_run')], ''),
        'benchmark': (['tools/analysis_tools/benchmark.py', '--amp-dtype',
                       'bfloat16'], '--amp-dtype needs --amp'),
        'benchmark_adapters': (['tools/analysis_tools/benchmark_adapters.py', '--switches',
                                '0'], 'positive numbers'),
        'infer_adapters':
        (['tools/infer.py', DEMO, '--adapters', 'a=x.safetensors', 'a=y.safetensors',
          str(fake)], "the name 'a' is used twice"),
    }


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, MMLIERA_DEBUG='')


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
    """Every case at once (two cores: the imports overlap)."""
    tmp = tmp_path_factory.mktemp('tool_errors')
    commands = {name: cmd for name, (cmd, _) in _cases(tmp).items()}
    procs = {
        name:
        subprocess.Popen(
            [sys.executable] + cmd,
            cwd=ROOT,
            env=_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        for name, cmd in commands.items()
    }
    done = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=600)
        done[name] = (p.returncode, out, err)
    return tmp, done


@pytest.mark.parametrize('name', [
    'train', 'test', 'infer', 'merge_adapters', 'count_params', 'compare_methods', 'browse_dataset',
    'plot_curves', 'benchmark', 'benchmark_adapters', 'infer_adapters'
])
def test_expected_mistake_is_one_error_line(outcomes, name):
    tmp, done = outcomes
    code, out, err = done[name]
    expect = _cases(tmp)[name][1]
    assert code == 1, (code, err[-3000:])
    assert 'Traceback' not in err + out, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith('error: ')]
    assert len(lines) == 1 and expect in lines[0], err[-3000:]


def test_debug_shows_the_traceback(tmp_path):
    """--debug: the mistake raises as it is (a real process then prints its traceback)."""
    from mmliera.apis import ConfigNotFoundError
    with pytest.raises(ConfigNotFoundError, match='nope.py does not exist'):
        tool_in_process('count_params', tmp_path / 'nope.py', '--debug')


def test_a_second_train_mistake_in_process(tmp_path):
    code, _, err = tool_in_process('train', DEMO, '--work-dir', tmp_path / 'w', '--cfg-options',
                                   'model.backbone.adapter.targets=[nothing_here]')
    assert code == 1 and err.strip().splitlines() == [err.strip()]
    assert err.startswith('error: ') and "target 'nothing_here' matched no module" in err


def test_a_test_mistake_in_process(tmp_path):
    """tools/test.py --split val on a config without a val split."""
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    code, _, err = tool_in_process('test', DEMO, ckpt, '--split', 'val', '--cfg-options',
                                   'val_dataloader=None', 'val_evaluator=None', 'val_cfg=None')
    assert code == 1 and err.strip().splitlines() == [err.strip()], err
    assert err.startswith('error: --split val: ') and 'no val_dataloader' in err


def test_wrapper_in_process():
    """The convention itself: UserError -> one error line, exit status 1; bugs keep raising."""
    from mmliera.cli.errors import UsageError, exit_on_user_error
    from mmliera.utils import UserError

    def main(argv):
        if argv == ['bug']:
            raise KeyError('a bug')
        raise UsageError('--x: use 1\n  or 2')

    with pytest.raises(SystemExit) as e:
        exit_on_user_error(main)([])
    assert e.value.code == 1 and str(e.value) == 'error: --x: use 1 or 2'
    with pytest.raises(KeyError):
        exit_on_user_error(main)(['bug'])
    with pytest.raises(UserError):
        exit_on_user_error(main)(['--debug'])
