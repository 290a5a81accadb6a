"""Monte-Carlo estimates across replicates (axis 0), each with its standard error."""

from __future__ import annotations

import numpy as np


def mean_and_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over replicates and its standard error std/sqrt(R); x is [R, ...]."""
    x = np.asarray(x, dtype=np.float64)
    r = x.shape[0]
    se = x.std(axis=0, ddof=1) / np.sqrt(r) if r > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), se


def median_and_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over replicates and a distribution-free standard error.

    The sample median's rank is Binomial(R, 1/2), so the order statistics at ranks
    R/2 -/+ sqrt(R)/2 bracket one standard error either side; half their distance is the SE.
    """
    x = np.sort(np.asarray(x, dtype=np.float64), axis=0)
    r = x.shape[0]
    half_width = 0.5 * np.sqrt(r)
    lo = int(np.clip(np.floor(r / 2 - half_width), 0, r - 1))
    hi = int(np.clip(np.ceil(r / 2 + half_width) - 1, 0, r - 1))
    return np.median(x, axis=0), (x[hi] - x[lo]) / 2
