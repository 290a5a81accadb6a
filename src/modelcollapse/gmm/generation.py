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
from modelcollapse import regimes
from modelcollapse.regimes import Regime, append, uniform_subset

# fold_in tags inside a generation's key: what each random draw is for.
_DRAW, _FIT, _REAL, _SUBSET = 0, 1, 2, 3


class _Static(NamedTuple):
    """Everything a chain's shapes and control flow depend on (jit's static arguments)."""

    n: int  # N: points drawn per generation
    generations: int  # G: refits after generation 0
    k: int  # K: mixture components
    init: str  # one of INITS
    regime: Regime


class ColumnOps(regimes.SetOps):
    """The regimes' set operations on points as columns [d, n] (EM's layout); the pool is a
    `regimes.Pool` of rows [N (G+1), d] in `regimes.append`'s layout. Regimes that slice the
    pool's rows themselves (`pool_rows`) assume rows [n, ...] and do not run here."""

    offers = regimes.DATA_NEEDS - {"pool_rows"}

    def subset(self, key, data, k):
        if isinstance(data, regimes.Pool):
            return data.rows[uniform_subset(key, data.size, k)].T
        return data[:, uniform_subset(key, data.shape[1], k)]

    def union(self, a, b):
        return jnp.concatenate([a, b], axis=1)

    def head(self, data, k):
        return data[:, :k]

    def start_pool(self, original, capacity: int):
        rows = jnp.zeros((capacity, original.shape[0]), original.dtype)
        return regimes.Pool(*append(rows, jnp.int32(0), original.T))

    def grow(self, pool, latest):
        return regimes.Pool(*append(pool.rows, pool.size, latest.T))


_OPS = ColumnOps()


def _weighted(data, dtype):
    """(train [d, T], point weights [T]): a pool's unfilled slots weighted 0."""
    if isinstance(data, regimes.Pool):
        return data.rows.T, data.filled(dtype)
    return data, jnp.ones(data.shape[1], dtype)


def _regime_start(original, st: _Static) -> dict:
    """A chain's regime state after generation 0 (arrays; empty for replace). original [d, n]."""
    state = {}
    if regimes.uses_pool(st.regime):  # [N (G+1), d]: regimes.append's layout
        state["pool"] = _OPS.start_pool(original, st.n * (st.generations + 1))
    if "original_subset" in regimes.needs(st.regime):
        state["original"] = original
    return state


def _training_set(kg, x_dn, state: dict, truth_params, st: _Static):
    """Generation g >= 1's training set from its N draws x_dn [d, n] (kg: its key).

    Returns (train [d, n_train], point weights [n_train], new regime state); n_train is the pool
    capacity N (G+1) for accumulate (empty slots weighted 0) and N otherwise.
    """
    state = dict(state)
    if "pool" in state:
        state["pool"] = _OPS.grow(state["pool"], x_dn)
    return _weighted(regimes.build(st.regime, _inputs(kg, x_dn, state, truth_params, st)), x_dn.dtype) + (state,)


def _inputs(kg, x_dn, state: dict, truth_params, st: _Static) -> regimes.RegimeInputs:
    return regimes.RegimeInputs(_OPS, jax.random.fold_in(kg, _REAL), jax.random.fold_in(kg, _SUBSET),
                                state.get("original"), state.get("pool"), x_dn, st.n, None,
                                lambda k, n: _sample_dn(k, truth_params, n))


def _generation_zero(key, truth_params, reg_covar, st: _Static):
    """Draw the original data: (original [d, n], train, w, regime state, EM start, hard)."""
    k0 = jax.random.fold_in(key, 0)
    original = _sample_dn(jax.random.fold_in(k0, _DRAW), truth_params, st.n)
    state = _regime_start(original, st)
    train, w = original, jnp.ones(st.n, original.dtype)
    if isinstance(regimes.build(st.regime, _inputs(k0, original, state, truth_params, st)), regimes.Pool):
        # A regime that trains on the whole pool (accumulate): generation 0 uses the same padded
        # arrays as later generations, holding only the original data (the unused build is traced away).
        train, w = _weighted(state["pool"], original.dtype)
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
