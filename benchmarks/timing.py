"""Timing helpers shared by the benchmark scripts (run from the repository root)."""

from __future__ import annotations

import time

import jax


def best_of(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls; best-of, since noise (other processes) only adds time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)
