"""projects/liera_study/tools/summary_figure.py: the figure across the three studies is made
from the committed records, and the committed table is what the records give now."""
import os
import runpy

from helpers import ROOT

PROJECT = os.path.join(ROOT, 'projects', 'liera_study')
TOOL = os.path.join(PROJECT, 'tools', 'summary_figure.py')


def test_summary_is_regenerated_from_the_records(tmp_path):
    tool = runpy.run_path(TOOL)
    tool['main'](['--out', str(tmp_path)])
    made = (tmp_path / 'summary.md').read_text()
    assert made == open(os.path.join(PROJECT, 'results', 'summary.md')).read()
    assert (tmp_path / 'summary.png').stat().st_size > 10_000
    # one row per study, rank and metric; the backbone study's rank-8 pair as its pairs.md says
    rows = [ln for ln in made.splitlines() if ln.startswith('| ') and 'seeds' not in ln]
    assert len(rows) == 12
    assert '| backbone transfer, r8 | bbox mAP | 5 | -0.3 | [-1.5, +0.8] |' in rows
    pairs = open(os.path.join(PROJECT, 'results', 'transfer_study', 'pairs.md')).read()
    assert '−0.003' in pairs or '-0.003' in pairs


def test_a_missing_pair_is_one_error(tmp_path, monkeypatch):
    tool = runpy.run_path(TOOL)
    differences = tool['differences']
    monkeypatch.setitem(differences.__globals__, 'ROWS',
                        [('x', 'whole_detector_study', 'whole_liera', 'no_such_arm', ['bbox_mAP'])])
    try:
        differences()
    except SystemExit as e:
        assert 'no paired final runs of whole_liera and no_such_arm' in str(e)
    else:
        raise AssertionError('no error')
