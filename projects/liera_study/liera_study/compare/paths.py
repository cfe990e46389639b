"""Where things are: the checkout holding this project, and the paths a study records, written
relative (a run's files to the study's work dir, configs to the checkout) so that the records
hold in another clone or on another machine."""
import os.path as osp

# the checkout holding this project (projects/liera_study/liera_study/compare/paths.py): the
# runs' configs import projects.liera_study.liera_study, so it goes first on their PYTHONPATH
CHECKOUT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))


def portable(path, base):
    """``path`` relative to ``base`` when the two share a folder other than the file system's
    root (a run in its study's work dir; a sibling work dir of the same checkout); else
    ``path`` as it is (a folder of another machine)."""
    full, start = osp.abspath(path), osp.abspath(base)
    common = osp.commonpath([full, start])
    return path if osp.dirname(common) == common else osp.relpath(full, start)


def in_checkout(path):
    """``path`` relative to the checkout when it lies inside it, else as given."""
    full = osp.abspath(path)
    return osp.relpath(full, CHECKOUT) if osp.commonpath([full, CHECKOUT]) == CHECKOUT else path


def from_checkout(path):
    """A path :func:`in_checkout` wrote, as a path to open from here."""
    return path if osp.isabs(path) else osp.join(CHECKOUT, path)
