"""xcomlog benchmarks: ``python -m benchmarks`` runs every ``*_bench.py`` module here."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_rate(func: Callable[[], int], seconds: float, repeats: int) -> float:
    """Best rate (items/s) over ``repeats`` samples of at least ``seconds`` each.

    ``func`` does some work and returns how many items it handled; the best sample is
    the one least disturbed by other load on the machine.
    """
    func()  # warm up caches and lazy imports
    best = 0.0
    for _ in range(repeats):
        done = 0
        start = time.perf_counter()
        while True:
            done += func()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, done / elapsed)
    return best
