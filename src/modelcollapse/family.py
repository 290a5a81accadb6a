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

Regimes are looked up by name in a registry: the four of `modelcollapse.regimes` are registered
below, and `register_regime(name, fn)` adds one (see examples/exponential/window.py). A regime
function takes a `RegimeInputs` and its own keyword parameters and returns (data [T, ...],
weights [T]) with T fixed for the whole chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse.regimes import NAMES, Regime, append, split_sizes, training_size, uniform_subset
from modelcollapse.runtime import replicate_keys


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


class RegimeInputs(NamedTuple):
    """What a regime may use to build the training set of model g + 1 (g >= 1)."""

    key: jax.Array  # this generation's regime key
    original: jax.Array  # [n_original, ...] the generation-0 data (draws from the truth)
    pool: jax.Array  # [capacity, ...]: the original data, then each generation's M samples, in order
    pool_size: jax.Array  # int32 scalar: filled rows of `pool` (`latest` included); [0, ...] pool if unused
    latest: jax.Array  # [M, ...] the samples of model g
    generation: jax.Array  # int32 scalar g >= 1: `latest` came from model g
    draw_truth: Callable[[jax.Array, int], jax.Array]  # (key, n) -> n fresh draws from the truth


class _Entry(NamedTuple):
    fn: Callable[..., tuple[jax.Array, jax.Array]]
    uses_pool: bool


_REGIMES: dict[str, _Entry] = {}


def register_regime(name: str, fn: Callable[..., tuple[jax.Array, jax.Array]], *, uses_pool: bool = True) -> None:
    """Make `name` usable as `simulate(..., regime={"name": name, **params})`.

    fn(inputs: RegimeInputs, **params) -> (data [T, ...], weights [T]), traced inside the scan: T
    must not depend on the generation (mask rows with weight 0 instead). uses_pool=False lets
    `simulate` skip the pool buffer (R x capacity points) for regimes that read only `latest`.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"regime name must be an identifier, got {name!r}")
    if name in NAMES:
        raise ValueError(f"regime name {name!r} is built in (modelcollapse.regimes) and cannot be replaced")
    if not callable(fn):
        raise ValueError(f"regime fn must be callable, got {fn!r}")
    _REGIMES[name] = _Entry(fn, uses_pool)


def registered_regimes() -> tuple[str, ...]:
    return tuple(_REGIMES)


def _ones(x: jax.Array) -> jax.Array:
    return jnp.ones(x.shape[0], jnp.float32)


def _replace(inputs: RegimeInputs):
    return inputs.latest, _ones(inputs.latest)


def _accumulate(inputs: RegimeInputs):
    # The whole buffer with its unfilled rows weighted 0: model g + 1 counts n_original + g M rows.
    return inputs.pool, (jnp.arange(inputs.pool.shape[0]) < inputs.pool_size).astype(jnp.float32)


def _accumulate_subsample(inputs: RegimeInputs):
    m = inputs.latest.shape[0]
    return inputs.pool[uniform_subset(inputs.key, inputs.pool_size, m)], _ones(inputs.latest)


def _mix(inputs: RegimeInputs, *, real_fraction: float, real_source: str = "original"):
    n_real, n_syn = split_sizes(Regime(name="mix", real_fraction=real_fraction, real_source=real_source),
                                inputs.latest.shape[0])
    if real_source == "original":
        real = inputs.original[uniform_subset(inputs.key, inputs.original.shape[0], n_real)]
    else:
        real = inputs.draw_truth(inputs.key, n_real)
    data = jnp.concatenate([real.astype(inputs.latest.dtype), inputs.latest[:n_syn]])
    return data, _ones(data)


# The shared regimes go through the same registry as a user's, so there is one code path.
for _name, _fn, _pool in (("replace", _replace, False), ("accumulate", _accumulate, True),
                          ("accumulate_subsample", _accumulate_subsample, True), ("mix", _mix, False)):
    _REGIMES[_name] = _Entry(_fn, _pool)


def regime_spec(regime: Regime | str | Mapping[str, Any] | None) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """(name, sorted parameters) of a regime given as a Regime, a name, or {name: ..., **params}.

    Built-in regimes are checked by `Regime`; a registered one must be known, and its parameters
    are checked by its function when `simulate` traces it.
    """
    if regime is None or isinstance(regime, str):
        regime = {"name": regime or "replace"}
    if isinstance(regime, Regime):
        regime = dataclasses.asdict(regime)
    if not isinstance(regime, Mapping) or "name" not in regime:
        raise ValueError(f"regime must be a Regime, a name or a mapping with 'name', got {regime!r}")
    params = {k: v for k, v in regime.items() if k != "name"}
    name = regime["name"]
    if name in NAMES:
        r = Regime.from_config({"name": name, **params})
        params = {"real_fraction": r.real_fraction, "real_source": r.real_source} if name == "mix" else {}
    elif name not in _REGIMES:
        raise ValueError(f"unknown regime {name!r}; registered: {sorted(_REGIMES)}")
    return name, tuple(sorted(params.items()))


def regime_label(regime) -> str:
    """A file-name-safe tag: 'replace', 'mix0.1' (as `Regime.label`), 'window-k5' for registered ones."""
    name, params = regime_spec(regime)
    if name in NAMES:
        return Regime.from_config({"name": name, **dict(params)}).label
    return "-".join([name] + [f"{k}{v:g}" if isinstance(v, (int, float)) else f"{k}{v}" for k, v in params])


def _chain(key, *, family: Family, regime: str, params: tuple, m: int, n_original: int, generations: int):
    """One chain: {metric: [generations]} for models 1..G (model 0, the truth, is added by `simulate`)."""
    entry = _REGIMES[regime]
    original = family.sample(jax.random.fold_in(key, 0), family.truth, n_original)
    # Capacity: everything accumulate ever holds, n_original + (G - 1) M (model G's training set).
    capacity = training_size(Regime(name="accumulate"), sample_size=m, n_original=n_original,
                             generation=generations) if entry.uses_pool else 0
    pool = jnp.zeros((capacity,) + original.shape[1:], original.dtype)
    if entry.uses_pool:
        pool, size = append(pool, jnp.int32(0), original)
    else:
        size = jnp.int32(n_original)
    first = family.fit(original, _ones(original))  # model 1: generation 0 trains on the original data

    def step(carry, g):
        params_g, pool, size = carry
        kg = jax.random.fold_in(key, g)
        latest = family.sample(kg, params_g, m)
        if entry.uses_pool:
            pool, size = append(pool, size, latest)
        inputs = RegimeInputs(jax.random.fold_in(kg, 1), original, pool, size, latest, g,
                              lambda k, n: family.sample(k, family.truth, n))
        data, weights = entry.fn(inputs, **dict(params))
        new = family.fit(data, weights)
        return (new, pool, size), family.metrics(new)

    _, rest = jax.lax.scan(step, (first, pool, size), jnp.arange(1, generations, dtype=jnp.int32))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), dict(family.metrics(first)), dict(rest))


@partial(jax.jit, static_argnames=("family", "regime", "params", "m", "n_original", "generations"))
def _simulate(keys, *, family, regime, params, m, n_original, generations):
    return jax.vmap(partial(_chain, family=family, regime=regime, params=params, m=m, n_original=n_original,
                            generations=generations))(keys)


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
    name, params = regime_spec(regime)
    if name == "mix" and dict(params)["real_source"] == "original" and \
            split_sizes(Regime(name="mix", real_fraction=dict(params)["real_fraction"]), sample_size)[0] > n_original:
        raise ValueError(f"regime mix takes more real points per generation than n_original = {n_original}")
    keys = replicate_keys(seed, replicates)
    out = _simulate(keys, family=family, regime=name, params=params, m=int(sample_size),
                    n_original=int(n_original), generations=int(generations))
    truth = family.metrics(family.truth)
    return {k: np.concatenate([np.broadcast_to(np.asarray(truth[k], v.dtype), (replicates, 1)), np.asarray(v)], axis=1)
            for k, v in out.items()}
