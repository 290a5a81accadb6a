"""A new data regime: train on the samples of the last k generations (a sliding window).

What it models: a practitioner who keeps a bounded memory of data, say the last k crawls or
snapshots, and retrains on them, discarding older ones (the original, real data included once
it falls out of the window). It sits between the two regimes of the literature: k = 1 is
`replace` (Shumailov et al. 2024: only the previous generation's output), and k >= generations
is `accumulate` (Gerstgrasser et al. 2024: everything ever seen, real data included). For k in
between the training set has a fixed size (about kM points) but consecutive models share most
of it, so it asks whether a finite memory slows collapse or stops it.

Model g + 1 trains on the samples of generations max(0, g - k + 1) .. g, where generation 0's
"samples" are the original data (n_original points) and every later generation contributes M.
Usage: `import examples.exponential.window` once (it registers the regime), then
`family.simulate(..., regime={"name": "window", "k": 5})`, or `window: {k: 5}` in a config block.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from modelcollapse.regimes import RegimeInputs, Weighted, register


def window(inputs: RegimeInputs, *, k: int) -> Weighted:
    """The last k generations' rows of the pool: (rows [L, ...], weights [L]), L fixed for the chain."""
    m, n_original, capacity = inputs.m, inputs.original.shape[0], inputs.pool.rows.shape[0]
    # The largest window: k blocks of M, or the original block plus k - 1 blocks of M; at most the pool.
    length = min(max(k * m, n_original + (k - 1) * m), capacity)
    start = jnp.maximum(inputs.pool.size - length, 0)
    data = jax.lax.dynamic_slice_in_dim(inputs.pool.rows, start, length)
    rows = start + jnp.arange(length)
    g = inputs.generation
    first = jnp.where(g < k, 0, n_original + (g - k) * m)  # first row of generation max(0, g - k + 1)
    return Weighted(data, ((rows >= first) & (rows < inputs.pool.size)).astype(jnp.float32))


# It reads the pool's rows by generation, so it runs in families that hold points (`regimes.PointOps`).
register("window", window, needs={"pool_rows"}, parameters={
    "k": {"description": "Generations in the window (1: replace; at least generations: accumulate).",
          "type": "integer", "minimum": 1}})
