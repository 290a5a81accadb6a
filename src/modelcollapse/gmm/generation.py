"""What one generation of one chain is, shared by both engines: its keys, its draws, its
training set under the data regime, and where its fit starts.

Generation 0 is the fit to the original data (the paper's GMM_0); `generations` counts the refits
after it, so a chain has G + 1 fits. (The 1-D Gaussian family calls the truth its generation 0;
here the truth is not a K-component mixture, so index 0 is the first fit, as in the paper's
figure: generation g trains on what `regimes.training_size(generation=g + 1)` says.)

Keys: replicate r uses fold_in(key(seed), r) and generation g folds in g, then a fixed tag per use
(`_DRAW`, `_FIT`, `_REAL`, `_SUBSET`), so a chain's random numbers do not depend on what runs beside
it. The tests replay chains at these keys with the public `sample` and `fit`.

Everything here works on one replicate (the engines vmap it); points are [d, n] (see
`mixture.py`); the regime state is a dict of arrays: `pool` [N (G+1), d] in `regimes.append`'s
layout and its fill `size` for the pooling regimes, `original` [d, n] for mix from the original data.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from modelcollapse.gmm.em import _start_dn
from modelcollapse.gmm.mixture import GMMParams, _sample_dn
from modelcollapse.regimes import POOLING, Regime, append, split_sizes, uniform_subset

# fold_in tags inside a generation's key: what each random draw is for.
_DRAW, _FIT, _REAL, _SUBSET = 0, 1, 2, 3


class _Static(NamedTuple):
    """Everything a chain's shapes and control flow depend on (jit's static arguments)."""

    n: int  # N: points drawn per generation
    generations: int  # G: refits after generation 0
    k: int  # K: mixture components
    init: str  # one of INITS
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


def _training_set(kg, x_dn, state: dict, truth_params, st: _Static):
    """Generation g >= 1's training set from its N draws x_dn [d, n] (kg: its key).

    Returns (train [d, n_train], point weights [n_train], new regime state); n_train is the pool
    capacity N (G+1) for accumulate (empty slots weighted 0) and N otherwise.
    """
    state, regime, n = dict(state), st.regime, st.n
    w = jnp.ones(n, x_dn.dtype)
    if regime.name == "replace":
        return x_dn, w, state
    if regime.name in POOLING:
        state["pool"], state["size"] = append(state["pool"], state["size"], x_dn.T)
        if regime.name == "accumulate":
            pool = state["pool"].T
            return pool, (jnp.arange(pool.shape[1]) < state["size"]).astype(x_dn.dtype), state
        return state["pool"][uniform_subset(jax.random.fold_in(kg, _SUBSET), state["size"], n)].T, w, state
    n_real, n_syn = split_sizes(regime, n)  # mix: n_real real points, then the first n_syn synthetic ones
    parts = []
    if n_real:
        k_real = jax.random.fold_in(kg, _REAL)
        parts.append(state["original"][:, uniform_subset(k_real, n, n_real)] if "original" in state
                     else _sample_dn(k_real, truth_params, n_real))
    if n_syn:
        parts.append(x_dn[:, :n_syn])
    return jnp.concatenate(parts, axis=1), w, state


def _generation_zero(key, truth_params, reg_covar, st: _Static):
    """Draw the original data: (original [d, n], train, w, regime state, EM start, hard)."""
    k0 = jax.random.fold_in(key, 0)
    original = _sample_dn(jax.random.fold_in(k0, _DRAW), truth_params, st.n)
    state = _regime_start(original, st)
    train, w = original, jnp.ones(st.n, original.dtype)
    if st.regime.name == "accumulate":  # the same arrays as later generations: the pool, padded
        train = state["pool"].T
        w = (jnp.arange(train.shape[1]) < st.n).astype(original.dtype)
    return (original, train, w, state) + _start_dn(jax.random.fold_in(k0, _FIT), train, w, st.k, st.init, reg_covar)


def _next_generation(key, g, params: GMMParams, state: dict, truth_params, reg_covar, st: _Static):
    """Start generation g >= 1 from generation g-1's fit: draw N points, form the training set,
    seed the initialisation. Returns (draws [d, n], train, w, regime state, start params, hard)."""
    kg = jax.random.fold_in(key, g)
    x_dn = _sample_dn(jax.random.fold_in(kg, _DRAW), params, st.n)
    train, w, state = _training_set(kg, x_dn, state, truth_params, st)
    return (x_dn, train, w, state) + _start_dn(jax.random.fold_in(kg, _FIT), train, w, st.k, st.init, reg_covar)


def _keep_snapshot(snap_points, snap_gens, g, x_dn):
    """Keep x_dn [d, n] in snap_points [S, d, n] at the slots where snap_gens [S] == g."""
    return jnp.where((snap_gens == g)[:, None, None], x_dn[None], snap_points)
