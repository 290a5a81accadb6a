"""Recursive fit-and-sample of a 1-D Gaussian (Shumailov et al., the fit-and-sample figure).

Generation 0 is N(0, 1). Generation i draws `sample_size` points from its fit; generation
i+1 is the sample mean and standard deviation of those points alone. All replicate chains
run at once: `jit(vmap(lax.scan(step)))`, replicates vmapped, generations scanned.

Keys: replicate r uses fold_in(key(seed), r) and generation g folds in g on top, so a chain's
numbers do not depend on how many replicates run beside it or how they are batched.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse import metrics, theory


@dataclasses.dataclass(frozen=True, kw_only=True)
class GaussianConfig:
    """One 1-D Gaussian chain setting (the `gaussian:` config block expands to several)."""

    sample_size: int  # M: points drawn per generation
    generations: int  # G: refits after generation 0
    replicates: int  # R: independent chains, run in parallel with vmap
    estimator: str = "unbiased"  # 'unbiased' (ddof=1) or 'mle' (ddof=0, the official code)

    def __post_init__(self):
        for name in ("sample_size", "generations", "replicates"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.sample_size < 2:
            raise ValueError(f"sample_size must be >= 2 (a standard deviation needs two points), got {self.sample_size}")
        if self.generations < 1:
            raise ValueError(f"generations must be >= 1, got {self.generations}")
        if self.replicates < 1:
            raise ValueError(f"replicates must be >= 1, got {self.replicates}")
        theory.ddof_of(self.estimator)


class GaussianChains(NamedTuple):
    mean: np.ndarray  # [replicates, generations + 1]; index 0 is the original mean 0
    std: np.ndarray  # [replicates, generations + 1]; index 0 is the original std 1


def fit(x: jax.Array, ddof: int) -> tuple[jax.Array, jax.Array]:
    """Sample mean and standard deviation over the last axis; ddof=1 is the unbiased variance."""
    mean = jnp.mean(x, axis=-1)
    centred = x - mean[..., None]
    return mean, jnp.sqrt(jnp.sum(centred * centred, axis=-1) / (x.shape[-1] - ddof))


def sample(key: jax.Array, mean: jax.Array, std: jax.Array, n: int) -> jax.Array:
    """n draws from N(mean, std^2); [n]."""
    return mean + std * jax.random.normal(key, (n,))


def _chain(key: jax.Array, *, sample_size: int, generations: int, ddof: int) -> tuple[jax.Array, jax.Array]:
    def step(carry, generation):
        mean, std = carry
        # Fitting is affine-equivariant: fitting mean + std * z equals (mean + std * zbar, std * s_z).
        # Fitting z keeps float32 exact once std << |mean|, where mean + std * z would round away z.
        z = jax.random.normal(jax.random.fold_in(key, generation), (sample_size,))
        z_mean, z_std = fit(z, ddof)
        new = (mean + std * z_mean, std * z_std)
        return new, new

    start = (jnp.float32(0.0), jnp.float32(1.0))
    _, (means, stds) = jax.lax.scan(step, start, jnp.arange(generations))
    return jnp.concatenate([start[0][None], means]), jnp.concatenate([start[1][None], stds])


@partial(jax.jit, static_argnames=("sample_size", "generations", "ddof"))
def _simulate(keys: jax.Array, *, sample_size: int, generations: int, ddof: int):
    chain = partial(_chain, sample_size=sample_size, generations=generations, ddof=ddof)
    return jax.vmap(chain)(keys)


def replicate_keys(seed: int, replicates: int) -> jax.Array:
    """One key per replicate chain, fold_in(key(seed), r); [replicates] typed keys."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), jnp.arange(replicates))


def simulate(seed: int, *, sample_size: int, generations: int, replicates: int,
             estimator: str = "unbiased") -> GaussianChains:
    """Run `replicates` independent fit-and-sample chains from N(0, 1).

    Returns `GaussianChains(mean, std)`, numpy float32 arrays of shape [replicates, generations + 1].
    """
    cfg = GaussianConfig(sample_size=sample_size, generations=generations, replicates=replicates,
                         estimator=estimator)
    means, stds = _simulate(replicate_keys(seed, cfg.replicates), sample_size=cfg.sample_size,
                            generations=cfg.generations, ddof=theory.ddof_of(cfg.estimator))
    return GaussianChains(np.asarray(means), np.asarray(stds))


def summarize(mean: np.ndarray, std: np.ndarray, *, sample_size: int, estimator: str) -> dict[str, np.ndarray]:
    """Per-generation statistics across replicates, each beside its theory value; every array [G+1].

    `var_mu` is E[mu_n^2] (= Var mu_n because E mu_n = 0); `*_se` are Monte-Carlo standard errors.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    generations = mean.shape[1] - 1
    sizes = np.full(generations, sample_size)
    abs_mu, abs_sigma = np.abs(mean), np.abs(std - 1.0)
    sigma2 = std**2
    w2sq = mean**2 + (std - 1.0) ** 2
    out = {"generation": np.arange(generations + 1)}
    for name, values in (("abs_mu_err", abs_mu), ("abs_sigma_err", abs_sigma)):
        q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        out |= {f"{name}_q25": q25, f"{name}_q50": q50, f"{name}_q75": q75}
    out["abs_mu_err_q50_theory"] = theory.abs_mean_error_quantile(sizes, estimator, 0.5)
    out["abs_sigma_err_q50_theory"] = theory.abs_std_error_quantile(sizes, estimator, 0.5)
    out["var_mu"], out["var_mu_se"] = metrics.mean_and_se(mean**2)
    out["var_mu_theory"] = theory.var_mean(sizes, estimator)
    out["median_sigma2"], out["median_sigma2_se"] = metrics.median_and_se(sigma2)
    out["median_sigma2_theory"] = theory.median_sigma2(sizes, estimator)
    out["mean_sigma2"], out["mean_sigma2_se"] = metrics.mean_and_se(sigma2)
    out["mean_sigma2_theory"] = theory.expected_sigma2(sizes, estimator)
    out["w2sq"], out["w2sq_se"] = metrics.mean_and_se(w2sq)
    out["w2sq_theory"] = theory.expected_w2_squared(sizes, estimator)
    return out
