"""Recursive fit-and-sample of Gaussian mixtures by EM (Shumailov et al., Nature 2024, the GMM figure).

The paper's setting: N = 1000 points from one standard 2-D Gaussian; a 2-component full-covariance
mixture is fitted by EM; each generation fits on the previous generation's N samples and draws N
new ones. Generation 0 is the fit to the original data (the paper's GMM_0); `generations` counts
the refits after it, so a chain has G + 1 fits. (The 1-D Gaussian family calls the truth its
generation 0; here the truth is not a K-component mixture, so index 0 is the first fit, as in the
paper's figure: generation g trains on what `regimes.training_size(generation=g + 1)` says.)

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

Two engines run the same chains:
- `lockstep`: `jit(vmap(lax.scan over generations(lax.while_loop over iterations)))`. Under vmap
  a while loop runs until every replicate has stopped, so a generation costs the slowest
  replicate's iterations. EM's and Lloyd's iteration counts are heavy-tailed (paper's setting:
  ~7 EM iterations on average, the slowest of 32 replicates ~50), so most of that work is masked
  out. Simple; the tests' reference.
- `async` (default): one `lax.while_loop` of ticks. Each tick runs one Lloyd or EM iteration (per
  replicate, by phase) on every live replicate, vmapped; up to `slots` replicates whose EM just
  stopped record their fit and start their next generation (draw, training set, k-means++
  seeds), vmapped over the slots and scattered back by replicate index. Nothing waits for the
  slowest replicate.
Each replicate does the same arithmetic in both; XLA may round a reduction differently for
different batch shapes, and a chain of EM fits amplifies a last-bit difference (it can change an
iteration count, then everything after), so engines and batch sizes agree exactly for most chains
and in distribution for all.

Layout: points are [d, N] (N minor), the d x d and K loops unrolled at trace time, the M-step's
sums taken in the E-step's pass, one reduction per sum. Measured on the CPU with 64 vmapped
replicates of N = 1000: 3.2 ms per EM iteration with [N, d] arrays, einsums and batched
Cholesky; 0.45 ms in this layout (0.75 ms when the sums were stacked into one [rows, N] reduction).

Keys: replicate r uses fold_in(key(seed), r) and generation g folds in g, then a fixed tag per use
(draw, fit, real data, subset), so a chain's random numbers do not depend on what runs beside it.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse import metrics
from modelcollapse.runtime import replicate_keys
from modelcollapse.regimes import POOLING, Regime, append, check_pool_points, split_sizes, uniform_subset
from modelcollapse.theory import gmm as theory

DATASETS = ("blob", "two_blobs")
INITS = ("kmeans++", "random")
ENGINES = ("async", "lockstep")
# The paper's snapshot generations (its GMM figure); those beyond `generations` are dropped.
SNAPSHOTS = (0, 50, 100, 150, 200, 350, 2000)
# Cap on Lloyd iterations of the k-means++ initialisation (scikit-learn's KMeans: 300).
LLOYD_ITER = 300
# fold_in tags inside a generation's key: what each random draw is for.
_DRAW, _FIT, _REAL, _SUBSET = 0, 1, 2, 3


class GMMParams(NamedTuple):
    weights: jax.Array  # [..., K], summing to 1
    means: jax.Array  # [..., K, d]
    covs: jax.Array  # [..., K, d, d], each >= reg_covar * I


class GMMFit(NamedTuple):
    weights: jax.Array  # [K]
    means: jax.Array  # [K, d]
    covs: jax.Array  # [K, d, d]
    # []: weighted mean log-likelihood at the last E-step, i.e. at the parameters before the last
    # M-step (scikit-learn's lower_bound_); `score` gives it at the returned parameters
    log_likelihood: jax.Array
    n_iter: jax.Array  # []: EM iterations run (int32)
    converged: jax.Array  # []: the last change was below tol (bool); False means max_iter stopped it


class GMMChains(NamedTuple):
    weights: np.ndarray  # [R, G+1, K]; generation 0 is the fit to the original data (GMM_0)
    means: np.ndarray  # [R, G+1, K, d]
    covs: np.ndarray  # [R, G+1, K, d, d]
    log_likelihood: np.ndarray  # [R, G+1]: each fit's last mean log-likelihood on its training set
    n_iter: np.ndarray  # [R, G+1] int32: EM iterations per fit
    converged: np.ndarray  # [R, G+1] bool
    l2_gmm0: np.ndarray  # [R, G+1] float64: squared L2 distance between GMM_0 and GMM_g (closed form)
    l2_truth: np.ndarray  # [R, G+1] float64: squared L2 distance between the true density and GMM_g
    snapshot_generations: np.ndarray  # [S] int32
    snapshot_points: np.ndarray  # [S, N, d]: replicate 0's draws that generation g was fitted on (g=0: original)


def truth(data: str) -> GMMParams:
    """The true data distribution of a named data set, as a mixture (float64 numpy arrays).

    blob: the paper's one standard 2-D Gaussian. two_blobs: two unit-covariance blobs at (-/+3, 0)
    with weights 1/2, 6 standard deviations apart (density exp(-4.5) of a peak at the midpoint),
    so a lost mode shows as a blob that never comes back, not only as shrinking variance.
    """
    if data == "blob":
        return GMMParams(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    if data == "two_blobs":
        return GMMParams(np.full(2, 0.5), np.array([[-3.0, 0.0], [3.0, 0.0]]), np.stack([np.eye(2)] * 2))
    raise ValueError(f"data must be one of {list(DATASETS)}, got {data!r}")


def _is_int(value, low: int = 1) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_components(sample_size: int, n_components: int) -> None:
    """EM needs at least one point per component; ValueError if not."""
    if sample_size < n_components:
        raise ValueError(f"sample_size ({sample_size}) must be >= n_components ({n_components}): "
                         f"EM needs at least one point per component")


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
    init: str = "kmeans++"  # 'kmeans++' seeds + Lloyd, or 'random' responsibilities
    snapshots: tuple = SNAPSHOTS  # generations whose draws of replicate 0 are stored (for the figure)

    def __post_init__(self):
        for name in ("sample_size", "generations", "replicates", "n_components", "max_iter"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_components(self.sample_size, self.n_components)
        if self.data not in DATASETS:
            raise ValueError(f"data must be one of {list(DATASETS)}, got {self.data!r}")
        if not isinstance(self.regime, Regime):
            raise ValueError(f"regime must be a modelcollapse.regimes.Regime, got {self.regime!r}")
        if not (_is_number(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if not (_is_number(self.reg_covar) and self.reg_covar > 0):
            raise ValueError(f"reg_covar must be a finite number > 0 (the floor that keeps covariances positive "
                             f"definite), got {self.reg_covar!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {self.init!r}")
        snaps = tuple(self.snapshots)
        if any(not _is_int(s, 0) for s in snaps) or len(set(snaps)) != len(snaps):
            raise ValueError(f"snapshots must be distinct integers >= 0, got {self.snapshots!r}")
        check_pool_points(self.regime, self.sample_size * (self.generations + 1),
                          what="sample_size x (generations + 1)")

    @property
    def snapshot_generations(self) -> np.ndarray:
        """The snapshot generations that the chain reaches, sorted; [S] int32."""
        return np.array(sorted(s for s in self.snapshots if s <= self.generations), np.int32)


# -- EM on points stored as [d, N]: every coordinate, log-density and responsibility is a length-N
# vector, so each step is elementwise passes plus reductions over the contiguous axis.


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


def _log_prob_t(xt, params: GMMParams):
    """log(w_k N(x_n | mu_k, Sigma_k)) and x - mu_k for xt [d, N]: ([K] lists of [N], [K][d] lists of [N])."""
    d = xt.shape[0]
    log_probs, diffs = [], []
    for c in range(params.weights.shape[0]):
        chol = _cholesky_entries(params.covs[c])
        diff = [xt[i] - params.means[c, i] for i in range(d)]
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


def _argmin_rows(rows):
    """Index of the smallest of K [N] arrays, the first on ties; [N] int32."""
    best, idx = rows[0], jnp.zeros(rows[0].shape, jnp.int32)
    for c, row in enumerate(rows[1:], 1):
        idx, best = jnp.where(row < best, c, idx), jnp.minimum(row, best)
    return idx


def _m_step_t(xt, resp, diffs, old_means, reg_covar, extra=()):
    """scikit-learn's M-step (full covariances) from responsibilities resp [K] list of [N] (already
    times the point weights) and the diffs x - c_k about any centres c_k = old_means [K, d].

    The sums, one reduction each: with S0 = sum r, X = sum r x, S1 = sum r (x - c),
    S2 = sum r (x - c)(x - c)^T and u = mu - c, sum r (x - mu)(x - mu)^T = S2 - S1 u^T - u S1^T
    + S0 u u^T exactly; c is the previous mean, so u -> 0 and float32 loses nothing to
    cancellation. `extra` rows [N] are summed too and returned.
    Returns (GMMParams, the extra sums, S0 [K]).
    """
    d, k = xt.shape[0], len(resp)
    tril = [(i, j) for i in range(d) for j in range(i + 1)]
    rows = list(extra)
    for c in range(k):
        r = resp[c]
        rows += [r] + [r * xt[i] for i in range(d)] + [r * diffs[c][i] for i in range(d)]
        rows += [r * diffs[c][i] * diffs[c][j] for i, j in tril]
    sums = jnp.stack([jnp.sum(row) for row in rows])
    width, eps = 1 + 2 * d + len(tril), 10 * jnp.finfo(xt.dtype).eps  # scikit-learn's guard for empty components
    nks, means, covs, masses = [], [], [], []
    for c in range(k):
        block = sums[len(extra) + c * width: len(extra) + (c + 1) * width]
        mass, raw, s1 = block[0], block[1:1 + d], block[1 + d:1 + 2 * d]
        s2 = jnp.zeros((d, d), xt.dtype)
        for q, (i, j) in enumerate(tril):
            s2 = s2.at[i, j].set(block[1 + 2 * d + q]).at[j, i].set(block[1 + 2 * d + q])
        nk = mass + eps
        mean = raw / nk
        u = mean - old_means[c]
        scatter = s2 - jnp.outer(s1, u) - jnp.outer(u, s1) + mass * jnp.outer(u, u)
        nks.append(nk)
        means.append(mean)
        covs.append(scatter / nk + reg_covar * jnp.eye(d, dtype=xt.dtype))
        masses.append(mass)
    nks = jnp.stack(nks)
    params = GMMParams(nks / jnp.sum(nks), jnp.stack(means), jnp.stack(covs))
    return params, sums[:len(extra)], jnp.stack(masses)


def _step_t(xt, w, params: GMMParams, reg_covar, hard=False):
    """One iteration on xt [d, N] with point weights w [N]: (new GMMParams, mean log-likelihood).

    hard False: an EM iteration; the log-likelihood is the weighted mean at the *old* parameters.
    hard True: a Lloyd (k-means) iteration: each point goes wholly to its nearest mean, and the
    M-step on those labels gives the new parameters; a cluster with no point keeps its mean.
    `hard` may be a traced boolean (the async engine mixes both phases in one batch).
    """
    log_prob, diffs = _log_prob_t(xt, params)
    log_norm, scaled, total = _logsumexp(log_prob)
    per_point = w / total
    resp = [s * per_point for s in scaled]
    if hard is not False:
        labels = _argmin_rows([sum(v * v for v in diff) for diff in diffs])
        resp = [jnp.where(hard, (labels == c) * w, r) for c, r in enumerate(resp)]
    new, (ll_sum, w_sum), mass = _m_step_t(xt, resp, diffs, params.means, reg_covar, extra=(w * log_norm, w))
    if hard is not False:
        new = new._replace(means=jnp.where(hard & (mass == 0)[:, None], params.means, new.means))
    return new, ll_sum / w_sum


def _score_t(xt, w, params: GMMParams):
    return jnp.sum(w * _logsumexp(_log_prob_t(xt, params)[0])[0]) / jnp.sum(w)


def _cast(x, params):
    x = jnp.asarray(x)
    return x, GMMParams(*(jnp.asarray(p, x.dtype) for p in params))


def em_step(x: jax.Array, w: jax.Array, params: GMMParams, reg_covar: float) -> tuple[GMMParams, jax.Array]:
    """One EM iteration: (new parameters, mean log-likelihood at the *old* parameters).

    x [N, d], w [N] point weights. The log-likelihood never decreases from one call to the next,
    up to reg_covar's effect, which is second order: O(reg_covar^2 ||Sigma^-1||^2).
    """
    x, params = _cast(x, params)
    return _step_t(x.T, jnp.asarray(w, x.dtype), params, reg_covar)


def score(x: jax.Array, params: GMMParams, weights: jax.Array | None = None) -> jax.Array:
    """Weighted mean log-likelihood of x [N, d] under the mixture (scikit-learn's `score`); []."""
    x, params = _cast(x, params)
    w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)
    return _score_t(x.T, w, params)


# -- initialisation


def _pick(key, p):
    """An index drawn with probability proportional to p [N] >= 0 (one uniform, inverse CDF); []."""
    cdf = jnp.cumsum(p)
    return jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(key, dtype=p.dtype) * cdf[-1], side="right"),
                       p.shape[0] - 1)


def _kmeans_pp_t(key, xt, w, k: int):
    """k-means++ seeds (D^2 sampling; Arthur & Vassilvitskii 2007) among points with w > 0; [k, d].

    When every remaining D^2 is zero (all points equal) the next seed is drawn uniformly instead.
    """
    keys = jax.random.split(key, k)
    centres = [xt[:, _pick(keys[0], w)]]
    d2 = sum((xt[i] - centres[0][i]) ** 2 for i in range(xt.shape[0]))
    for j in range(1, k):
        p = w * d2
        centres.append(xt[:, _pick(keys[j], jnp.where(jnp.sum(p) > 0, p, w))])
        d2 = jnp.minimum(d2, sum((xt[i] - centres[-1][i]) ** 2 for i in range(xt.shape[0])))
    return jnp.stack(centres)


def _start_t(key, xt, w, k: int, init: str, reg_covar):
    """Where a fit starts: (GMMParams, hard) with hard True while Lloyd iterations are due.

    kmeans++: the seeds as means (weights 1/K, identity covariances, which Lloyd ignores), hard.
    random: the M-step of uniform random responsibilities, normalised per point (scikit-learn's
    'random'), straight to EM.
    """
    d = xt.shape[0]
    if init == "random":
        u = jax.random.uniform(key, (k, xt.shape[1]), xt.dtype)
        resp = list(u / jnp.sum(u, 0) * w)
        zero = jnp.zeros((k, d), xt.dtype)
        return _m_step_t(xt, resp, [[xt[i] for i in range(d)]] * k, zero, reg_covar)[0], jnp.asarray(False)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=xt.dtype), (k, d, d))
    return GMMParams(jnp.full(k, 1.0 / k, xt.dtype), _kmeans_pp_t(key, xt, w, k), eye), jnp.asarray(True)


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


def _initialize_t(key, xt, w, k: int, init: str, reg_covar) -> GMMParams:
    params, hard = _start_t(key, xt, w, k, init, reg_covar)
    if init == "random":
        return params

    def body(s):
        params, _, i = s
        new = _step_t(xt, w, params, reg_covar, hard)[0]
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
    return _initialize_t(key, x.T, w, n_components, init, reg_covar)


# -- fitting


class _EMState(NamedTuple):
    params: GMMParams
    prev_ll: jax.Array
    n_iter: jax.Array
    converged: jax.Array


def _em_t(xt, w, params0: GMMParams, tol, max_iter, reg_covar) -> GMMFit:
    """EM from params0 until |change of the mean log-likelihood| < tol or max_iter iterations."""

    def body(s: _EMState):
        params, ll = _step_t(xt, w, s.params, reg_covar, jnp.asarray(False))
        return _EMState(params, ll, s.n_iter + 1, jnp.abs(ll - s.prev_ll) < tol)

    start = _EMState(params0, jnp.asarray(-jnp.inf, xt.dtype), jnp.int32(0), jnp.asarray(False))
    s = jax.lax.while_loop(lambda s: ~s.converged & (s.n_iter < max_iter), body, start)
    return GMMFit(*s.params, s.prev_ll, s.n_iter, s.converged)


def _fit_t(key, xt, w, tol, max_iter, reg_covar, *, k: int, init: str) -> GMMFit:
    return _em_t(xt, w, _initialize_t(key, xt, w, k, init, reg_covar), tol, max_iter, reg_covar)


_fit_jit = jax.jit(_fit_t, static_argnames=("k", "init"))
_em_jit = jax.jit(_em_t)


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


def _sample_t(key, params: GMMParams, n: int) -> jax.Array:
    """n draws from the mixture, [d, n]: a component by inverse CDF of one uniform, then mu + L z."""
    k_comp, k_noise = jax.random.split(key)
    d, k = params.means.shape[-1], params.weights.shape[0]
    u = jax.random.uniform(k_comp, (n,), params.weights.dtype)
    comp = jnp.sum(u[None] >= jnp.cumsum(params.weights)[:-1, None], axis=0)  # [n] in 0..K-1
    with jax.threefry_partitionable(False):  # both words of each hash: half the cost (see gaussian.py)
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
    return _sample_t(key, GMMParams(*(jnp.asarray(p) for p in params)), n).T


# -- chains: what a generation is (shared by both engines)


class _Static(NamedTuple):
    """Everything a chain's shapes and control flow depend on (jit's static arguments)."""

    n: int
    generations: int
    k: int
    init: str
    regime: Regime


def _regime_start(original, st: _Static) -> dict:
    """A chain's regime state after generation 0 (arrays; empty for replace). original [d, n]."""
    state = {}
    if st.regime.name in POOLING:  # [N (G+1), d]: regimes.append's layout
        pool = jnp.zeros((st.n * (st.generations + 1), original.shape[0]), original.dtype)
        state["pool"], state["size"] = append(pool, jnp.int32(0), original.T)
    if st.regime.name == "mix" and st.regime.real_source == "original" and split_sizes(st.regime, st.n)[0]:
        state["original"] = original
    return state


def _training_set(kg, xt, state: dict, truth_params, st: _Static):
    """Generation g >= 1's training set from its N draws xt [d, n] (kg: its key).

    Returns (train [d, n_train], point weights [n_train], new regime state); n_train is the pool
    capacity N (G+1) for accumulate (empty slots weighted 0) and N otherwise.
    """
    state, regime, n = dict(state), st.regime, st.n
    w = jnp.ones(n, xt.dtype)
    if regime.name == "replace":
        return xt, w, state
    if regime.name in POOLING:
        state["pool"], state["size"] = append(state["pool"], state["size"], xt.T)
        if regime.name == "accumulate":
            pool = state["pool"].T
            return pool, (jnp.arange(pool.shape[1]) < state["size"]).astype(xt.dtype), state
        return state["pool"][uniform_subset(jax.random.fold_in(kg, _SUBSET), state["size"], n)].T, w, state
    n_real, n_syn = split_sizes(regime, n)  # mix: n_real real points, then the first n_syn synthetic ones
    parts = []
    if n_real:
        k_real = jax.random.fold_in(kg, _REAL)
        parts.append(state["original"][:, uniform_subset(k_real, n, n_real)] if "original" in state
                     else _sample_t(k_real, truth_params, n_real))
    if n_syn:
        parts.append(xt[:, :n_syn])
    return jnp.concatenate(parts, axis=1), w, state


def _generation_zero(key, truth_params, reg_covar, st: _Static):
    """Draw the original data: (original [d, n], train, w, regime state, EM start, hard)."""
    k0 = jax.random.fold_in(key, 0)
    original = _sample_t(jax.random.fold_in(k0, _DRAW), truth_params, st.n)
    state = _regime_start(original, st)
    train, w = original, jnp.ones(st.n, original.dtype)
    if st.regime.name == "accumulate":  # the same arrays as later generations: the pool, padded
        train = state["pool"].T
        w = (jnp.arange(train.shape[1]) < st.n).astype(original.dtype)
    return (original, train, w, state) + _start_t(jax.random.fold_in(k0, _FIT), train, w, st.k, st.init, reg_covar)


def _next_generation(key, g, params: GMMParams, state: dict, truth_params, reg_covar, st: _Static):
    """Start generation g >= 1 from generation g-1's fit: draw N points, form the training set,
    seed the initialisation. Returns (draws [d, n], train, w, regime state, start params, hard)."""
    kg = jax.random.fold_in(key, g)
    xt = _sample_t(jax.random.fold_in(kg, _DRAW), params, st.n)
    train, w, state = _training_set(kg, xt, state, truth_params, st)
    return (xt, train, w, state) + _start_t(jax.random.fold_in(kg, _FIT), train, w, st.k, st.init, reg_covar)


def _snap(buf, snaps, g, xt):
    """Keep xt [d, n] in buf [S, d, n] where g is a snapshot generation."""
    return jnp.where((snaps == g)[:, None, None], xt[None], buf)


def _finish_start(train, w, start, hard, tol, max_iter, reg_covar, st: _Static) -> GMMFit:
    """Lockstep: run Lloyd (if hard) then EM to the end; the same iterations the async engine ticks."""

    def body(s):
        params, _, i = s
        new = _step_t(train, w, params, reg_covar, hard)[0]
        return new, _lloyd_done(params, new), i + 1

    if st.init == "kmeans++":
        start = jax.lax.while_loop(lambda s: ~s[1] & (s[2] < LLOYD_ITER), body,
                                   (start, jnp.asarray(False), jnp.int32(0)))[0]
    return _em_t(train, w, start, tol, max_iter, reg_covar)


# -- the lockstep engine


def _lockstep_chain(key, truth_params, snaps, tol, max_iter, reg_covar, st: _Static):
    """One chain as a scan over generations; returns (GMMFit with a leading [G+1], snapshots [S, d, n])."""
    original, train, w, state, start, hard = _generation_zero(key, truth_params, reg_covar, st)
    fit0 = _finish_start(train, w, start, hard, tol, max_iter, reg_covar, st)
    buf = _snap(jnp.zeros((snaps.shape[0],) + original.shape, original.dtype), snaps, 0, original)

    def step(carry, g):
        params, state, buf = carry
        xt, train, w, state, start, hard = _next_generation(key, g, params, state, truth_params, reg_covar, st)
        f = _finish_start(train, w, start, hard, tol, max_iter, reg_covar, st)
        return (GMMParams(f.weights, f.means, f.covs), state, _snap(buf, snaps, g, xt)), f

    carry = (GMMParams(fit0.weights, fit0.means, fit0.covs), state, buf)
    (_, _, buf), fits = jax.lax.scan(step, carry, jnp.arange(1, st.generations + 1))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), fit0, fits), buf


@partial(jax.jit, static_argnames=("st",))
def _simulate_lockstep(keys, truth_params, snaps, tol, max_iter, reg_covar, *, st: _Static):
    fits, bufs = jax.vmap(_lockstep_chain, in_axes=(0, None, None, None, None, None, None))(
        keys, truth_params, snaps, tol, max_iter, reg_covar, st)
    return fits, bufs[0]


# -- the async engine


class _Run(NamedTuple):
    """The async engine's loop state; every field but `snaps` has a leading [R]."""

    g: jax.Array  # the generation each replicate is fitting; G + 1 once it has finished
    train: jax.Array  # [R, d, n_train]: its training set
    w: jax.Array  # [R, n_train]: point weights
    state: dict  # regime state (pool, size, original), [R, ...] each
    params: GMMParams  # the current Lloyd or EM iterate
    hard: jax.Array  # in the Lloyd phase (else EM)
    prev_ll: jax.Array  # EM: mean log-likelihood at the last E-step (-inf before the first)
    n_iter: jax.Array  # iterations so far in the current phase
    converged: jax.Array  # EM: the last change was below tol
    ready: jax.Array  # EM has stopped; waiting for a slot to record the fit and start the next generation
    out: GMMFit  # [R, G+1, ...]: the fits recorded so far
    snaps: jax.Array  # [S, d, n]: replicate 0's draws at the snapshot generations


def _rows(mask, a):
    """Broadcast a [R] mask against a [R, ...] array."""
    return mask.reshape(mask.shape + (1,) * (a.ndim - 1))


@partial(jax.jit, static_argnames=("st", "slots"))
def _simulate_async(keys, truth_params, snaps, tol, max_iter, reg_covar, *, st: _Static, slots: int):
    r, g_max = keys.shape[0], st.generations
    original, train, w, state, start, hard = jax.vmap(_generation_zero, in_axes=(0, None, None, None))(
        keys, truth_params, reg_covar, st)
    blank = lambda a, dtype=None: jnp.zeros((r, g_max + 1) + a.shape[1:], dtype or a.dtype)  # noqa: E731
    out = GMMFit(*(blank(a) for a in start), blank(hard, train.dtype), blank(hard, jnp.int32), blank(hard))
    run = _Run(g=jnp.zeros(r, jnp.int32), train=train, w=w, state=state, params=start, hard=hard,
               prev_ll=jnp.full(r, -jnp.inf, train.dtype), n_iter=jnp.zeros(r, jnp.int32),
               converged=jnp.zeros(r, bool), ready=jnp.zeros(r, bool), out=out,
               snaps=_snap(jnp.zeros((snaps.shape[0],) + original.shape[1:], original.dtype), snaps, 0,
                           original[0]))

    def advance(run: _Run) -> _Run:
        """Record the fits of up to `slots` stopped replicates and start their next generation."""
        idx = jnp.nonzero(run.ready, size=slots, fill_value=r)[0]  # [slots]; r marks an empty slot
        safe = jnp.minimum(idx, r - 1)
        g = run.g[safe]
        pick = lambda a: a[safe]  # noqa: E731
        params = jax.tree.map(pick, run.params)
        fit = GMMFit(*params, run.prev_ll[safe], run.n_iter[safe], run.converged[safe])
        out = jax.tree.map(lambda buf, v: buf.at[idx, g].set(v, mode="drop"), run.out, fit)
        # A replicate that has just recorded generation G also draws a generation G + 1, never fitted.
        xt, train, w, state, start, hard = jax.vmap(partial(_next_generation, st=st),
                                                    in_axes=(0, 0, 0, 0, None, None))(
            keys[safe], g + 1, params, jax.tree.map(pick, run.state), truth_params, reg_covar)
        put = lambda a, v: a.at[idx].set(v, mode="drop")  # noqa: E731
        hit = (idx[:, None] == 0) & (snaps[None] == g[:, None] + 1)  # [slots, S]: replicate 0 at a snapshot
        mine = jnp.einsum("ts,tdn->sdn", hit.astype(xt.dtype), xt)
        return run._replace(
            g=put(run.g, g + 1), train=put(run.train, train), w=put(run.w, w),
            state=jax.tree.map(put, run.state, state), params=jax.tree.map(put, run.params, start),
            hard=put(run.hard, hard), prev_ll=put(run.prev_ll, jnp.full(slots, -jnp.inf, xt.dtype)),
            n_iter=put(run.n_iter, jnp.zeros(slots, jnp.int32)),
            converged=put(run.converged, jnp.zeros(slots, bool)), ready=put(run.ready, jnp.zeros(slots, bool)),
            out=out, snaps=jnp.where(jnp.any(hit, 0)[:, None, None], mine, run.snaps))

    def tick(run: _Run) -> _Run:
        live = (run.g <= g_max) & ~run.ready
        new, ll = jax.vmap(_step_t, in_axes=(0, 0, 0, None, 0))(run.train, run.w, run.params, reg_covar, run.hard)
        n_iter = run.n_iter + 1
        small = jnp.abs(ll - run.prev_ll) < tol
        lloyd_done = run.hard & (jax.vmap(_lloyd_done)(run.params, new) | (n_iter >= LLOYD_ITER))
        em_done = ~run.hard & (small | (n_iter >= max_iter))
        keep = lambda a, b: jnp.where(_rows(live, a), a, b)  # noqa: E731
        return run._replace(
            params=jax.tree.map(keep, new, run.params),
            hard=run.hard & ~(live & lloyd_done),
            # Lloyd -> EM: the M-step on Lloyd's final labels is where EM starts, from a fresh count.
            prev_ll=jnp.where(live & ~run.hard, ll, run.prev_ll),
            n_iter=jnp.where(live, jnp.where(lloyd_done, 0, n_iter), run.n_iter),
            converged=jnp.where(live & ~run.hard, small, run.converged),
            ready=run.ready | (live & em_done))

    def body(run: _Run) -> _Run:
        run = tick(run)
        return jax.lax.cond(jnp.any(run.ready), advance, lambda x: x, run)

    run = jax.lax.while_loop(lambda run: jnp.any(run.g <= g_max), body, run)
    return run.out, run.snaps


def default_slots(replicates: int) -> int:
    """Replicates the async engine starts on a new generation per tick. A generation takes ~20
    ticks (Lloyd + EM), so ~R/20 stop per tick; a slot costs a draw and a k-means++ seeding whether
    used or not. Measured at R = 64: 2, 4 and 8 slots within 4% (4 best); so R/16, at least 4."""
    return min(replicates, max(4, replicates // 16))


def simulate(seed: int, *, sample_size: int, generations: int, replicates: int, n_components: int = 2,
             data: str = "blob", regime: Regime | None = None, tol: float = 1e-5, max_iter: int = 2000,
             reg_covar: float = 1e-6, init: str = "kmeans++", snapshots=SNAPSHOTS, engine: str = "async",
             slots: int | None = None) -> GMMChains:
    """Run `replicates` independent EM fit-and-sample chains from the data set `data`.

    Every generation fits a fresh EM (new initialisation from its key) on its training set, which
    the regime forms from the N points drawn from the previous fit (see `modelcollapse.regimes`;
    `accumulate` trains on a weighted pool of N (G+1) slots, so its cost grows as G^2 N).
    engine: 'async' or 'lockstep'; slots: the async engine's generation starts per tick (default
    `default_slots(replicates)`); see the module docstring for how far they agree.
    Returns GMMChains: parameters per generation, float32 [R, G+1, ...]; the closed-form squared L2
    distances to GMM_0 and to the true density, float64 [R, G+1]; replicate 0's snapshot points.
    """
    cfg = GMMConfig(sample_size=sample_size, generations=generations, replicates=replicates,
                    n_components=n_components, data=data, regime=regime or Regime(), tol=tol, max_iter=max_iter,
                    reg_covar=reg_covar, init=init, snapshots=tuple(snapshots))
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    slots = default_slots(cfg.replicates) if slots is None else slots
    if not _is_int(slots) or slots > cfg.replicates:
        raise ValueError(f"slots must be an integer in [1, replicates = {cfg.replicates}], got {slots!r}")
    true = truth(cfg.data)
    args = (replicate_keys(seed, cfg.replicates), GMMParams(*(jnp.asarray(a, jnp.float32) for a in true)),
            jnp.asarray(cfg.snapshot_generations), jnp.float32(cfg.tol), jnp.int32(cfg.max_iter),
            jnp.float32(cfg.reg_covar))
    st = _Static(n=cfg.sample_size, generations=cfg.generations, k=cfg.n_components, init=cfg.init,
                 regime=cfg.regime)
    if engine == "lockstep":
        fits, snaps = _simulate_lockstep(*args, st=st)
    else:
        fits, snaps = _simulate_async(*args, st=st, slots=int(slots))
    fits = GMMFit(*(np.asarray(a) for a in fits))
    params = GMMParams(fits.weights, fits.means, fits.covs)
    first = GMMParams(*(a[:, :1] for a in params))  # GMM_0 per replicate, broadcast over generations
    return GMMChains(*params, fits.log_likelihood, fits.n_iter.astype(np.int32), fits.converged,
                     theory.l2_squared(first, params), theory.l2_squared(true, params),
                     cfg.snapshot_generations, np.swapaxes(np.asarray(snaps), -1, -2))


# -- summaries


def component_scale(covs: np.ndarray) -> np.ndarray:
    """det(Sigma_k)^(1/(2d)): the geometric mean of a component's principal standard deviations; [..., K]."""
    covs = np.asarray(covs, np.float64)
    return np.exp(np.linalg.slogdet(covs)[1] / (2 * covs.shape[-1]))


def mode_mass(weights: np.ndarray, means: np.ndarray, true_means: np.ndarray) -> np.ndarray:
    """Fitted weight on each true mode: the summed weight of the components whose mean is nearest it.

    weights [..., K], means [..., K, d], true_means [M, d] -> [..., M]. A mode is counted as lost
    when its mass is below 1/N: fewer than one of the next N draws is expected near it, and under
    `replace` a mode that receives no draw never comes back.
    """
    d2 = np.sum((np.asarray(means, np.float64)[..., :, None, :] - true_means) ** 2, -1)  # [..., K, M]
    onehot = np.argmin(d2, -1)[..., None] == np.arange(true_means.shape[0])  # [..., K, M]
    return np.sum(np.asarray(weights, np.float64)[..., None] * onehot, -2)


def summarize(chains, *, data: str, sample_size: int, max_iter: int) -> dict[str, np.ndarray]:
    """Per-generation statistics across replicates, every array [G+1].

    chains: anything with GMMChains' fields (a GMMChains, or the loaded .npz as a namespace).
    l2_gmm0 / l2_truth: squared L2 distances (quartiles; mean +- s.e.). sigma: each chain's
    weight-averaged `component_scale` (quartiles). mode_lost: share of chains with a true mode
    below 1/N mass (+- s.e.; 0 for one-mode data). n_iter_mean / n_iter_max: EM iterations per
    fit, mean and slowest chain; capped: share of fits stopped by max_iter.
    """
    out = {"generation": np.arange(np.shape(chains.l2_gmm0)[1])}
    for name in ("l2_gmm0", "l2_truth"):
        values = np.asarray(getattr(chains, name), np.float64)
        out[f"{name}_q25"], out[f"{name}_q50"], out[f"{name}_q75"] = np.quantile(values, [0.25, 0.5, 0.75], 0)
        out[f"{name}_mean"], out[f"{name}_se"] = metrics.mean_and_se(values)
    weights = np.asarray(chains.weights, np.float64)
    sigma = np.sum(weights * component_scale(chains.covs), -1)  # [R, G+1]
    out["sigma_q25"], out["sigma_q50"], out["sigma_q75"] = np.quantile(sigma, [0.25, 0.5, 0.75], 0)
    lost = np.min(mode_mass(weights, chains.means, truth(data).means), -1) < 1.0 / sample_size  # [R, G+1]
    out["mode_lost"], out["mode_lost_se"] = metrics.mean_and_se(lost.astype(np.float64))
    n_iter = np.asarray(chains.n_iter)
    out["n_iter_mean"], out["n_iter_max"] = n_iter.mean(0), n_iter.max(0).astype(np.float64)
    out["capped"] = np.mean(~np.asarray(chains.converged, bool) & (n_iter >= max_iter), 0)
    return out
