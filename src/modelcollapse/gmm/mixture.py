"""A Gaussian mixture as a density: its parameters (`GMMParams`), log-densities, `score` and `sample`.

Layout. The private functions here and in `em.py` take points transposed, [d, N] (N minor): their
names end in `_dn` and the points are called `x_dn`. The public ones (`score`, `sample`, and
em.py's `fit`, `initialize`, `em_step`) take and return [N, d]. In [d, N] every coordinate,
log-density and responsibility is a length-N vector, so each step is elementwise passes plus
reductions over the contiguous axis, with the d x d and K loops unrolled at trace time. Measured
on the CPU with 64 vmapped replicates of N = 1000: 3.2 ms per EM iteration with [N, d] arrays,
einsums and batched Cholesky; 0.45 ms in this layout (0.75 ms when the M-step's sums were stacked
into one [rows, N] reduction).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class GMMParams(NamedTuple):
    """A mixture's parameters; leading axes (replicates, generations) are allowed where noted."""

    weights: jax.Array  # [..., K], summing to 1
    means: jax.Array  # [..., K, d]
    covs: jax.Array  # [..., K, d, d], each >= reg_covar * I


def _cholesky_entries(cov: jax.Array) -> list[list[jax.Array]]:
    """Lower Cholesky factor of one [d, d] matrix as nested lists of scalars, L[i][j] for j <= i."""
    d = cov.shape[-1]
    rows = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            s = cov[i, j] - sum(rows[i][m] * rows[j][m] for m in range(j))
            # The floor keeps s > 0 in exact arithmetic; the max guards rounding on a near-line.
            rows[i][j] = jnp.sqrt(jnp.maximum(s, 1e-30)) if i == j else s / rows[j][j]
    return rows


def _log_prob_dn(x_dn, params: GMMParams):
    """log(w_k N(x_n | mu_k, Sigma_k)) and x - mu_k for x_dn [d, N]: ([K] lists of [N], [K][d] lists of [N])."""
    d = x_dn.shape[0]
    log_probs, diffs = [], []
    for c in range(params.weights.shape[0]):
        chol = _cholesky_entries(params.covs[c])
        diff = [x_dn[i] - params.means[c, i] for i in range(d)]
        ys = []  # y = L^{-1} (x - mu), forward substitution
        for i in range(d):
            ys.append((diff[i] - sum(chol[i][m] * ys[m] for m in range(i))) / chol[i][i])
        const = jnp.log(params.weights[c]) - 0.5 * d * math.log(2 * math.pi) - sum(jnp.log(chol[i][i])
                                                                                   for i in range(d))
        log_probs.append(const - 0.5 * sum(y * y for y in ys))
        diffs.append(diff)
    return log_probs, diffs


def _logsumexp(terms):
    """log sum_k exp(terms[k]) over a list of [N] arrays: (log-sum [N], exp(terms - max) list, their sum)."""
    top = terms[0]
    for t in terms[1:]:
        top = jnp.maximum(top, t)
    scaled = [jnp.exp(t - top) for t in terms]
    total = sum(scaled)
    return top + jnp.log(total), scaled, total


def _score_dn(x_dn, w, params: GMMParams):
    return jnp.sum(w * _logsumexp(_log_prob_dn(x_dn, params)[0])[0]) / jnp.sum(w)


def _cast(x, params):
    """x as an array and the parameters in its dtype: the public functions compute in x's dtype."""
    x = jnp.asarray(x)
    return x, GMMParams(*(jnp.asarray(p, x.dtype) for p in params))


def score(x: jax.Array, params: GMMParams, weights: jax.Array | None = None) -> jax.Array:
    """Weighted mean log-likelihood of x [N, d] under the mixture (scikit-learn's `score`); []."""
    x, params = _cast(x, params)
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    return _score_dn(x.T, w, params)


def _sample_dn(key, params: GMMParams, n: int) -> jax.Array:
    """n draws from the mixture, [d, n]: a component by inverse CDF of one uniform, then mu + L z."""
    k_comp, k_noise = jax.random.split(key)
    d, k = params.means.shape[-1], params.weights.shape[0]
    u = jax.random.uniform(k_comp, (n,), params.weights.dtype)
    comp = jnp.sum(u[None] >= jnp.cumsum(params.weights)[:-1, None], axis=0)  # [n] in 0..K-1
    with jax.threefry_partitionable(False):  # both words of each hash: half the cost (see modelcollapse.gaussian)
        z = jax.random.normal(k_noise, (d, n), params.means.dtype)
    chols = [_cholesky_entries(params.covs[c]) for c in range(k)]
    rows = []
    for i in range(d):
        per = [params.means[c, i] + sum(chols[c][i][j] * z[j] for j in range(i + 1)) for c in range(k)]
        row = per[0]
        for c in range(1, k):
            row = jnp.where(comp == c, per[c], row)
        rows.append(row)
    return jnp.stack(rows)


def sample(key: jax.Array, params: GMMParams, n: int) -> jax.Array:
    """n draws from the mixture; [n, d]. Each point picks its component, then a Gaussian draw."""
    return _sample_dn(key, GMMParams(*(jnp.asarray(p) for p in params)), n).T
