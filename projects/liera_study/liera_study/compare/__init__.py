"""Compare fine-tuning methods (configs) x seeds through the real train and test path, with a
per-method grid chosen on the validation split and paired differences between methods.

    python projects/liera_study/tools/compare_methods.py [NAME=]CONFIG ... --seeds 0 1 2 3 4
    --work-dir DIR \\
        [--grid [METHOD,...:]KEY=V1,V2,...] [--diff A-B ...] [--reference NAME ...]

1. **Screening** (methods whose grid has several settings): each setting trains once per
   screening seed (``--screen-seeds``, default the first of ``--seeds``) with the config's
   validation during training; the setting with the best last val figure (the mean over the
   screening seeds) is chosen (bbox mAP for detection, top-1 accuracy for classification;
   ties: the lower value).
2. **Final runs**: each method at its chosen setting, every seed: ``python -m mmliera.cli train``
   (= ``tools/train.py``) then ``python -m mmliera.cli test`` on the last checkpoint (the test
   split: mmdet's ``CocoMetric`` or mmpretrain's ``Accuracy``, :mod:`.metrics`). The screening
   run of the chosen setting is the final run of its seed (it is only tested).

Per run it records the val and test figures (bbox / segm mAP or top-k accuracy), the val
curve, trainable parameters (whole model, backbone, per top-level part, as training builds the
model), the relative weight change of each backbone stage (:mod:`.diagnostics`), seconds per
iteration, peak memory (CUDA: ``max_memory_allocated`` from the log; CPU: the train process's
peak RSS), wall times, and the weights sha256 of the backbone it started from (a run that
started from another backbone than earlier runs is reported). ``results.json`` is written
(atomically) after every step; a restarted comparison skips every step already done with the
same config, options and setting (a config's paths inside the checkout count relative to it,
so records stay valid in another clone); a final run recorded with other options (e.g. before a
longer ``--final-cfg-options`` schedule) is left out of the tables from the start.
``--add-runs A/results.json B/results.json`` takes
the runs of comparisons made elsewhere (another machine; or parts of one study run side by side
on one GPU, each with its own ``--work-dir``) as earlier runs; each record names the ``device``
it trained on. ``--jobs N`` makes N runs at once (all screening, then the finals), each with
``--threads`` CPU threads (recorded per run; a table of mixed thread counts says so).
Outputs: results.json / .csv, table.md, grid.md, pairs.md, diagnostics.md, plot.png,
curves.png, grid.png (:mod:`.report`). Exit status: 0 when every needed run succeeded, else 1.
A record's ``log`` and ``checkpoint`` are relative to the work dir, its ``config`` to the
checkout (:mod:`.records`).

Modules: :mod:`.cli` (the command line), :mod:`.plan` (methods, grids, phases, seeds),
:mod:`.study` (:class:`.study.Study`: the records, the steps, the lock, the save), :mod:`.runs`
(one run through the real command lines), :mod:`.configs`, :mod:`.records`, :mod:`.grid`,
:mod:`.metrics`, :mod:`.stats`, :mod:`.report`, :mod:`.diagnostics`, :mod:`.lanes` (runs side by
side), :mod:`.progress` (the ETA), :mod:`.provenance`, :mod:`.paths`, :mod:`.errors`.
"""
from .cli import check, main, parse_args
from .configs import fingerprint, fingerprints
from .errors import ComparisonError
from .plan import Plan, parse_pairs
from .records import FORMAT
from .report import markdown_table, plot, write_outputs
from .stats import paired_differences, summarise
from .study import Study

__all__ = [
    'main', 'parse_args', 'check', 'Plan', 'Study', 'ComparisonError', 'FORMAT', 'fingerprint',
    'fingerprints', 'parse_pairs', 'markdown_table', 'plot', 'write_outputs', 'paired_differences',
    'summarise'
]
