"""Runs side by side (``--jobs N``): N threads, each holding the study's lock for its
bookkeeping and letting it go while its run's process works, so that records, counters and
files change one thread at a time; a stop or an error ends them all."""
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager

from .runs import stop_all


@contextmanager
def unlocked(lock, jobs):
    """Let ``lock`` go meanwhile (with ``jobs`` > 1: the caller, a lane, holds it)."""
    if jobs == 1:
        yield
        return
    lock.release()
    try:
        yield
    finally:
        lock.acquire()


def side_by_side(tasks, jobs, lock):
    """Run ``tasks`` (callables) on ``jobs`` threads, each holding ``lock`` but while its run's
    process works; stop them all at the first error or interrupt. (The calling thread does not
    hold ``lock`` meanwhile.)"""

    def call(task):
        with lock:
            task()

    pool, left = ThreadPoolExecutor(jobs), set()
    try:
        left = {pool.submit(call, t) for t in tasks}
        while left:
            done, left = wait(left, timeout=1, return_when=FIRST_COMPLETED)
            for f in done:
                if f.exception() is not None:
                    raise f.exception()
    except BaseException:
        for f in left:  # (runs not started yet stay pending)
            f.cancel()
        stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
