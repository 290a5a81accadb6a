"""One EM fit on one chain's points: the E- and M-steps, the initialisation (k-means++ and
Lloyd, or random responsibilities), the loop to convergence, and the public `fit`,
`initialize` and `em_step`. Points are [d, N] in the `_dn` functions (see `mixture.py`).

EM follows scikit-learn's `GaussianMixture` step for step, so the tests can hold it to it: E-step
with log-sum-exp responsibilities; M-step with N_k = sum of responsibilities + 10 eps,
mu_k = sum r x / N_k, the covariance floor `reg_covar` added to every diagonal, weights
N_k / sum N_k; stop when the mean log-likelihood (computed in the E-step, at the parameters before
the M-step) changes by less than `tol`, or after `max_iter` iterations, and return the parameters
of the last M-step. Initialisation (from the key): k-means++ seeds then Lloyd's k-means until
the centres settle (scikit-learn's default 'kmeans', with our seeding), or random
responsibilities ('random'). Points carry weights (0 for the empty slots of a pre-allocated pool),
which is how `accumulate` trains on a growing data set inside fixed shapes.

Degenerate data: every covariance is at least `reg_covar` * I (the floor; > 0 is required), so
data with all points equal gives finite parameters with covariance `reg_covar` * I, never NaN.
Fewer points than components is an error.

The engines (`engines.py`) run these same steps, vmapped over replicates: `_step_dn` is one Lloyd
or EM iteration, `_start_dn` where a fit starts, `_lloyd_done` and `LLOYD_ITER` when Lloyd stops.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from modelcollapse.gmm.mixture import GMMParams, _cast, _log_prob_dn, _logsumexp
from modelcollapse.gmm.spec import INITS, _is_int, _is_number

# Cap on Lloyd iterations of the k-means++ initialisation (scikit-learn's KMeans: 300).
LLOYD_ITER = 300


class GMMFit(NamedTuple):
    """One EM fit: the mixture it returns and how EM got there. The engines stack these with
    leading [R, G+1] (replicates, generations)."""

    weights: jax.Array  # [K]
    means: jax.Array  # [K, d]
    covs: jax.Array  # [K, d, d]
    # []: weighted mean log-likelihood at the last E-step, i.e. at the parameters before the last
    # M-step (scikit-learn's lower_bound_); `score` gives it at the returned parameters
    log_likelihood: jax.Array
    n_iter: jax.Array  # []: EM iterations run (int32)
    converged: jax.Array  # []: the last change was below tol (bool); False means max_iter stopped it


# -- one iteration on x_dn [d, N]: the E-step's responsibilities, the M-step's sums in the same pass


def _argmin_rows(rows):
    """Index of the smallest of K [N] arrays, the first on ties; [N] int32."""
    best, idx = rows[0], jnp.zeros(rows[0].shape, jnp.int32)
    for c, row in enumerate(rows[1:], 1):
        idx, best = jnp.where(row < best, c, idx), jnp.minimum(row, best)
    return idx


def _m_step_dn(x_dn, resp, diffs, old_means, reg_covar, extra=()):
    """scikit-learn's M-step (full covariances) from responsibilities resp [K] list of [N] (already
    times the point weights) and the diffs x - c_k about any centres c_k = old_means [K, d].

    The sums, one reduction each: with S0 = sum r, X = sum r x, S1 = sum r (x - c),
    S2 = sum r (x - c)(x - c)^T and u = mu - c, sum r (x - mu)(x - mu)^T = S2 - S1 u^T - u S1^T
    + S0 u u^T exactly; c is the previous mean, so u -> 0 and float32 loses nothing to
    cancellation. `extra` rows [N] are summed too and returned.
    Returns (GMMParams, the extra sums, S0 [K]).
    """
    d, k = x_dn.shape[0], len(resp)
    tril = [(i, j) for i in range(d) for j in range(i + 1)]
    rows = list(extra)
    for c in range(k):
        r = resp[c]
        rows += [r] + [r * x_dn[i] for i in range(d)] + [r * diffs[c][i] for i in range(d)]
        rows += [r * diffs[c][i] * diffs[c][j] for i, j in tril]
    sums = jnp.stack([jnp.sum(row) for row in rows])
    width, eps = 1 + 2 * d + len(tril), 10 * jnp.finfo(x_dn.dtype).eps  # scikit-learn's guard for empty components
    nks, means, covs, masses = [], [], [], []
    for c in range(k):
        block = sums[len(extra) + c * width: len(extra) + (c + 1) * width]
        mass, raw, s1 = block[0], block[1:1 + d], block[1 + d:1 + 2 * d]
        s2 = jnp.zeros((d, d), x_dn.dtype)
        for q, (i, j) in enumerate(tril):
            s2 = s2.at[i, j].set(block[1 + 2 * d + q]).at[j, i].set(block[1 + 2 * d + q])
        nk = mass + eps
        mean = raw / nk
        u = mean - old_means[c]
        scatter = s2 - jnp.outer(s1, u) - jnp.outer(u, s1) + mass * jnp.outer(u, u)
        nks.append(nk)
        means.append(mean)
        covs.append(scatter / nk + reg_covar * jnp.eye(d, dtype=x_dn.dtype))
        masses.append(mass)
    nks = jnp.stack(nks)
    params = GMMParams(nks / jnp.sum(nks), jnp.stack(means), jnp.stack(covs))
    return params, sums[:len(extra)], jnp.stack(masses)


def _step_dn(x_dn, w, params: GMMParams, reg_covar, hard=False):
    """One iteration on x_dn [d, N] with point weights w [N]: (new GMMParams, mean log-likelihood).

    hard False: an EM iteration; the log-likelihood is the weighted mean at the *old* parameters.
    hard True: a Lloyd (k-means) iteration: each point goes wholly to its nearest mean, and the
    M-step on those labels gives the new parameters; a cluster with no point keeps its mean.
    `hard` may be a traced boolean (the async engine mixes both phases in one batch).
    """
    log_prob, diffs = _log_prob_dn(x_dn, params)
    log_norm, scaled, total = _logsumexp(log_prob)
    per_point = w / total
    resp = [s * per_point for s in scaled]
    if hard is not False:
        labels = _argmin_rows([sum(v * v for v in diff) for diff in diffs])
        resp = [jnp.where(hard, (labels == c) * w, r) for c, r in enumerate(resp)]
    new, (ll_sum, w_sum), mass = _m_step_dn(x_dn, resp, diffs, params.means, reg_covar, extra=(w * log_norm, w))
    if hard is not False:
        new = new._replace(means=jnp.where(hard & (mass == 0)[:, None], params.means, new.means))
    return new, ll_sum / w_sum


def em_step(x: jax.Array, w: jax.Array, params: GMMParams, reg_covar: float) -> tuple[GMMParams, jax.Array]:
    """One EM iteration: (new parameters, mean log-likelihood at the *old* parameters).

    x [N, d], w [N] point weights. The log-likelihood never decreases from one call to the next,
    up to reg_covar's effect, which is second order: O(reg_covar^2 ||Sigma^-1||^2).
    """
    x, params = _cast(x, params)
    return _step_dn(x.T, jnp.asarray(w, x.dtype), params, reg_covar)


# -- initialisation


def _pick(key, p):
    """An index drawn with probability proportional to p [N] >= 0 (one uniform, inverse CDF); []."""
    cdf = jnp.cumsum(p)
    return jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(key, dtype=p.dtype) * cdf[-1], side="right"),
                       p.shape[0] - 1)


def _kmeans_pp_dn(key, x_dn, w, k: int):
    """k-means++ seeds (D^2 sampling; Arthur & Vassilvitskii 2007) among points with w > 0; [k, d].

    When every remaining D^2 is zero (all points equal) the next seed is drawn uniformly instead.
    """
    keys = jax.random.split(key, k)
    centres = [x_dn[:, _pick(keys[0], w)]]
    d2 = sum((x_dn[i] - centres[0][i]) ** 2 for i in range(x_dn.shape[0]))
    for j in range(1, k):
        p = w * d2
        centres.append(x_dn[:, _pick(keys[j], jnp.where(jnp.sum(p) > 0, p, w))])
        d2 = jnp.minimum(d2, sum((x_dn[i] - centres[-1][i]) ** 2 for i in range(x_dn.shape[0])))
    return jnp.stack(centres)


def _start_dn(key, x_dn, w, k: int, init: str, reg_covar):
    """Where a fit starts: (GMMParams, hard) with hard True while Lloyd iterations are due.

    kmeans++: the seeds as means (weights 1/K, identity covariances, which Lloyd ignores), hard.
    random: the M-step of uniform random responsibilities, normalised per point (scikit-learn's
    'random'), straight to EM.
    """
    d = x_dn.shape[0]
    if init == "random":
        u = jax.random.uniform(key, (k, x_dn.shape[1]), x_dn.dtype)
        resp = list(u / jnp.sum(u, 0) * w)
        zero = jnp.zeros((k, d), x_dn.dtype)
        return _m_step_dn(x_dn, resp, [[x_dn[i] for i in range(d)]] * k, zero, reg_covar)[0], jnp.asarray(False)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=x_dn.dtype), (k, d, d))
    return GMMParams(jnp.full(k, 1.0 / k, x_dn.dtype), _kmeans_pp_dn(key, x_dn, w, k), eye), jnp.asarray(True)


# Lloyd stops when the centres move less than this share of the data's mean variance (summed squared
# shift), scikit-learn's KMeans tolerance, or when no point changes cluster (a shift of exactly 0).
LLOYD_TOL = 1e-4


def _lloyd_done(old: GMMParams, new: GMMParams):
    """Whether Lloyd has converged, from its last two iterates. With hard labels the mixture's total
    covariance is the data's (law of total variance), so the scale needs no pass over the data."""
    mean = new.weights @ new.means  # [d]
    total = jnp.einsum("k,kij->ij", new.weights, new.covs) + jnp.einsum("k,ki,kj->ij", new.weights, new.means,
                                                                          new.means) - jnp.outer(mean, mean)
    shift = jnp.sum((new.means - old.means) ** 2)
    return shift <= LLOYD_TOL * jnp.trace(total) / new.means.shape[-1]


def _initialize_dn(key, x_dn, w, k: int, init: str, reg_covar) -> GMMParams:
    params, hard = _start_dn(key, x_dn, w, k, init, reg_covar)
    if init == "random":
        return params

    def body(s):
        params, _, i = s
        new = _step_dn(x_dn, w, params, reg_covar, hard)[0]
        return new, _lloyd_done(params, new), i + 1

    start = (params, jnp.asarray(False), jnp.int32(0))
    return jax.lax.while_loop(lambda s: ~s[1] & (s[2] < LLOYD_ITER), body, start)[0]


def initialize(key: jax.Array, x: jax.Array, n_components: int, *, weights: jax.Array | None = None,
               init: str = "kmeans++", reg_covar: float = 1e-6) -> GMMParams:
    """The parameters EM starts from, drawn from `key` (the same ones `fit(key, ...)` starts from).

    kmeans++: k-means++ seeds, Lloyd's k-means until the centres move by less than LLOYD_TOL of
    the data's variance (at most LLOYD_ITER iterations), then the M-step on the last labels
    (scikit-learn's 'kmeans' init and stopping rule, with our seeding).
    random: the M-step of uniform random responsibilities (scikit-learn's 'random').
    x [N, d], weights [N] (default ones). Returns GMMParams with [K], [K, d], [K, d, d].
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    x = jnp.asarray(x)
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    return _initialize_dn(key, x.T, w, n_components, init, reg_covar)


# -- fitting


class _EMState(NamedTuple):
    params: GMMParams
    prev_ll: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _em_dn(x_dn, w, params0: GMMParams, tol, max_iter, reg_covar) -> GMMFit:
    """EM from params0 until |change of the mean log-likelihood| < tol or max_iter iterations."""

    def body(s: _EMState):
        params, ll = _step_dn(x_dn, w, s.params, reg_covar, jnp.asarray(False))
        return _EMState(params, ll, s.n_iter + 1, jnp.abs(ll - s.prev_ll) < tol)

    start = _EMState(params0, jnp.asarray(-jnp.inf, x_dn.dtype), jnp.int32(0), jnp.asarray(False))
    s = jax.lax.while_loop(lambda s: ~s.converged & (s.n_iter < max_iter), body, start)
    return GMMFit(*s.params, s.prev_ll, s.n_iter, s.converged)


def _fit_dn(key, x_dn, w, tol, max_iter, reg_covar, *, k: int, init: str) -> GMMFit:
    return _em_dn(x_dn, w, _initialize_dn(key, x_dn, w, k, init, reg_covar), tol, max_iter, reg_covar)


_fit_jit = jax.jit(_fit_dn, static_argnames=("k", "init"))
_em_jit = jax.jit(_em_dn)


def fit(key: jax.Array, x, n_components: int, *, weights=None, tol: float = 1e-5, max_iter: int = 2000,
        reg_covar: float = 1e-6, init: str = "kmeans++", init_weights=None, init_means=None,
        init_covs=None) -> GMMFit:
    """Fit a full-covariance Gaussian mixture to x [N, d] by EM; returns GMMFit (see its fields).

    weights [N] >= 0 weight the points (default ones; their sum must be > 0). Starting point:
    `initialize(key, ...)`, or the explicit init_weights [K], init_means [K, d], init_covs [K, d, d]
    (all three or none; for scikit-learn pass weights_init, means_init and
    precisions_init = inv(init_covs)). Computes in x's float dtype (float32 unless x64 is enabled
    and x is float64). Jitted; tol, max_iter and reg_covar are traced (changing them does not
    recompile), n_components and init are static.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"x must be [N, d], got shape {x.shape}")
    if not _is_int(n_components):
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
    if x.shape[0] < n_components:
        raise ValueError(f"n_components ({n_components}) must be <= the number of points ({x.shape[0]}): "
                         f"EM needs at least one point per component")
    if not (_is_number(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if not _is_int(max_iter):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (_is_number(reg_covar) and reg_covar > 0):
        raise ValueError(f"reg_covar must be a finite number > 0 (the covariance floor), got {reg_covar!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    if w.shape != x.shape[:1]:
        raise ValueError(f"weights must be [N] = [{x.shape[0]}], got shape {w.shape}")
    given = [v is not None for v in (init_weights, init_means, init_covs)]
    if any(given) and not all(given):
        raise ValueError("init_weights, init_means and init_covs must be given together")
    dyn = (jnp.asarray(tol, x.dtype), jnp.int32(max_iter), jnp.asarray(reg_covar, x.dtype))
    if all(given):
        x, params0 = _cast(x, (init_weights, init_means, init_covs))
        expected = ((n_components,), (n_components, x.shape[1]), (n_components, x.shape[1], x.shape[1]))
        if tuple(p.shape for p in params0) != expected:
            raise ValueError(f"init_weights/init_means/init_covs must have shapes {expected}, got "
                             f"{tuple(p.shape for p in params0)}")
        return _em_jit(x.T, w, params0, *dyn)
    return _fit_jit(key, x.T, w, *dyn, k=n_components, init=init)
