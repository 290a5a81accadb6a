"""A small interface for theory-sized families, and one simulator that runs any of them under any regime.

A family is four things (`Family`): the true parameters, and three pure JAX functions

    fit(data [T, ...], weights [T]) -> params      # weights are 0/1: rows with weight 0 are ignored
    sample(key, params, n) -> data [n, ...]
    metrics(params) -> {name: scalar}              # e.g. the distance to the truth

Weights let a regime hand `fit` a pre-allocated buffer of fixed shape of which only some rows
count (the growing pool of `accumulate`), which is what `jit` and `lax.scan` need.

`simulate(family, seed, ...)` runs `replicates` fit-and-sample chains as `jit(vmap(lax.scan))`:
generation 0's original data are `n_original` draws from the truth and model 1 is fitted to them;
model g+1 (g >= 1) is fitted to the training set that the regime builds from the original data,
the pool of every sample so far, and the M = `sample_size` samples of model g. Metrics come back
per model, [replicates, generations + 1], index 0 being the truth's. Keys follow
`modelcollapse.gaussian`: replicate r uses fold_in(key(seed), r), generation g folds in g on top
(its draws use that key, the regime fold_in(., 1)), so a chain's numbers do not depend on how many
replicates run beside it.

Regimes come from `modelcollapse.regimes`, the one mechanism every family uses: this simulator
holds points (`regimes.PointOps`), so every registered regime runs here, the four built-in ones
and those added with `regimes.register` (see examples/exponential/window.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse import regimes
from modelcollapse.regimes import Regime, training_size
from modelcollapse.runtime import per_device, replicate_keys


# eq=False: a family hashes by identity, so `jit` can take it as a static argument (its `truth`
# may hold arrays, which do not hash) and a second call with the same family reuses the compilation.
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Family:
    """A model family small enough to refit inside `lax.scan` (a handful of parameters)."""

    name: str  # a short tag, used in file names and provenance
    truth: Any  # the true parameters (a pytree), generation 0
    fit: Callable[[jax.Array, jax.Array], Any]  # (data [T, ...], weights [T] of 0/1) -> params
    sample: Callable[[jax.Array, Any, int], jax.Array]  # (key, params, n) -> data [n, ...]
    metrics: Callable[[Any], Mapping[str, jax.Array]]  # params -> {name: scalar}


def _weighted(data) -> regimes.Weighted:
    """A regime's training set as `fit` takes it: rows with 0/1 weights."""
    if isinstance(data, regimes.Pool):  # accumulate: the whole buffer, its unfilled rows weighted 0
        return regimes.Weighted(data.rows, data.filled(jnp.float32))
    if isinstance(data, regimes.Weighted):
        return data
    return regimes.Weighted(data, jnp.ones(data.shape[0], jnp.float32))


_OPS = regimes.PointOps()


def _chain(key, *, family: Family, regime: regimes.Spec, m: int, n_original: int, generations: int):
    """One chain: {metric: [generations]} for models 1..G (model 0, the truth, is added by `simulate`)."""
    original = family.sample(jax.random.fold_in(key, 0), family.truth, n_original)
    pooled = regimes.uses_pool(regime)
    # Capacity: everything accumulate ever holds, n_original + (G - 1) M (model G's training set).
    capacity = training_size(Regime(name="accumulate"), sample_size=m, n_original=n_original, generation=generations)
    pool = _OPS.start_pool(original, capacity) if pooled else None
    first = family.fit(original, jnp.ones(n_original, jnp.float32))  # model 1: generation 0 trains on the original data

    def step(carry, g):
        params_g, pool = carry
        kg = jax.random.fold_in(key, g)
        latest = family.sample(kg, params_g, m)
        if pooled:
            pool = _OPS.grow(pool, latest)
        k_regime = jax.random.fold_in(kg, 1)
        inputs = regimes.RegimeInputs(_OPS, k_regime, k_regime, original, pool, latest, m, g,
                                      lambda k, n: family.sample(k, family.truth, n))
        new = family.fit(*_weighted(regimes.build(regime, inputs)))
        return (new, pool), family.metrics(new)

    _, rest = jax.lax.scan(step, (first, pool), jnp.arange(1, generations, dtype=jnp.int32))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), dict(family.metrics(first)), dict(rest))


@partial(jax.jit, static_argnames=("family", "regime", "m", "n_original", "generations"))
def _simulate(keys, *, family, regime, m, n_original, generations):
    return per_device(jax.vmap(partial(_chain, family=family, regime=regime, m=m, n_original=n_original,
                                       generations=generations)))(keys)


def simulate(family: Family, seed: int, *, sample_size: int, generations: int, replicates: int,
             regime: Regime | str | Mapping[str, Any] | None = None,
             n_original: int | None = None) -> dict[str, np.ndarray]:
    """Run `replicates` fit-and-sample chains of `family` under `regime` (default 'replace').

    sample_size: M, points each model draws; n_original: points of the original data (default M).
    Returns {metric: [replicates, generations + 1]}: index 0 is metrics(truth), index g model g's.
    """
    for arg, value in (("seed", seed), ("sample_size", sample_size), ("generations", generations),
                       ("replicates", replicates), ("n_original", sample_size if n_original is None else n_original)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < (0 if arg == "seed" else 1):
            raise ValueError(f"{arg} must be an integer >= {0 if arg == 'seed' else 1}, got {value!r}")
    if not isinstance(family, Family):
        raise ValueError(f"family must be a modelcollapse.family.Family, got {family!r}")
    n_original = sample_size if n_original is None else n_original
    regime = regimes.spec(regime)
    name, params = regime
    regimes.check(regime, regimes.PointOps.offers, family=f"the family {family.name!r}")
    if name == "mix" and dict(params)["real_source"] == "original" and \
            regimes.mix_sizes(dict(params)["real_fraction"], sample_size)[0] > n_original:
        raise ValueError(f"regime mix takes more real points per generation than n_original = {n_original}")
    keys = replicate_keys(seed, replicates)
    out = _simulate(keys, family=family, regime=regime, m=int(sample_size),
                    n_original=int(n_original), generations=int(generations))
    truth = family.metrics(family.truth)
    return {k: np.concatenate([np.broadcast_to(np.asarray(truth[k], v.dtype), (replicates, 1)), np.asarray(v)], axis=1)
            for k, v in out.items()}
