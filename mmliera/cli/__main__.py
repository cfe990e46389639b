"""``python -m mmliera.cli {train,test} ...``: what tools/train.py and tools/test.py run."""
import functools
import sys

from .test import test_main
from .train import train_main


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # train without the closing hints: PretrainBackboneHook's sub-run comes through here
    commands = dict(train=functools.partial(train_main, show_next_steps=False), test=test_main)
    if not argv or argv[0] not in commands:
        raise SystemExit('usage: python -m mmliera.cli {train,test} ...')
    commands[argv[0]](argv[1:])


if __name__ == '__main__':
    main()
