"""Recursive fit-and-sample of Gaussian mixtures by EM (Shumailov et al., Nature 2024, the GMM figure).

The paper's setting: N = 1000 points from one standard 2-D Gaussian; a 2-component full-covariance
mixture is fitted by EM; each generation fits on the previous generation's N samples and draws N
new ones. Generation 0 is the fit to the original data (the paper's GMM_0); `generations` counts
the refits after it, so a chain has G + 1 fits. (The 1-D Gaussian family calls the truth its
generation 0; here the truth is not a K-component mixture, so index 0 is the first fit, as in the
paper's figure. Generation g trains on what `regimes.training_size(generation=g + 1)` says.)

EM follows scikit-learn's `GaussianMixture` step for step (so tests can hold it to it): E-step
with log-sum-exp responsibilities; M-step with N_k = sum of responsibilities + 10 eps, the
covariance floor `reg_covar` added to every diagonal, weights N_k / sum N_k; stop when the mean
log-likelihood (computed in the E-step, at the parameters before the M-step) changes by less than
`tol`, or after `max_iter` iterations, returning the parameters of the last M-step. Points carry
weights (0 for the empty slots of a pre-allocated pool), which is how `accumulate` trains on a
growing data set inside a fixed-shape scan.

Degenerate data: every covariance is at least `reg_covar` * I (the floor; > 0 is required), so
all points equal gives finite parameters with covariance `reg_covar` * I, never NaN; a component
that receives no responsibility keeps weight ~10 eps / N and mean 0 (scikit-learn's behaviour).
Fewer points than components is an error.

Runs as `jit(vmap(lax.scan over generations(lax.while_loop over EM iterations)))`. Under vmap a
while loop runs until every replicate has converged (finished ones are masked), so a generation
costs the slowest replicate's iteration count. The d x d algebra (d = 2 here) is unrolled into
elementwise ops for d <= 4: inside a vmapped while loop that was measured faster on the CPU than
batched LAPACK calls (benchmarks/gmm.py).

Keys: replicate r uses fold_in(key(seed), r) and generation g folds in g, then a fixed tag per use
(draw, fit, real data, subset), so a chain's numbers do not depend on how many run beside it.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse.gaussian import replicate_keys
from modelcollapse.regimes import Regime, append, split_sizes, uniform_subset
from modelcollapse.theory import gmm as theory

INITS = ("kmeans++", "random")
# The paper's snapshot generations (its GMM figure); those beyond `generations` are dropped.
SNAPSHOTS = (0, 50, 100, 150, 200, 350, 2000)
# fold_in tags inside a generation's key: what each random draw is for.
_DRAW, _FIT, _REAL, _SUBSET = 0, 1, 2, 3


class GMMParams(NamedTuple):
    weights: jax.Array  # [..., K], summing to 1
    means: jax.Array  # [..., K, d]
    covs: jax.Array  # [..., K, d, d], each >= reg_covar * I


def truth(data: str) -> GMMParams:
    """The true data distribution of a named data set, as a mixture (float64 numpy arrays).

    blob: the paper's one standard 2-D Gaussian. two_blobs: two unit-covariance blobs at (-/+3, 0)
    with weights 1/2, 6 standard deviations apart (overlap density exp(-4.5) at the midpoint), so
    a lost mode shows as a component that never comes back, not only as shrinking variance.
    """
    if data == "blob":
        return GMMParams(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    if data == "two_blobs":
        return GMMParams(np.full(2, 0.5), np.array([[-3.0, 0.0], [3.0, 0.0]]), np.stack([np.eye(2)] * 2))
    raise ValueError(f"data must be one of {list(DATASETS)}, got {data!r}")


DATASETS = ("blob", "two_blobs")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GMMConfig:
    """One GMM chain setting (the `gmm:` config block gives one per data set)."""

    sample_size: int  # N: points drawn per generation (and the size of the original data set)
    generations: int  # G: refits after generation 0 (the fit to the original data)
    replicates: int  # R: independent chains, run in parallel with vmap
    n_components: int = 2  # K: mixture components fitted each generation
    data: str = "blob"  # the true distribution, one of DATASETS
    regime: Regime = Regime()  # how each generation's training set is formed
    tol: float = 1e-5  # EM stops when the mean log-likelihood changes by less (scikit-learn's test)
    max_iter: int = 2000  # EM iteration cap per fit (the paper's)
    reg_covar: float = 1e-6  # covariance floor added to each diagonal (scikit-learn's default)
    init: str = "kmeans++"  # 'kmeans++' seeds + nearest-seed split, or 'random' responsibilities
    snapshots: tuple = SNAPSHOTS  # generations whose training points of replicate 0 are stored

    def __post_init__(self):
        for name in ("sample_size", "generations", "replicates", "n_components", "max_iter"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.sample_size < self.n_components:
            raise ValueError(f"sample_size ({self.sample_size}) must be >= n_components ({self.n_components}): "
                             f"EM needs at least one point per component")
        if self.data not in DATASETS:
            raise ValueError(f"data must be one of {list(DATASETS)}, got {self.data!r}")
        if not isinstance(self.regime, Regime):
            raise ValueError(f"regime must be a modelcollapse.regimes.Regime, got {self.regime!r}")
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if not (isinstance(self.reg_covar, (int, float)) and math.isfinite(self.reg_covar) and self.reg_covar > 0):
            raise ValueError(f"reg_covar must be a finite number > 0 (the floor that keeps covariances positive "
                             f"definite), got {self.reg_covar!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {self.init!r}")
        snaps = tuple(self.snapshots)
        if any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0 for s in snaps) \
                or len(set(snaps)) != len(snaps):
            raise ValueError(f"snapshots must be distinct integers >= 0, got {self.snapshots!r}")

    @property
    def snapshot_generations(self) -> np.ndarray:
        """The snapshot generations that the chain reaches, sorted; [S] int32."""
        return np.array(sorted(s for s in self.snapshots if s <= self.generations), np.int32)

    @property
    def pool_capacity(self) -> int:
        """Points an accumulating regime stores: the original data plus every generation's draws."""
        return self.sample_size * (self.generations + 1)


class GMMFit(NamedTuple):
    weights: jax.Array  # [K]
    means: jax.Array  # [K, d]
    covs: jax.Array  # [K, d, d]
    log_likelihood: jax.Array  # []: weighted mean log-likelihood of the data at the returned parameters
    n_iter: jax.Array  # []: EM iterations run (int32)
    converged: jax.Array  # []: the change fell below tol before max_iter (bool)


class GMMChains(NamedTuple):
    weights: np.ndarray  # [R, G+1, K]; generation 0 is the fit to the original data (GMM_0)
    means: np.ndarray  # [R, G+1, K, d]
    covs: np.ndarray  # [R, G+1, K, d, d]
    log_likelihood: np.ndarray  # [R, G+1]: mean log-likelihood of each fit on its training set
    n_iter: np.ndarray  # [R, G+1] int32: EM iterations per fit
    converged: np.ndarray  # [R, G+1] bool
    l2_gmm0: np.ndarray  # [R, G+1] float64: squared L2 distance between GMM_0 and GMM_g (closed form)
    l2_truth: np.ndarray  # [R, G+1] float64: squared L2 distance between the true density and GMM_g
    snapshot_generations: np.ndarray  # [S] int32
    snapshot_points: np.ndarray  # [S, N, d]: replicate 0's draws that generation g was fitted on (g=0: original)


# -- small-matrix algebra, unrolled over a static d (see the module docstring)


def _cholesky(a: jax.Array) -> jax.Array:
    """Lower Cholesky factor of [..., d, d] symmetric positive-definite matrices."""
    d = a.shape[-1]
    if d > 4:
        return jnp.linalg.cholesky(a)
    rows = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            s = a[..., i, j] - sum(rows[i][m] * rows[j][m] for m in range(j))
            # The floor keeps s > 0 in exact arithmetic; the max guards float32 rounding on a near-line.
            rows[i][j] = jnp.sqrt(jnp.maximum(s, 1e-30)) if i == j else s / rows[j][j]
    zero = jnp.zeros_like(a[..., 0, 0])
    return jnp.stack([jnp.stack([rows[i][j] if j <= i else zero for j in range(d)], -1) for i in range(d)], -2)


def _solve_lower(chol: jax.Array, b: jax.Array) -> jax.Array:
    """L^{-1} b for chol [K, d, d] and b [K, N, d] (forward substitution); [K, N, d]."""
    d = chol.shape[-1]
    if d > 4:
        return jax.vmap(lambda l, v: jax.scipy.linalg.solve_triangular(l, v.T, lower=True).T)(chol, b)
    out = []
    for i in range(d):
        s = b[..., i] - sum(chol[:, None, i, m] * out[m] for m in range(i))
        out.append(s / chol[:, None, i, i])
    return jnp.stack(out, -1)


def _log_gauss(x: jax.Array, means: jax.Array, covs: jax.Array) -> jax.Array:
    """log N(x_n | mu_k, Sigma_k); x [N, d], means [K, d], covs [K, d, d] -> [N, K]."""
    d = x.shape[-1]
    chol = _cholesky(covs)
    y = _solve_lower(chol, x[None] - means[:, None])  # [K, N, d]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)  # [K]
    return (-0.5 * (d * math.log(2 * math.pi) + log_det[:, None] + jnp.sum(y * y, -1))).T


# -- EM


def _e_step(x, w, params: GMMParams):
    """Weighted mean log-likelihood [] and responsibilities times point weights [N, K]."""
    log_prob = _log_gauss(x, params.means, params.covs) + jnp.log(params.weights)
    log_norm = jax.nn.logsumexp(log_prob, axis=1)  # [N]
    mean_ll = jnp.sum(w * log_norm) / jnp.sum(w)
    return mean_ll, jnp.exp(log_prob - log_norm[:, None]) * w[:, None]


def _m_step(x, resp, reg_covar) -> GMMParams:
    """scikit-learn's `_estimate_gaussian_parameters` (full covariances) from weighted responsibilities."""
    d = x.shape[-1]
    # [K]; scikit-learn adds 10 eps of the data's dtype, which keeps an empty component finite
    nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(x.dtype).eps
    means = resp.T @ x / nk[:, None]  # [K, d]
    diff = x[None] - means[:, None]  # [K, N, d]
    covs = jnp.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None] + reg_covar * jnp.eye(d, dtype=x.dtype)
    return GMMParams(nk / jnp.sum(nk), means, covs)


def em_step(x: jax.Array, w: jax.Array, params: GMMParams, reg_covar: float) -> tuple[GMMParams, jax.Array]:
    """One EM iteration: (new parameters, mean log-likelihood at the *old* parameters).

    x [N, d], w [N] point weights; the log-likelihood never decreases from one call to the next,
    up to reg_covar's second-order effect (its shift is O(reg_covar^2 ||Sigma^-1||^2)).
    """
    mean_ll, resp = _e_step(x, w, params)
    return _m_step(x, resp, reg_covar), mean_ll


def _kmeans_pp(key, x, w, k: int):
    """k-means++ seeds (D^2 sampling, Arthur & Vassilvitskii 2007) among points with w > 0; [k, d].

    When every remaining D^2 is zero (all points equal) the next seed is drawn uniformly instead.
    """
    keys = jax.random.split(key, k)
    log_w = jnp.log(w)
    centres = [x[jax.random.categorical(keys[0], log_w)]]
    d2 = jnp.sum((x - centres[0]) ** 2, -1)
    for j in range(1, k):
        p = w * d2
        logits = jnp.where(jnp.sum(p) > 0, jnp.log(p), log_w)
        centres.append(x[jax.random.categorical(keys[j], logits)])
        d2 = jnp.minimum(d2, jnp.sum((x - centres[-1]) ** 2, -1))
    return jnp.stack(centres)


def _lloyd(x, w, centres, max_iter: int):
    """Lloyd's k-means iterations from `centres` [k, d] until no point changes cluster (or max_iter).

    Returns the final hard labels [N] int32. A cluster that loses all its points keeps its centre.
    """
    k = centres.shape[0]

    def labels_of(c):
        return jnp.argmin(jnp.sum((x[:, None] - c[None]) ** 2, -1), axis=1).astype(jnp.int32)

    def body(s):
        c, labels, _, i = s
        onehot = jax.nn.one_hot(labels, k, dtype=x.dtype) * w[:, None]  # [N, k]
        count = jnp.sum(onehot, 0)
        c = jnp.where(count[:, None] > 0, onehot.T @ x / jnp.maximum(count, 1e-30)[:, None], c)
        new = labels_of(c)
        return c, new, jnp.any(new != labels), i + 1

    start = (centres, labels_of(centres), jnp.asarray(True), jnp.int32(0))
    return jax.lax.while_loop(lambda s: s[2] & (s[3] < max_iter), body, start)[1]


# Lloyd iterations of the kmeans++ initialisation: scikit-learn's KMeans caps them at 300; two
# well-separated clusters settle in a handful, and the cap only bounds pathological ties.
LLOYD_ITER = 100


def initialize(key: jax.Array, x: jax.Array, n_components: int, *, weights: jax.Array | None = None,
               init: str = "kmeans++", reg_covar: float = 1e-6) -> GMMParams:
    """Starting parameters for EM, drawn from `key`; the same ones `fit(key, ...)` starts from.

    kmeans++: k-means++ seeds, Lloyd's k-means until no point changes cluster, then one M-step on
    the hard labels (scikit-learn's default 'kmeans' init, with our own seeding). A cluster that
    ends with no point (only with duplicate points) starts at its seed with covariance reg_covar * I.
    random: uniform random responsibilities, normalised per point, then one M-step (scikit-learn's
    'random'). x [N, d], weights [N] (default ones). Returns GMMParams with [K], [K, d], [K, d, d].
    """
    x = jnp.asarray(x)
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    if init == "random":
        resp = jax.random.uniform(key, (x.shape[0], n_components), x.dtype)
        return _m_step(x, resp / jnp.sum(resp, 1, keepdims=True) * w[:, None], reg_covar)
    if init != "kmeans++":
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    centres = _kmeans_pp(key, x, w, n_components)
    onehot = jax.nn.one_hot(_lloyd(x, w, centres, LLOYD_ITER), n_components, dtype=x.dtype) * w[:, None]
    params = _m_step(x, onehot, reg_covar)
    won = jnp.sum(onehot, 0) > 0  # [K]
    return params._replace(means=jnp.where(won[:, None], params.means, centres))


class _EMState(NamedTuple):
    params: GMMParams
    prev_ll: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _em(x, w, params0: GMMParams, tol, max_iter, reg_covar) -> GMMFit:
    """EM from params0 until |change of the mean log-likelihood| < tol or max_iter iterations."""

    def cond(s: _EMState):
        return ~s.converged & (s.n_iter < max_iter)

    def body(s: _EMState):
        params, ll = em_step(x, w, s.params, reg_covar)
        return _EMState(params, ll, s.n_iter + 1, jnp.abs(ll - s.prev_ll) < tol)

    start = _EMState(params0, jnp.asarray(-jnp.inf, x.dtype), jnp.int32(0), jnp.asarray(False))
    s = jax.lax.while_loop(cond, body, start)
    final_ll, _ = _e_step(x, w, s.params)
    return GMMFit(*s.params, final_ll, s.n_iter, s.converged)


def _fit(key, x, w, tol, max_iter, reg_covar, *, k: int, init: str) -> GMMFit:
    return _em(x, w, initialize(key, x, k, weights=w, init=init, reg_covar=reg_covar), tol, max_iter, reg_covar)


_fit_jit = jax.jit(_fit, static_argnames=("k", "init"))
_em_jit = jax.jit(_em)


def fit(key: jax.Array, x, n_components: int, *, weights=None, tol: float = 1e-5, max_iter: int = 2000,
        reg_covar: float = 1e-6, init: str = "kmeans++", init_weights=None, init_means=None,
        init_covs=None) -> GMMFit:
    """Fit a full-covariance Gaussian mixture to x [N, d] by EM; returns GMMFit (see its fields).

    weights [N] >= 0 weight the points (default ones). Starting point: `initialize(key, ...)`, or
    the explicit init_weights [K], init_means [K, d], init_covs [K, d, d] (all three or none; for
    scikit-learn pass weights_init, means_init and precisions_init = inv(init_covs)). Computes in
    x's float dtype (float32 unless x64 is enabled and x is float64).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"x must be [N, d], got shape {x.shape}")
    if not isinstance(n_components, (int, np.integer)) or isinstance(n_components, bool) or n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
    if x.shape[0] < n_components:
        raise ValueError(f"n_components ({n_components}) must be <= the number of points ({x.shape[0]}): "
                         f"EM needs at least one point per component")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (math.isfinite(reg_covar) and reg_covar > 0):
        raise ValueError(f"reg_covar must be a finite number > 0, got {reg_covar!r}")
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    if w.shape != x.shape[:1]:
        raise ValueError(f"weights must be [N] = [{x.shape[0]}], got shape {w.shape}")
    given = [v is not None for v in (init_weights, init_means, init_covs)]
    if any(given) and not all(given):
        raise ValueError("init_weights, init_means and init_covs must be given together")
    dyn = (jnp.asarray(tol, x.dtype), jnp.int32(max_iter), jnp.asarray(reg_covar, x.dtype))
    if all(given):
        params0 = GMMParams(*(jnp.asarray(v, x.dtype) for v in (init_weights, init_means, init_covs)))
        expected = ((n_components,), (n_components, x.shape[1]), (n_components, x.shape[1], x.shape[1]))
        if tuple(p.shape for p in params0) != expected:
            raise ValueError(f"init_weights/init_means/init_covs must have shapes {expected}, got "
                             f"{tuple(p.shape for p in params0)}")
        return _em_jit(x, w, params0, *dyn)
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    return _fit_jit(key, x, w, *dyn, k=n_components, init=init)


def sample(key: jax.Array, params: GMMParams, n: int) -> jax.Array:
    """n draws from the mixture; [n, d]. Each point picks its component, then a Gaussian draw."""
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.categorical(k_comp, jnp.log(params.weights), shape=(n,))
    z = jax.random.normal(k_noise, (n, params.means.shape[-1]), params.means.dtype)
    chol = _cholesky(params.covs)[comp]  # [n, d, d]
    return params.means[comp] + jnp.einsum("nij,nj->ni", chol, z)


# -- chains


def _chain(key, truth_params, snaps, tol, max_iter, reg_covar, *, n: int, generations: int, k: int,
           init: str, regime: Regime):
    """One chain: generation 0 fits the original data, then `generations` refits.

    Returns (fits: GMMFit with a leading [G+1] axis, snapshot points [S, n, d])."""
    n_real, n_syn = split_sizes(regime, n)
    ones = jnp.ones(n, jnp.float32)

    def fit_on(kg, x, w):
        return _fit(jax.random.fold_in(kg, _FIT), x, w, tol, max_iter, reg_covar, k=k, init=init)

    def snap(buf, g, x):  # keep x where g is a snapshot generation; buf [S, n, d]
        return jnp.where((snaps == g)[:, None, None], x[None], buf)

    k0 = jax.random.fold_in(key, 0)
    original = sample(jax.random.fold_in(k0, _DRAW), truth_params, n)
    fit0 = fit_on(k0, original, ones)
    carry = {"params": GMMParams(fit0.weights, fit0.means, fit0.covs),
             "snaps": snap(jnp.zeros((snaps.shape[0],) + original.shape, jnp.float32), 0, original)}
    if regime.name in ("accumulate", "accumulate_subsample"):
        pool = jnp.zeros((n * (generations + 1), original.shape[1]), jnp.float32)
        carry["pool"], carry["size"] = append(pool, jnp.int32(0), original)
    if regime.name == "mix" and regime.real_source == "original" and n_real:
        carry["original"] = original

    def step(carry, g):
        carry = dict(carry)
        kg = jax.random.fold_in(key, g)
        x = sample(jax.random.fold_in(kg, _DRAW), carry["params"], n)
        carry["snaps"] = snap(carry["snaps"], g, x)
        w = ones
        if regime.name == "replace":
            train = x
        elif regime.name == "accumulate":  # the whole pool, empty slots weighted 0
            carry["pool"], carry["size"] = append(carry["pool"], carry["size"], x)
            train, w = carry["pool"], (jnp.arange(carry["pool"].shape[0]) < carry["size"]).astype(jnp.float32)
        elif regime.name == "accumulate_subsample":
            carry["pool"], carry["size"] = append(carry["pool"], carry["size"], x)
            train = carry["pool"][uniform_subset(jax.random.fold_in(kg, _SUBSET), carry["size"], n)]
        else:  # mix: n_real real points, then the first n_syn synthetic ones
            parts = []
            if n_real:
                k_real = jax.random.fold_in(kg, _REAL)
                parts.append(carry["original"][uniform_subset(k_real, n, n_real)] if "original" in carry
                             else sample(k_real, truth_params, n_real))
            if n_syn:
                parts.append(x[:n_syn])
            train = jnp.concatenate(parts)
        f = fit_on(kg, train, w)
        carry["params"] = GMMParams(f.weights, f.means, f.covs)
        return carry, f

    carry, fits = jax.lax.scan(step, carry, jnp.arange(1, generations + 1))
    fits = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), fit0, fits)
    return fits, carry["snaps"]


@partial(jax.jit, static_argnames=("n", "generations", "k", "init", "regime"))
def _simulate(keys, truth_params, snaps, tol, max_iter, reg_covar, *, n, generations, k, init, regime):
    chain = partial(_chain, n=n, generations=generations, k=k, init=init, regime=regime)
    return jax.vmap(chain, in_axes=(0, None, None, None, None, None))(keys, truth_params, snaps, tol,
                                                                      max_iter, reg_covar)


def simulate(seed: int, *, sample_size: int, generations: int, replicates: int, n_components: int = 2,
             data: str = "blob", regime: Regime | None = None, tol: float = 1e-5, max_iter: int = 2000,
             reg_covar: float = 1e-6, init: str = "kmeans++", snapshots=SNAPSHOTS) -> GMMChains:
    """Run `replicates` independent EM fit-and-sample chains from the data set `data`.

    Every generation fits a fresh EM (new initialisation from its key) on its training set, which
    the regime forms from the N points drawn from the previous fit (see `modelcollapse.regimes`;
    `accumulate` trains on a weighted pool of N (G+1) slots, so its cost grows as G^2 N).
    Returns GMMChains: parameters per generation, float32 [R, G+1, ...]; the closed-form squared L2
    distances to GMM_0 and to the true density, float64 [R, G+1]; replicate 0's snapshot points.
    """
    cfg = GMMConfig(sample_size=sample_size, generations=generations, replicates=replicates,
                    n_components=n_components, data=data, regime=regime or Regime(), tol=tol, max_iter=max_iter,
                    reg_covar=reg_covar, init=init, snapshots=tuple(snapshots))
    true = truth(cfg.data)
    fits, snaps = _simulate(replicate_keys(seed, cfg.replicates),
                            GMMParams(*(jnp.asarray(a, jnp.float32) for a in true)),
                            jnp.asarray(cfg.snapshot_generations), jnp.float32(cfg.tol), jnp.int32(cfg.max_iter),
                            jnp.float32(cfg.reg_covar), n=cfg.sample_size, generations=cfg.generations,
                            k=cfg.n_components, init=cfg.init, regime=cfg.regime)
    fits = GMMFit(*(np.asarray(a) for a in fits))
    params = GMMParams(fits.weights, fits.means, fits.covs)
    first = GMMParams(*(a[:, :1] for a in params))  # GMM_0 per replicate, broadcast over generations
    return GMMChains(*params, fits.log_likelihood, fits.n_iter.astype(np.int32), fits.converged,
                     theory.l2_squared(first, params), theory.l2_squared(true, params),
                     cfg.snapshot_generations, np.asarray(snaps[0]))


# -- summaries


def component_scale(covs: np.ndarray) -> np.ndarray:
    """det(Sigma_k)^(1/(2d)): the geometric mean of a component's principal standard deviations; [...K]."""
    d = covs.shape[-1]
    return np.exp(np.linalg.slogdet(np.asarray(covs, np.float64))[1] / (2 * d))


def mode_mass(weights: np.ndarray, means: np.ndarray, true_means: np.ndarray) -> np.ndarray:
    """Fitted weight on each true mode: the summed weight of the components whose mean is nearest it.

    weights [..., K], means [..., K, d], true_means [M, d] -> [..., M]; a mode is lost when its mass
    falls below 1/N (fewer than one of the N draws expected near it).
    """
    d2 = np.sum((np.asarray(means)[..., :, None, :] - true_means) ** 2, -1)  # [..., K, M]
    nearest = np.argmin(d2, -1)  # [..., K]
    onehot = nearest[..., None] == np.arange(true_means.shape[0])  # [..., K, M]
    return np.sum(np.asarray(weights, np.float64)[..., None] * onehot, -2)


def summarize(weights, means, covs, l2_gmm0, l2_truth, n_iter, converged, *, data: str,
              sample_size: int, max_iter: int) -> dict[str, np.ndarray]:
    """Per-generation statistics across replicates, every array [G+1].

    l2_*: squared L2 distances (quartiles, and mean +- s.e.); sigma: the weight-averaged component
    scale `component_scale` (quartiles); mode_lost: share of chains with a true mode below 1/N mass
    (0 for one-mode data); n_iter_max / capped: EM iterations of the slowest chain and the share of
    fits that stopped at max_iter without converging.
    """
    from modelcollapse import metrics

    out = {"generation": np.arange(np.shape(l2_gmm0)[1])}
    for name, values in (("l2_gmm0", l2_gmm0), ("l2_truth", l2_truth)):
        values = np.asarray(values, np.float64)
        out[f"{name}_q25"], out[f"{name}_q50"], out[f"{name}_q75"] = np.quantile(values, [0.25, 0.5, 0.75], 0)
        out[f"{name}_mean"], out[f"{name}_se"] = metrics.mean_and_se(values)
    sigma = np.sum(np.asarray(weights, np.float64) * component_scale(covs), -1)  # [R, G+1]
    out["sigma_q25"], out["sigma_q50"], out["sigma_q75"] = np.quantile(sigma, [0.25, 0.5, 0.75], 0)
    lost = np.min(mode_mass(weights, means, truth(data).means), -1) < 1.0 / sample_size  # [R, G+1]
    out["mode_lost"], out["mode_lost_se"] = metrics.mean_and_se(lost.astype(np.float64))
    out["n_iter_max"] = np.max(n_iter, 0).astype(np.float64)
    out["capped"] = np.mean(~np.asarray(converged, bool) & (np.asarray(n_iter) >= max_iter), 0)
    return out
