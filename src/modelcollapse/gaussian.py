"""Recursive fit-and-sample of Gaussians (Shumailov et al., the fit-and-sample figure; Nature Thm 3.1).

Generation 0 is the truth: N(0, 1), or N(0, Sigma_0) in `dim` dimensions. Generation i draws M_i
points from its fit; generation i+1 is the sample mean and standard deviation (covariance) of
its training set, which the data regime forms (`modelcollapse.regimes`; default `replace`: only
generation i's points). The original data set is generation 0's draws. All replicate chains
run at once: `jit(vmap(lax.scan(step)))`, replicates vmapped, generations scanned.

Two exact samplers:
- `points` draws the M points and fits them (what the paper did; needs a constant M);
- `stats` draws the fit's sufficient statistics directly: the sample mean ~ N(mu, sigma^2/M)
  and the centred sum of squares ~ sigma^2 chi2_{M-1} (in d dimensions the Bartlett
  decomposition of the Wishart), independent. Same distribution, O(1) cost in M, so
  schedules with M_i in the millions run as fast as M = 10.

Keys: replicate r uses fold_in(key(seed), r) and generation g folds in g on top, so a chain's
numbers do not depend on how many replicates run beside it or how they are batched.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse import knobs, metrics, regimes, theory
from modelcollapse.knobs import knob
from modelcollapse.runtime import per_device, replicate_keys
from modelcollapse.theory import regimes as regime_theory
from modelcollapse.theory import verify as verify_theory
from modelcollapse.regimes import Regime, append, check_pool_points

SAMPLERS = ("points", "stats")


def check_sample_size(sample_size, dim: int) -> None:
    """A covariance in `dim` dimensions needs at least dim + 1 points; ValueError if not."""
    if sample_size < dim + 1:
        raise ValueError(f"sample_size must be >= dim + 1 = {dim + 1} (a covariance needs that many points), "
                         f"got min {sample_size:g}")


def check_correlation(correlation: float, dim: int) -> None:
    """Sigma_0 (unit variances, `correlation` off the diagonal) must be positive definite; ValueError if not."""
    if dim > 1 and not -1 / (dim - 1) < correlation < 1:
        raise ValueError(f"correlation must be in (-1/(dim-1), 1) = ({-1 / (dim - 1):.3g}, 1) for a positive-definite "
                         f"Sigma_0 at dim = {dim}, got {correlation}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianConfig:
    """One Gaussian chain setting (the `gaussian:` config block expands to several)."""

    INDEX0: ClassVar[str] = "truth"  # what index 0 of the results is (regimes.INDEX0)

    sample_size: int | tuple = knob(block=False, help="M, points drawn per generation, or the per-generation "
                                    "sizes (M_0, ..., M_{G-1}) of a schedule; the block runs one job per entry of "
                                    "sample_sizes.", type=["integer", "array"], minimum=2,
                                    items={"type": "integer", "minimum": 2})
    generations: int = knob(help="Number of refits after generation 0.", type="integer", minimum=1, maximum=1000000)
    replicates: int = knob(help="Independent chains per (estimator, M), run in parallel with vmap.", type="integer",
                           minimum=2, maximum=10000000)
    estimator: str = knob("unbiased", block=False, help="Standard-deviation estimator: unbiased (ddof=1) or mle "
                          "(ddof=0, the official code).", type="string", enum=["unbiased", "mle"])
    regime: Regime = Regime()  # how each generation's training set is formed
    dim: int = knob(1, block=False, help="d; d > 1 fits a full covariance (replace regime only, as Theorem 3.1).",
                    type="integer", minimum=1, maximum=64)
    correlation: float = knob(0.5, block=False, help="d > 1: the off-diagonal entry of Sigma_0 (unit variances); in "
                              "(-1/(d-1), 1).", type="number", exclusiveMinimum=-1, exclusiveMaximum=1)
    sampler: str = knob("auto", block=False, help="points (draws every point), stats (draws sufficient statistics: "
                        "any sample-size schedule) or auto (points for a constant M, else stats).", type="string",
                        enum=[*SAMPLERS, "auto"])

    def __post_init__(self):
        knobs.check(self)
        sizes = np.atleast_1d(np.asarray(self.sample_size, dtype=np.float64))
        if sizes.size not in (1, self.generations):
            raise ValueError(f"sample_size schedule has {sizes.size} entries; expected generations = {self.generations}")
        check_sample_size(sizes.min(), self.dim)
        if not isinstance(self.regime, Regime):
            raise ValueError(f"regime must be a modelcollapse.regimes.Regime, got {self.regime!r}")
        if self.resolved_sampler == "points" and not self.constant_size:
            raise ValueError("sampler 'points' needs a constant sample_size; use sampler 'stats' for a schedule")
        if self.resolved_sampler == "stats":
            regimes.check(self.regime, StatsOps(points=False).offers, family="sampler 'stats'",
                          hint=" (it draws sums, not points): the regime needs sampler 'points' and a constant "
                               "sample_size")
        else:
            regimes.check(self.regime, StatsOps(points=True).offers, family="the Gaussian family")
        if self.dim > 1 and self.regime.name != "replace":
            raise ValueError(f"dim > 1 supports regime 'replace' only, got {self.regime.label!r}")
        check_correlation(self.correlation, self.dim)
        if self.resolved_sampler == "points":  # the stats sampler pools sums, not points
            check_pool_points(self.regime, int(sizes[0]) * self.generations, what="sample_size x generations")

    @property
    def constant_size(self) -> bool:
        return np.ndim(self.sample_size) == 0 or len(set(np.asarray(self.sample_size).tolist())) == 1

    @property
    def sizes(self) -> np.ndarray:
        """Per-generation sample sizes M_0..M_{G-1}, [G] float64."""
        return np.broadcast_to(np.asarray(self.sample_size, np.float64), (self.generations,)).copy()

    @property
    def resolved_sampler(self) -> str:
        if self.sampler != "auto":
            return self.sampler
        return "points" if self.constant_size else "stats"

    def sigma0(self) -> np.ndarray:
        """Sigma_0, [d, d]: unit variances, `correlation` off the diagonal."""
        d = self.dim
        return (1 - self.correlation) * np.eye(d) + self.correlation * np.ones((d, d))


# The jobs of the workflow's `gaussian` config block: the main chains (one per estimator and M),
# and the sub-blocks regimes, schedules and multivariate (one job per regime, schedule, dimension).
PARTS = ("main", "regimes", "schedules", "multivariate")


def config_from_block(block, *, part: str = "main", sample_size: int | None = None, estimator: str | None = None,
                      label: str | None = None, schedule: str | None = None, dim: int | None = None) -> GaussianConfig:
    """The GaussianConfig of one job of the workflow's `gaussian` config block: `part` 'main' (M =
    `sample_size`, `estimator`, the block's regime), 'regimes' (the regime `label` of
    regimes.compare), 'schedules' (the sample-size `schedule` kind) or 'multivariate' (dimension
    `dim`); ValueError names the bad setting."""
    if part == "main":
        return knobs.from_block(GaussianConfig, block, sample_size=sample_size, estimator=estimator,
                                regime=Regime.from_config(block["regime"]))
    if part == "regimes":
        sub = block["regimes"]
        regimes = {r.label: r for r in map(Regime.from_config, sub["compare"])}
        if label not in regimes:
            raise ValueError(f"label {label!r} is not a regime of gaussian.regimes.compare "
                             f"(labels: {', '.join(regimes)})")
        return GaussianConfig(sample_size=sub["sample_size"], generations=sub["generations"],
                              replicates=sub["replicates"], estimator=sub["estimator"], regime=regimes[label])
    if part == "schedules":
        from modelcollapse import schedules

        sub = block["schedules"]
        sizes = tuple(schedules.sample_sizes(schedule, base=sub["base_sample_size"], generations=sub["generations"],
                                             power=float(sub["power"])).tolist())
        return GaussianConfig(sample_size=sub["base_sample_size"] if schedule == "constant" else sizes,
                              generations=sub["generations"], replicates=sub["replicates"], sampler="stats")
    if part == "multivariate":
        sub = block["multivariate"]
        return GaussianConfig(sample_size=sub["sample_size"], dim=dim, correlation=float(sub["correlation"]),
                              generations=sub["generations"], replicates=sub["replicates"])
    raise ValueError(f"part must be one of {list(PARTS)}, got {part!r}")


class GaussianChains(NamedTuple):
    mean: np.ndarray  # [replicates, generations + 1]; index 0 is the original mean 0
    std: np.ndarray  # [replicates, generations + 1]; index 0 is the original std 1


class MultivariateChains(NamedTuple):
    mean: np.ndarray  # [replicates, generations + 1, d]
    cov: np.ndarray  # [replicates, generations + 1, d, d]
    log_det: np.ndarray  # [replicates, generations + 1]: log det cov, exact even where cov underflows


def fit(x: jax.Array, ddof: int) -> tuple[jax.Array, jax.Array]:
    """Sample mean and standard deviation over the last axis; ddof=1 is the unbiased variance."""
    mean = jnp.mean(x, axis=-1)
    centred = x - mean[..., None]
    return mean, jnp.sqrt(jnp.sum(centred * centred, axis=-1) / (x.shape[-1] - ddof))


def sample(key: jax.Array, mean: jax.Array, std: jax.Array, n: int) -> jax.Array:
    """n draws from N(mean, std^2); [n]."""
    return mean + std * jax.random.normal(key, (n,))


# -- sufficient statistics (count, mean, centred sum of squares), combined with Chan et al.'s formula


def _stats_of(x: jax.Array):
    mean = jnp.mean(x)
    return jnp.float32(x.shape[0]), mean, jnp.sum((x - mean) ** 2)


def _scaled(stats, mean, std):
    """Statistics of mean + std * z from those of z (fitting is affine-equivariant)."""
    n, z_mean, z_m2 = stats
    return n, mean + std * z_mean, std * std * z_m2


def _combine(a, b):
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    w = jnp.where(n > 0, nb / jnp.maximum(n, 1.0), 0.0)
    return n, ma + delta * w, sa + sb + delta * delta * na * w


def _draw_stats(key: jax.Array, n: jax.Array):
    """Statistics of n standard normal draws without drawing them: mean ~ N(0, 1/n), m2 ~ chi2_{n-1}."""
    k_mean, k_m2 = jax.random.split(key)
    m2 = 2.0 * jax.random.gamma(k_m2, jnp.maximum((n - 1.0) / 2.0, 1e-6))
    return n, jax.random.normal(k_mean) / jnp.sqrt(jnp.maximum(n, 1.0)), jnp.where(n > 1, m2, 0.0)


def _fit_stats(stats, ddof: int):
    n, mean, m2 = stats
    return mean, jnp.sqrt(m2 / (n - ddof))


# -- 1-D chains
# The random draws are the whole cost of a points chain (benchmarks/gaussian.py: 1.10x the
# draw-only floor). JAX's default partitionable threefry spends one hash per 32-bit output;
# the classic layout uses both words of each hash, halving the cost (2.05 s -> 1.14 s for
# R=1000, G=2000, M=100). Each draw is one chain's, never sharded, so nothing is lost.


class _Affine(NamedTuple):
    """A generation's draws mean + std * z, kept as the standard draws z [n] (their statistics are
    those of z, scaled: `_scaled`), so replace and accumulate never form the points."""

    z: jax.Array
    mean: jax.Array
    std: jax.Array


class StatsOps(regimes.PointOps):
    """The regimes' set operations on sufficient statistics (count, mean, centred sum of squares):
    a union is Chan et al.'s combination. A subset of a sum does not exist, so with `points=False`
    (the stats sampler, which never draws points) the regimes that subsample do not run; with
    `points=True` the pool keeps its points when a regime subsamples it (subsets: `PointOps`')."""

    def __init__(self, *, points: bool, pool_points: bool = False, fresh=None):
        self.pool_points, self.fresh = pool_points, fresh
        # With points, the verifier of `verify` is the Gaussian kernel: its accepted draws are the
        # tilted Gaussian (theory.verify.tilted), drawn exactly from the same standard draws.
        self.offers = (regimes.DATA_NEEDS | {"verified"}) - {"pool_rows"} if points else \
            regimes.DATA_NEEDS - {"pool_rows", "pool_subset", "original_subset"}

    @staticmethod
    def stats(data):
        if isinstance(data, _Affine):
            return _scaled(_stats_of(data.z), data.mean, data.std)
        return _stats_of(data) if isinstance(data, jax.Array) else data

    def union(self, a, b):
        return _combine(self.stats(a), self.stats(b))

    def head(self, data, k):
        # Points: the first k draws. Statistics: k fresh draws (`fresh(k)`, the same law).
        return _Affine(data.z[:k], data.mean, data.std) if isinstance(data, _Affine) else self.fresh(k)

    def start_pool(self, original, capacity: int):
        if self.pool_points:
            return regimes.Pool(jnp.zeros(capacity, jnp.float32), jnp.int32(0))
        zero = jnp.float32(0.0)
        return zero, zero, zero

    def grow(self, pool, latest):
        if self.pool_points:
            return regimes.Pool(*append(pool.rows, pool.size, latest.mean + latest.std * latest.z))
        return _combine(pool, self.stats(latest))


def _train(regime, ops, inputs, g):
    """Generation g's training statistics: the original data at g = 0, else the regime's set."""
    built = ops.stats(regimes.build(regime, inputs))
    return jax.tree.map(lambda a, b: jnp.where(g == 0, a, b), ops.stats(inputs.latest), built)


def _points_chain(key, *, m: int, generations: int, regime: Regime, ddof: int):
    """One 1-D chain drawing M points per generation, any regime. Returns (means, stds), each [G]."""
    needs = regimes.needs(regime)
    ops = StatsOps(points=True, pool_points="pool_subset" in needs)
    pooled, keep_original = regimes.uses_pool(regime), "original_subset" in needs
    verifier = dict(regimes.spec(regime)[1]) if "verified" in needs else None

    def step(carry, g):
        # The carry holds only what the regime needs: replace carries (mean, std) alone.
        carry = dict(carry)
        kg = jax.random.fold_in(key, g)
        with jax.threefry_partitionable(False):  # see the note above _points_chain
            z = jax.random.normal(kg, (m,))
        latest = _Affine(z, carry["mean"], carry["std"])
        if pooled:
            carry["pool"] = ops.grow(carry["pool"], latest)
        if keep_original:  # generation 0's draws from the truth are the original data
            carry["original"] = jnp.where(g == 0, z, carry["original"])
        verified = None
        if verifier is not None:  # model g's accepted draws: N(mean', var'), from the same z
            mean, var = verify_theory.tilted(carry["mean"], carry["std"] ** 2, verifier["b"], verifier["tau"])
            verified = _Affine(z, mean, jnp.sqrt(var))
        inputs = regimes.RegimeInputs(ops, jax.random.fold_in(kg, 1), jax.random.fold_in(kg, 2),
                                      carry.get("original"), carry.get("pool"), latest, m, g,
                                      lambda k, n: jax.random.normal(k, (n,)), verified)
        carry["mean"], carry["std"] = _fit_stats(_train(regime, ops, inputs, g), ddof)
        return carry, (carry["mean"], carry["std"])

    start = {"mean": jnp.float32(0.0), "std": jnp.float32(1.0)}
    if pooled:
        start["pool"] = ops.start_pool(None, m * generations)
    if keep_original:
        start["original"] = jnp.zeros(m, jnp.float32)
    return jax.lax.scan(step, start, jnp.arange(generations))[1]


def _stats_chain(key, sizes, *, regime: Regime, ddof: int):
    """One 1-D chain drawing sufficient statistics; sizes [G] float32 may vary. Returns (means, stds)."""

    def step(carry, inputs):
        mean, std, pool = carry
        g, m = inputs
        kg = jax.random.fold_in(key, g)
        ops = StatsOps(points=False, fresh=lambda k: _scaled(_draw_stats(jax.random.fold_in(kg, 3), k), mean, std))
        latest = _scaled(_draw_stats(kg, m), mean, std)
        pool = ops.grow(pool, latest)
        x = regimes.RegimeInputs(ops, jax.random.fold_in(kg, 1), None, None, pool, latest, m, g, _draw_stats)
        new = _fit_stats(_train(regime, ops, x, g), ddof)
        return (*new, pool), new

    zero = jnp.float32(0.0)
    start = (zero, jnp.float32(1.0), (zero, zero, zero))
    return jax.lax.scan(step, start, (jnp.arange(sizes.shape[0]), sizes))[1]


# -- d-dimensional chains (replace regime)


def _mv_chain(key, sizes, chol0, *, m: int | None, ddof: int):
    """One chain in d dimensions; carries the Cholesky factor L of Sigma, so Sigma = L L^T stays
    positive definite and log det Sigma is accumulated exactly. m=None: Bartlett (stats) sampler.
    Returns (means [G, d], chols [G, d, d], log_dets [G])."""
    d = chol0.shape[0]

    def step(carry, inputs):
        mean, chol, log_det = carry
        g, size = inputs
        kg = jax.random.fold_in(key, g)
        if m is not None:
            with jax.threefry_partitionable(False):  # see the note above _points_chain
                z = jax.random.normal(kg, (m, d))
            z_mean = z.mean(axis=0)
            centred = z - z_mean
            z_chol = jnp.linalg.cholesky(centred.T @ centred / (m - ddof))
        else:
            # Bartlett: (M-1) S = A A^T, A lower triangular, A_jj^2 ~ chi2_{M-1-j}, A_ij ~ N(0, 1) below.
            k_mean, k_diag, k_low = jax.random.split(kg, 3)
            z_mean = jax.random.normal(k_mean, (d,)) / jnp.sqrt(size)
            diag = jnp.sqrt(2.0 * jax.random.gamma(k_diag, (size - 1.0 - jnp.arange(d)) / 2.0))
            lower = jnp.tril(jax.random.normal(k_low, (d, d)), -1)
            z_chol = (lower + jnp.diag(diag)) / jnp.sqrt(size - ddof)
        new = (mean + chol @ z_mean, chol @ z_chol, log_det + 2.0 * jnp.sum(jnp.log(jnp.diag(z_chol))))
        return new, new

    start = (jnp.zeros(d, jnp.float32), chol0, 2.0 * jnp.sum(jnp.log(jnp.diag(chol0))))
    return jax.lax.scan(step, start, (jnp.arange(sizes.shape[0]), sizes))[1]


@partial(jax.jit, static_argnames=("m", "generations", "regime", "ddof"))
def _simulate_points(keys, *, m, generations, regime, ddof):
    return per_device(jax.vmap(partial(_points_chain, m=m, generations=generations, regime=regime, ddof=ddof)))(keys)


@partial(jax.jit, static_argnames=("regime", "ddof"))
def _simulate_stats(keys, sizes, *, regime, ddof):
    return per_device(jax.vmap(partial(_stats_chain, regime=regime, ddof=ddof), in_axes=(0, None)))(keys, sizes)


@partial(jax.jit, static_argnames=("m", "ddof"))
def _simulate_mv(keys, sizes, chol0, *, m, ddof):
    return per_device(jax.vmap(partial(_mv_chain, m=m, ddof=ddof), in_axes=(0, None, None)))(keys, sizes, chol0)




def _prepend(first, rest):
    """Put generation 0 in front of the scanned generations along axis 1."""
    first = jnp.broadcast_to(jnp.asarray(first, rest.dtype), (rest.shape[0], 1) + rest.shape[2:])
    return np.asarray(jnp.concatenate([first, rest], axis=1))


def simulate(seed: int, *, sample_size, generations: int, replicates: int, estimator: str = "unbiased",
             regime: Regime | None = None, sampler: str = "auto") -> GaussianChains:
    """Run `replicates` independent 1-D fit-and-sample chains from the truth N(0, 1).

    sample_size: M, or a per-generation schedule [generations] (see `modelcollapse.schedules`).
    Returns `GaussianChains(mean, std)`, float32 [replicates, generations + 1]; index 0 is the truth.
    `simulate_multivariate` runs d > 1.
    """
    cfg = GaussianConfig(sample_size=sample_size, generations=generations, replicates=replicates,
                         estimator=estimator, regime=regime or Regime(), sampler=sampler)
    keys = replicate_keys(seed, cfg.replicates)
    ddof = theory.ddof_of(cfg.estimator)
    if cfg.resolved_sampler == "points":
        means, stds = _simulate_points(keys, m=int(cfg.sizes[0]), generations=cfg.generations,
                                       regime=cfg.regime, ddof=ddof)
    else:
        means, stds = _simulate_stats(keys, jnp.asarray(cfg.sizes, jnp.float32), regime=cfg.regime, ddof=ddof)
    return GaussianChains(_prepend(0.0, means), _prepend(1.0, stds))


def simulate_multivariate(seed: int, *, sample_size, generations: int, replicates: int, dim: int,
                          correlation: float = 0.5, estimator: str = "unbiased",
                          sampler: str = "auto") -> MultivariateChains:
    """Run `replicates` chains in `dim` dimensions (replace regime, Nature Theorem 3.1) from
    N(0, Sigma_0) with unit variances and `correlation` off the diagonal.

    Returns `MultivariateChains(mean [R, G+1, d], cov [R, G+1, d, d], log_det [R, G+1])`; index 0 is the truth.
    """
    cfg = GaussianConfig(sample_size=sample_size, generations=generations, replicates=replicates,
                         estimator=estimator, dim=dim, correlation=correlation, sampler=sampler)
    keys = replicate_keys(seed, cfg.replicates)
    chol0 = jnp.asarray(np.linalg.cholesky(cfg.sigma0()), jnp.float32)
    points = cfg.resolved_sampler == "points"
    means, chols, log_dets = _simulate_mv(keys, jnp.asarray(cfg.sizes, jnp.float32), chol0,
                                          m=int(cfg.sizes[0]) if points else None, ddof=theory.ddof_of(cfg.estimator))
    chols = _prepend(chol0, chols)
    return MultivariateChains(_prepend(jnp.zeros(cfg.dim), means), chols @ np.swapaxes(chols, -1, -2),
                              _prepend(np.linalg.slogdet(cfg.sigma0())[1], log_dets))


def _verify_law(regime, sizes, estimator, n) -> tuple[np.ndarray, np.ndarray]:
    """E[mu_n^2], E[sigma_n^2] of the verified chain (theory.verify, by quadrature): without real
    data and at a constant M; NaN otherwise (the mixture of real and accepted draws has no such law)."""
    params = dict(regimes.spec(regime)[1])
    if params["real_fraction"] != 0 or len(set(sizes.tolist())) != 1:
        return np.full(n, np.nan), np.full(n, np.nan)
    law = verify_theory.moments(n - 1, sample_size=int(sizes[0]), center=params["b"], width=params["tau"],
                                ddof=theory.ddof_of(estimator))
    return law["mean_sq"], law["sigma2"]


def _verify_fixed_point(regime) -> float:
    """The large-M variance a verified chain with real data settles at (theory.verify.mixed_fixed_point,
    for b = 0); NaN for every other regime."""
    if "verified" not in regimes.needs(regime):
        return np.nan
    params = dict(regimes.spec(regime)[1])
    if params["b"] != 0 or params["real_fraction"] == 0:
        return np.nan
    return verify_theory.mixed_fixed_point(params["real_fraction"], params["tau"])


def summarize(mean: np.ndarray, std: np.ndarray, *, sizes, estimator: str,
              regime: Regime | None = None) -> dict[str, np.ndarray]:
    """Per-generation statistics across replicates, each beside its theory value; every array [G+1].

    sizes: per-generation sample sizes [G]. `var_mu` is E[mu_n^2] (= Var mu_n because E mu_n = 0);
    `*_se` are Monte-Carlo standard errors. `var_mu_theory` and `mean_sigma2_theory` are exact for
    every regime (closed forms for replace, `theory.regimes` otherwise); the other theory columns
    (quantiles, E[W2^2], which need E[sigma_n]) hold the replace-regime formulas, NaN elsewhere.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.shape != (mean.shape[1] - 1,):
        raise ValueError(f"sizes must have one entry per generation ({mean.shape[1] - 1}), got shape {sizes.shape}")
    regime = regime or Regime()
    has_theory = regime.name == "replace"

    def th(values):
        return values if has_theory else np.full(mean.shape[1], np.nan)

    abs_mu, abs_sigma = np.abs(mean), np.abs(std - 1.0)
    sigma2 = std**2
    out = {"generation": np.arange(mean.shape[1])}
    for name, values in (("abs_mu_err", abs_mu), ("abs_sigma_err", abs_sigma)):
        q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        out |= {f"{name}_q25": q25, f"{name}_q50": q50, f"{name}_q75": q75}
    out["abs_mu_err_q50_theory"] = th(theory.abs_mean_error_quantile(sizes, estimator, 0.5))
    out["abs_sigma_err_q50_theory"] = th(theory.abs_std_error_quantile(sizes, estimator, 0.5))
    out["var_mu"], out["var_mu_se"] = metrics.mean_and_se(mean**2)
    if has_theory:
        exact_mu2, exact_sigma2 = theory.var_mean(sizes, estimator), theory.expected_sigma2(sizes, estimator)
    elif "verified" in regimes.needs(regime):
        exact_mu2, exact_sigma2 = _verify_law(regime, sizes, estimator, mean.shape[1])
    else:
        exact_mu2, exact_sigma2 = regime_theory.gaussian_moments(regime, sizes, estimator)
    out["var_mu_theory"] = exact_mu2
    out["median_sigma2"], out["median_sigma2_se"] = metrics.median_and_se(sigma2)
    out["median_sigma2_theory"] = th(theory.median_sigma2(sizes, estimator))
    out["mean_sigma2"], out["mean_sigma2_se"] = metrics.mean_and_se(sigma2)
    out["mean_sigma2_theory"] = exact_sigma2
    out["sigma2_fixed_point"] = np.full(mean.shape[1], _verify_fixed_point(regime))
    out["w2sq"], out["w2sq_se"] = metrics.mean_and_se(mean**2 + (std - 1.0) ** 2)
    out["w2sq_theory"] = th(theory.expected_w2_squared(sizes, estimator))
    return out


def summarize_multivariate(mean: np.ndarray, log_det: np.ndarray, trace: np.ndarray, *, sizes,
                           estimator: str, sigma0: np.ndarray) -> dict[str, np.ndarray]:
    """Per-generation statistics of d-dimensional chains beside Theorem 3.1's theory; each [G+1].

    mean [R, G+1, d], log_det and trace [R, G+1], sigma0 [d, d]. `mean_sq_dist` is ||mu_n - mu_0||^2.
    """
    sizes = np.asarray(sizes, np.float64)
    dim = sigma0.shape[0]
    log_det0, trace0 = np.linalg.slogdet(sigma0)[1], np.trace(sigma0)
    out = {"generation": np.arange(mean.shape[1])}
    out["log_det"], out["log_det_se"] = metrics.mean_and_se(log_det)
    out["log_det_q25"], out["log_det_q50"], out["log_det_q75"] = np.quantile(log_det, [0.25, 0.5, 0.75], axis=0)
    out["log_det_theory"] = theory.expected_log_det(sizes, estimator, dim, log_det0)
    out["log_det_sd_theory"] = np.sqrt(theory.var_log_det(sizes, estimator, dim))
    out["mean_sq_dist"], out["mean_sq_dist_se"] = metrics.mean_and_se(np.sum(np.asarray(mean, np.float64) ** 2, -1))
    out["mean_sq_dist_theory"] = theory.expected_mean_sq_dist(sizes, estimator, trace0)
    out["trace_q50"], out["trace_q50_se"] = metrics.median_and_se(trace)
    out["trace"], out["trace_se"] = metrics.mean_and_se(trace)
    out["trace_theory"] = theory.expected_trace(sizes, estimator, trace0)
    return out


def sweep_rows(block, seed: int) -> list[dict]:
    """A sweep point (`modelcollapse.sweeps`): the block's main chains, one per (M, estimator) of
    `sample_sizes` x `estimators` under its `regime`, each summarized at the last generation."""
    from modelcollapse import sweeps

    rows = []
    for m in block["sample_sizes"]:
        for estimator in block["estimators"]:
            cfg = config_from_block(block, sample_size=m, estimator=estimator)
            chains = simulate(seed, sample_size=cfg.sample_size, generations=cfg.generations,
                              replicates=cfg.replicates, estimator=cfg.estimator, regime=cfg.regime,
                              sampler=cfg.sampler)
            stats = summarize(chains.mean, chains.std, sizes=cfg.sizes, estimator=cfg.estimator, regime=cfg.regime)
            rows.append({"sample_size": m, "estimator": estimator, "regime": cfg.regime.label,
                         "real_fraction": cfg.regime.real_fraction}
                        | sweeps.last_generation(stats))
    return rows
