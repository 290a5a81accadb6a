"""Linear regression trained on its own labels (Dohmatob, Feng and Kempe 2024, "Model collapse
demystified"; Gerstgrasser et al. 2024, "Is model collapse inevitable?").

The truth is y = x . b* + sigma eps with x ~ N(0, I_d). Generation 0's original data are T rows
(x, y) from the truth; model g + 1 is the ordinary least-squares fit to the training set that the
data regime forms, and model g labels its T rows as y = x . b_g + sigma eps (fresh noise). The
design x is drawn afresh every generation (`design: fresh`) or is one fixed T x d matrix for every
generation and chain (`design: fixed`, the setting of Gerstgrasser et al.'s accumulate result).
Chains run through `modelcollapse.family` (jit(vmap(lax.scan)), every regime of
`modelcollapse.regimes`); the metric `error` is ||b_g - b*||^2, whose exact expectation
`modelcollapse.theory.regression` gives.

Rows are [x_1 .. x_d, y], float32 [T, d + 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse.family import Family

DESIGNS = ("fresh", "fixed")


def fit(rows: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted least squares b = (X^T W X)^{-1} X^T W y; rows [T, d + 1], weights [T] of 0/1."""
    x, y = rows[:, :-1], rows[:, -1]
    xw = x * weights[:, None]
    return jnp.linalg.solve(xw.T @ x, xw.T @ y)


def fixed_design(seed: int, sample_size: int, dim: int) -> np.ndarray:
    """The fixed design X [T, d], standard normal, drawn once from `seed` (float32)."""
    return np.asarray(jax.random.normal(jax.random.key(seed), (sample_size, dim)), np.float32)


def family(*, dim: int, noise: float = 1.0, design: str = "fresh", sample_size: int | None = None,
           design_seed: int = 0) -> Family:
    """The regression family with b* = (1, ..., 1) / sqrt(d) and noise sd `noise`.

    design 'fixed' needs `sample_size` (T, the rows every generation labels: the fixed design has
    T rows, so regimes must train on whole generations of T rows) and draws X from `design_seed`.
    """
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise > 0:
        raise ValueError(f"noise must be a number > 0, got {noise!r}")
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {list(DESIGNS)}, got {design!r}")
    if design == "fixed" and (sample_size is None or sample_size <= dim + 1):
        raise ValueError(f"design 'fixed' needs sample_size > dim + 1 = {dim + 1}, got {sample_size!r}")
    b_star = jnp.full(dim, 1.0 / np.sqrt(dim), jnp.float32)
    x_fixed = jnp.asarray(fixed_design(design_seed, sample_size, dim)) if design == "fixed" else None

    def sample(key, b, n):
        k_x, k_eps = jax.random.split(key)
        if x_fixed is None:
            x = jax.random.normal(k_x, (n, dim))
        elif n == x_fixed.shape[0]:
            x = x_fixed
        else:  # fewer rows (mix's real share from the truth): the first n rows of the design
            x = x_fixed[:n]
        y = x @ b + noise * jax.random.normal(k_eps, (n,))
        return jnp.concatenate([x, y[:, None]], axis=1)

    def metrics(b):
        return {"error": jnp.sum((b - b_star) ** 2)}

    return Family(name=f"regression-{design}", truth=b_star, fit=fit, sample=sample, metrics=metrics)
