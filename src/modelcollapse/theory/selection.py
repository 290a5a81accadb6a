"""Exact law of the discrete chain under a verifier: Wright-Fisher with selection (issue 21).

Setting (`modelcollapse.discrete`, regime `verify` with no real data): generation 1 is the
empirical distribution of the M original draws of q, c_1 ~ Multinomial(M, q); generation n+1
trains on M draws of p_n = c_n / M that the verifier accepted, and a draw of symbol k is accepted
with probability w_k. Accepted draws are draws of the tilted law p_n w / (p_n . w), so

    c_{n+1} | c_n ~ Multinomial(M, c_n w / (c_n . w)),

the haploid Wright-Fisher model with selection, fitness w_k for allele k (Ewens, "Mathematical
Population Genetics I", 2nd ed., Springer 2004, sec. 1.4 and ch. 5; Durrett, "Probability Models
for DNA Sequence Evolution", 2nd ed., Springer 2008, sec. 6.1). w = 1 is the neutral chain of
`theory.discrete`. Two statements are exact:

- the one-step law above, and with it E[p_{n+1} | p_n] = p_n w / (p_n . w) (`tilted`);
- everything below, computed on the whole state space: the compositions c of M into K parts,
  S = C(M + K - 1, K - 1) states (1771 for K = 4, M = 20), with the dense S x S transition
  matrix of multinomial probabilities (`transition_matrix`). The law of c_n is the law of c_1
  times n - 1 powers of it (`chain_law`), so P(absorbed by n), E[surviving symbols], E[p_n(k)]
  and P(fixed on k by n) are exact up to double-precision rounding (row sums are 1 within 1e-12,
  probabilities below 1e-200 are dropped;
  a test checks w = 1 against the neutral theory, which is computed another way, and K = 2
  against the one-symbol binomial chain with selection).

What is approximate, and labelled so wherever it is shown:
- `deterministic`: the infinite-M recursion d_{n+1} = d_n w / (d_n . w) from d_1 = q, i.e.
  d_n proportional to q w^(n-1). It iterates the exact conditional mean as if p_n were not random
  (E[f(p_n)] != f(E[p_n])), so it ignores drift; it is exact only as M -> infinity.
- Kimura's diffusion formula for two alleles, P(fix | p) = (1 - e^{-2Msp}) / (1 - e^{-2Ms})
  (Kimura, Genetics 47 (1962) 713), which drops O(1/M) terms; K > 2 alleles with unequal
  fitnesses have no such closed form. tests/test_verify.py checks it against the chains.

The state space grows as M^(K-1): `MAX_STATES` bounds the dense matrix (8 S^2 bytes).
Arrays run over generations n = 0..G (index 0 is q itself).
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np
from scipy import special

from modelcollapse.theory.discrete import check_probs

__all__ = ["MAX_STATES", "num_states", "compositions", "tilted", "transition_matrix", "initial_law", "chain_law",
           "deterministic"]

MAX_STATES = 4000  # dense transition matrix of at most 128 MB
# Probabilities below this are set to 0 in T and in the law of c_n: subnormal floats make each
# vector-matrix product up to 20x slower, and what is dropped (< S G 1e-200) is far below rounding.
_TINY = 1e-200


def num_states(num_symbols: int, sample_size: int) -> int:
    """S = C(M + K - 1, K - 1), the compositions of M into K non-negative parts."""
    return comb(int(sample_size) + int(num_symbols) - 1, int(num_symbols) - 1)


def compositions(num_symbols: int, sample_size: int) -> np.ndarray:
    """Every count vector c with K non-negative entries summing to M (stars and bars), int64 [S, K];
    row 0 is (0, ..., 0, M) and the last row (M, 0, ..., 0)."""
    k, m = int(num_symbols), int(sample_size)
    if k < 2 or m < 1:
        raise ValueError(f"num_symbols must be >= 2 and sample_size >= 1, got {num_symbols!r}, {sample_size!r}")
    s = num_states(k, m)
    if s > MAX_STATES:
        raise ValueError(f"K = {k} symbols and M = {m} draws give {s} states, more than the exact chain's "
                         f"MAX_STATES = {MAX_STATES}; use fewer symbols or a smaller M")
    bars = np.array(list(combinations(range(m + k - 1), k - 1)), np.int64).reshape(s, k - 1)  # [S, K-1]
    edges = np.concatenate([np.full((s, 1), -1), bars, np.full((s, 1), m + k - 1)], axis=1)
    return np.diff(edges, axis=1) - 1


def _weights(weights, num_symbols: int) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.shape != (num_symbols,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be {num_symbols} finite positive acceptance weights, got {weights!r}")
    return w / w.max()  # only the ratios matter


def tilted(probs, weights) -> np.ndarray:
    """p w / (p . w) along the last axis: the law of an accepted draw of p, and E[p_{n+1} | p_n = p] (exact)."""
    p = np.asarray(probs, np.float64)
    t = p * np.asarray(weights, np.float64)
    return t / t.sum(axis=-1, keepdims=True)


def _multinomial_matrix(probs: np.ndarray, states: np.ndarray, m: int) -> np.ndarray:
    """[len(probs), S]: row r is Multinomial(M, probs[r])(c) for every state c (exact pmf in logs)."""
    logp = np.log(np.where(probs > 0, probs, 1.0))
    log_coef = special.gammaln(m + 1) - special.gammaln(states + 1).sum(axis=1)  # [S]
    out = np.exp(logp @ states.T.astype(np.float64) + log_coef[None, :])
    # a state that puts draws on a symbol of probability 0 has probability 0
    impossible = (probs == 0).astype(np.float64) @ (states > 0).T.astype(np.float64) > 0
    out[impossible] = 0.0
    return out


def transition_matrix(weights, sample_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(states [S, K], T [S, S]) with T[c, c'] = Multinomial(M, c w / (c . w))(c'), the exact one-step law."""
    w = np.asarray(weights, np.float64)
    states = compositions(w.size, sample_size)
    w = _weights(w, states.shape[1])
    T = _multinomial_matrix(tilted(states, w), states, int(sample_size))
    T[T < _TINY] = 0.0
    return states, T


def initial_law(probs, states: np.ndarray, sample_size: int) -> np.ndarray:
    """Multinomial(M, q)(c) over `states` [S, K]: the law of generation 1's counts; [S]."""
    q = check_probs(probs)
    return _multinomial_matrix(q[None, :], states, int(sample_size))[0]


def chain_law(probs, weights, *, sample_size: int, generations: int) -> dict[str, np.ndarray]:
    """The exact per-generation law of the chain with acceptance weights `weights` [K] (w = 1: neutral).

    Returns float64 arrays over n = 0..G (index 0: q itself):
    fixed [G+1] P(one symbol left), survivors [G+1] E[symbols with p_n(k) > 0] and survivors_sq
    its second moment, mass [G+1, K] E[p_n(k)] and mass_sq E[p_n(k)^2], wins [G+1, K] P(p_n(k) = 1);
    and wins_limit [K], P(the chain ends fixed on k), from the absorbing chain's linear system.
    """
    q = check_probs(probs)
    m, g = int(sample_size), int(generations)
    if m != sample_size or m < 1 or g != generations or g < 1:
        raise ValueError(f"sample_size and generations must be integers >= 1, got {sample_size!r}, {generations!r}")
    states, T = transition_matrix(_weights(weights, q.size), m)
    law = initial_law(q, states, m)  # generation 1
    alive = (states > 0).sum(axis=1)  # [S]
    fixed_on = np.flatnonzero(alive == 1)
    symbol_of = np.argmax(states[fixed_on], axis=1)  # the symbol each absorbing state is fixed on
    out = {"fixed": np.empty(g + 1), "survivors": np.empty(g + 1), "survivors_sq": np.empty(g + 1),
           "mass": np.empty((g + 1, q.size)), "mass_sq": np.empty((g + 1, q.size)), "wins": np.zeros((g + 1, q.size))}
    out["fixed"][0] = float(np.count_nonzero(q) == 1)
    out["survivors"][0] = np.count_nonzero(q)
    out["survivors_sq"][0] = np.count_nonzero(q) ** 2
    out["mass"][0], out["mass_sq"][0] = q, q**2
    out["wins"][0] = q == 1
    for n in range(1, g + 1):
        out["fixed"][n] = law[alive == 1].sum()
        out["survivors"][n] = law @ alive
        out["survivors_sq"][n] = law @ alive**2
        out["mass"][n] = law @ states / m
        out["mass_sq"][n] = law @ (states / m) ** 2
        out["wins"][n, symbol_of] = law[fixed_on]
        if n < g:
            law = law @ T
            law[law < _TINY] = 0.0
    transient = np.flatnonzero(alive > 1)
    start = initial_law(q, states, m)
    limit = np.zeros(q.size)
    limit[symbol_of] = start[fixed_on]
    if transient.size:  # h = (I - T_tt)^-1 T_ta: P(absorbed in each absorbing state | transient state)
        h = np.linalg.solve(np.eye(transient.size) - T[np.ix_(transient, transient)], T[np.ix_(transient, fixed_on)])
        np.add.at(limit, symbol_of, start[transient] @ h)
    out["wins_limit"] = limit
    return out


def deterministic(probs, weights, *, generations: int) -> np.ndarray:
    """APPROXIMATE (M -> infinity, no drift): d_0 = d_1 = q, d_{n+1} = d_n w / (d_n . w); [G+1, K]."""
    q = check_probs(probs)
    w = _weights(weights, q.size)
    out = np.empty((int(generations) + 1, q.size))
    out[0] = q
    for n in range(1, out.shape[0]):
        out[n] = q if n == 1 else tilted(out[n - 1], w)
    return out
