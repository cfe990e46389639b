"""``python -m mmliera.cli.torchrun``: torchrun whose report of failed ranks is one line.

torchrun ends a job whose rank failed by raising ``ChildFailedError``, which prints a Python
traceback and a table, although each rank has already printed its own ``error:`` line (or its
own traceback, for a bug). This entry point runs ``torch.distributed.run`` unchanged and turns
that report into ``dist_run.sh: rank R (exit status N) failed ...``, exit status 1.
"""
import signal
import sys


def _describe(failure):
    code = failure.exitcode
    if code is not None and code < 0:
        try:
            return f'killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'killed by signal {-code}'
    return f'exit status {code}'


def main(argv=None):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun
    try:
        torchrun(argv)
    except ChildFailedError as e:
        failed = ', '.join(f'rank {r} ({_describe(f)})' for r, f in sorted(e.failures.items()))
        sys.stderr.write(f'dist_run.sh: {failed} failed; each rank printed its own error above\n')
        sys.stderr.flush()
        sys.exit(1)


if __name__ == '__main__':
    main()
