"""Sample-size schedules M_i: how many points generation i draws.

- constant:    M_i = M_0
- linear:      M_i = M_0 (1 + i)
- superlinear: M_i = M_0 (1 + i)^p, p > 1

The Nature paper's bound (Theorem 3.1 discussion): E[W2^2] of the recursive Gaussian fit stays
bounded only if sum_i 1/M_i converges, i.e. for superlinear growth; constant and linear
schedules drift without bound (linear only logarithmically).
"""

from __future__ import annotations

import numpy as np

KINDS = ("constant", "linear", "superlinear")
# Sizes are carried as float32 inside JAX; beyond 2^53 even the float64 theory loses integers.
MAX_SIZE = 2.0**53


def sample_sizes(kind: str, *, base: int, generations: int, power: float = 2.0) -> np.ndarray:
    """[generations] per-generation sample sizes M_0..M_{G-1} (float64 holding integers)."""
    if kind not in KINDS:
        raise ValueError(f"schedule must be one of {list(KINDS)}, got {kind!r}")
    if not isinstance(base, (int, np.integer)) or base < 2:
        raise ValueError(f"schedule base sample size must be an integer >= 2, got {base!r}")
    if generations < 1:
        raise ValueError(f"schedule generations must be >= 1, got {generations}")
    i = np.arange(generations, dtype=np.float64)
    if kind == "constant":
        sizes = np.full(generations, float(base))
    elif kind == "linear":
        sizes = base * (1 + i)
    else:
        if not power > 1:
            raise ValueError(f"superlinear schedule power must be > 1, got {power}")
        sizes = np.round(base * (1 + i) ** power)
    if sizes[-1] > MAX_SIZE:
        raise ValueError(f"schedule {kind!r} reaches M = {sizes[-1]:.3g} > 2^53 at generation {generations - 1}; "
                         f"lower base, power or generations")
    return sizes
