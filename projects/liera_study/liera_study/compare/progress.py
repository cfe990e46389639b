"""How far a comparison has come: the time its runs took and what is left, for the ETA printed
after each run (runs weighed by their training iterations; side by side runs share the wait)."""


def duration(seconds):
    """'1 h 02 min', '3 min 05 s' or '42 s'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
    return f'{seconds // 60} min {seconds % 60:02d} s' if seconds >= 60 else f'{seconds} s'


class Progress:
    """Seconds of the runs trained and tested so far, and the training iterations and tests
    still to come (``left_iters``, ``left_tests``: the caller counts them down)."""

    def __init__(self, jobs=1):
        self.jobs = jobs
        self.train, self.test = [], []  # [(seconds, iterations)], [seconds]
        self.left_iters, self.left_tests = 0, 0

    def trained(self, seconds, iters):
        """A run trained (not one that failed: its time is not that of its iterations)."""
        self.train.append((seconds, iters))

    def tested(self, seconds):
        self.test.append(seconds)

    def eta(self):
        """'; ETA 3 min 05 s', or '' before the first trained run or when nothing is left."""
        if not self.train or not (self.left_iters or self.left_tests):
            return ''
        per_iter = sum(s for s, _ in self.train) / sum(n for _, n in self.train)
        runs = len(self.train)
        mean_test = sum(self.test) / len(self.test) if self.test else \
            0.15 * per_iter * sum(n for _, n in self.train) / runs
        left = (self.left_iters * per_iter + self.left_tests * mean_test) / self.jobs
        return f'; ETA {duration(left)}'
