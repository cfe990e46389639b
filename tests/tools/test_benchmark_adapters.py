"""tools/analysis_tools/benchmark_adapters.py runs end to end on the demo's whole detector and
reports every figure it promises; bad requests are one error line."""
import json
import os

import pytest
from helpers import ROOT, tool_in_process

WHOLE = os.path.join(ROOT, 'configs', 'demo', 'whole_liera_maskrcnn_convnextv2-atto_synthetic.py')


@pytest.mark.slow  # 4 processes build the atto detector (~1-2 min)
def test_tiny_run_reports_memory_switches_and_forwards(tmp_path):
    code, out, err = tool_in_process('benchmark_adapters', WHOLE, '--counts', '1', '2',
                                     '--switches', '2', '--size', '64', '--rank', '2', '--out',
                                     str(tmp_path))
    assert code == 0, err
    data = json.loads((tmp_path / 'benchmark_adapters.json').read_text())
    assert [r['count'] for r in data['memory']] == [1, 2]
    for r in data['memory']:
        assert r['bank'] > 0 and r['separate'] > 0
    assert set(data['switches']) == {'None', 'copy', 'inplace', 'forward None', 'forward copy'}
    assert data['switches']['None'][0] < data['switches']['copy'][0]  # pointers vs a re-fold
    table = (tmp_path / 'benchmark_adapters.md').read_text()
    for row in ('| 1 |', '| 2 |', 'unmerged (pointers)', 'merged, W kept', 'merged in place'):
        assert row in table and row in out


@pytest.mark.parametrize('args,msg', [
    (['--counts', '0'], 'positive numbers'),
    (['nowhere.py'], 'config nowhere.py does not exist'),
])
def test_bad_requests_are_one_error_line(args, msg, tmp_path):
    code, _, err = tool_in_process('benchmark_adapters', *args, '--out', str(tmp_path))
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and msg in lines[0], err
