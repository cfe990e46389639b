"""The committed study records (projects/liera_study/results/**/results.json): no absolute path
(a run's files are relative to its study's work dir, configs to the checkout), configs that are
there, and runs the configs still recognise: a report made again from them keeps every run and
writes the committed tables."""
import json
import os
import shlex
import shutil

import pytest
from helpers import ROOT, tool_in_process

RESULTS = os.path.join(ROOT, 'projects', 'liera_study', 'results')


def committed():
    """{study folder (relative to RESULTS): its results}."""
    found = {}
    for folder, _, files in os.walk(RESULTS):
        if 'results.json' in files:
            with open(os.path.join(folder, 'results.json')) as f:
                found[os.path.relpath(folder, RESULTS)] = json.load(f)
    return found


def strings(node, where=''):
    """(where, text) of every string in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f'{where}.{k}')
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f'{where}[{i}]')
    elif isinstance(node, str):
        yield where, node


def test_no_committed_record_holds_an_absolute_path():
    studies = committed()
    assert len(studies) >= 8, sorted(studies)
    absolute = [
        f'{study}{where}: {text}' for study, results in studies.items()
        for where, text in strings(results) if os.path.isabs(text) or ROOT in text
    ]
    assert absolute == []
    for study, results in studies.items():
        work_dir = results['meta']['work_dir']  # what the runs' paths are relative to
        assert work_dir and not os.path.isabs(work_dir), study
        for r in results['runs']:
            for key in ('log', 'checkpoint'):
                if r.get(key):
                    assert f'/{r["method"]}/{r["setting_label"]}/' in f'/{r[key]}', (study, r)
    for folder, _, files in os.walk(RESULTS):
        for f in files:
            if f.endswith(('.csv', '.md')):
                with open(os.path.join(folder, f)) as fh:
                    assert ROOT not in fh.read(), os.path.join(folder, f)


def test_committed_records_name_the_configs_as_they_are_now():
    """Each record's config is relative to the checkout and there (the study's configs live in
    projects/liera_study/configs/)."""
    missing = sorted({
        f'{study}: {r["config"]}'
        for study, results in committed().items()
        for r in results['runs'] if not os.path.isfile(os.path.join(ROOT, r['config']))
    })
    assert missing == []


@pytest.mark.parametrize('study', ['transfer_study/schedule_960', 'transfer_cls_study'])
def test_a_report_from_the_committed_records_keeps_every_run(study, tmp_path, monkeypatch):
    """--report-only with the command that last reported the study (``meta.reported``), into
    another folder: every run kept as it is (their fingerprints are those of the configs now,
    so a resumed study would skip them too), the same tables. (The configs' data folders as in
    the checkout: they are part of the fingerprint; a report reads no data.)"""
    for name in ('MMLIERA_DEMO_DATA', 'MMLIERA_TRANSFER_DATA', 'MMLIERA_TRANSFER_CLS_DATA'):
        monkeypatch.delenv(name, raising=False)
    source = os.path.join(RESULTS, study)
    results = committed()[study]
    shutil.copy(os.path.join(source, 'results.json'), tmp_path / 'results.json')
    argv = shlex.split(results['meta']['reported']['command'])[2:]
    i = argv.index('--out-dir')
    argv[i + 1] = str(tmp_path)
    code, out, err = tool_in_process('compare_methods', *argv)
    assert code == 0 and 'nothing trained' in out, (out + err)[-3000:]
    again = json.loads((tmp_path / 'results.json').read_text())
    assert again['runs'] == results['runs']
    for name in ('table.md', 'grid.md', 'pairs.md', 'diagnostics.md', 'results.csv'):
        if os.path.isfile(os.path.join(source, name)):
            with open(os.path.join(source, name)) as f:
                assert (tmp_path / name).read_text() == f.read(), name
