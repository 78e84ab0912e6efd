"""Wall time per named stage of a computation (a catalogue chunk's cost account)."""

import time
from collections import defaultdict
from contextlib import contextmanager

__all__ = ["Stopwatch"]


class Stopwatch:
    """Accumulates seconds per stage: ``with watch("mode"): ...``; ``watch.seconds`` maps
    each stage to its total. Results must be on the host when a stage ends (e.g. converted
    with ``np.asarray``), so that asynchronous dispatch does not move time between stages."""

    def __init__(self):
        self.seconds = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
