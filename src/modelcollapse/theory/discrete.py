"""Exact theory for recursive resampling of a discrete distribution (the paper's Markov chain).

Setting (Shumailov et al., arXiv 2305.17493 sec. 4.1, "Discrete distributions with exact
approximation"; Nature 631 (2024) 755, the discrete Markov-chain argument of its theoretical
intuition): generation 0 is a distribution q over K symbols;
generation n+1 is the empirical distribution of M draws from generation n,

    p_{n+1} = Multinomial(M, p_n) / M,     p_0 = q,

i.e. the neutral haploid Wright-Fisher model with M individuals and K alleles (Ewens,
"Mathematical Population Genetics I", 2nd ed., Springer 2004, ch. 3; Durrett, "Probability
Models for DNA Sequence Evolution", 2nd ed., Springer 2008, sec. 1.2). Everything below is
computed from q and M alone, never from a simulation (replace regime).

- Homozygosity H_n = sum_k p_n(k)^2 (the probability that two draws agree). Given p_n, a count
  c ~ Binomial(M, p) has E[c^2] = M p (1 - p) + M^2 p^2, so E[H_{n+1} | p_n] = H_n + (1 - H_n)/M,
  and by iterating (the decay of heterozygosity; Ewens 2004, ch. 3):

      E[H_n] = 1 - (1 - 1/M)^n (1 - H_0).

- Loss of a symbol. The count of one symbol is itself a 1-D Wright-Fisher chain,
  c_{i+1} ~ Binomial(M, c_i / M) with absorbing states 0 (lost) and M (fixed), started at
  c_1 ~ Binomial(M, q_k) (generation 1 is the empirical distribution of the original data).
  With P[c, c'] = Binomial(M, c/M)(c') (the (M+1) x (M+1) transition matrix) and
  f_0 = e_0, f_j = P f_{j-1}, f_j(c) = P(count is 0 by j more generations | count c), so

      P(symbol k lost by generation n) = sum_c Binomial(M, q_k)(c) f_{n-1}(c),   n >= 1,

  and the same recursion from e_M gives P(symbol k fixed by generation n). Expectations of sums
  over symbols (surviving symbols, surviving original mass of the rare symbols) are linear, so
  they need only the vectors sum_k w_k Binomial(M, q_k)(.), not the joint law of the symbols.
- Absorption. Each p_n(k) is a bounded martingale (E[p_{n+1} | p_n] = p_n) and every chain is
  eventually absorbed in a single symbol, so symbol k wins with probability q_k (the fixation
  probability of a neutral allele is its initial frequency; Ewens 2004, ch. 3).

Numerics. P is stored banded: row c keeps the columns within 12 standard deviations + 30 of its
mean c, where the binomial tail is below 1e-19 (Bernstein's inequality), so each step loses less
than that much mass and the result is exact to double precision; the band keeps the cost near
O(M^1.5) per generation instead of O(M^2). Up to `MAX_EXACT_SAMPLE_SIZE` this takes seconds
(M = 10,000 and 1,000 generations: about 13 s on a 2-core CPU). Beyond it the functions return
NaN and the figure shows no theory line for that M (no diffusion approximation: it is poor
exactly for the rare symbols, whose counts are O(1), that this experiment is about).

Arrays run over generations n = 0..G (index 0 is q itself).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, stats

__all__ = ["MAX_EXACT_SAMPLE_SIZE", "check_probs", "rare_mask", "expected_homozygosity", "transition_matrix",
           "initial_count_matrix", "absorption_vectors", "loss_probabilities", "fixation_probabilities",
           "expected_surviving_weight", "survival_theory", "expected_survivors", "expected_rare_mass",
           "expected_surviving_mass", "win_probabilities"]

# Largest M for which the exact loss recursion runs (the band has ~ M^1.5 entries: 10^7 at M = 10^4).
MAX_EXACT_SAMPLE_SIZE = 20_000
_BAND_SDS, _BAND_PAD = 12.0, 30.0  # band half-width: 12 standard deviations + 30 counts


def check_probs(probs) -> np.ndarray:
    """probs as float64 [K], K >= 2, finite, >= 0, summing to 1 (within 1e-6); ValueError naming it."""
    q = np.asarray(probs, dtype=np.float64)
    if q.ndim != 1 or q.size < 2:
        raise ValueError(f"probs must be a 1-D array of at least 2 symbol probabilities, got shape {q.shape}")
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError("probs must be finite and non-negative")
    if abs(q.sum() - 1.0) > 1e-6:
        raise ValueError(f"probs must sum to 1, got {q.sum():.9g}")
    return q / q.sum()


def rare_mask(probs, fraction: float = 0.5) -> np.ndarray:
    """The floor(fraction * K) symbols of smallest q (ties: the later index is rarer); bool [K]."""
    q = check_probs(probs)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"rare fraction must be in (0, 1), got {fraction!r}")
    order = np.lexsort((-np.arange(q.size), q))  # ascending q; among ties, higher index first
    mask = np.zeros(q.size, bool)
    mask[order[: int(np.floor(fraction * q.size))]] = True
    return mask


def _check(sample_size, generations) -> tuple[int, int]:
    m, g = int(sample_size), int(generations)
    if m != sample_size or m < 1:
        raise ValueError(f"sample_size must be an integer >= 1, got {sample_size!r}")
    if g != generations or g < 0:
        raise ValueError(f"generations must be an integer >= 0, got {generations!r}")
    return m, g


def expected_homozygosity(probs, *, sample_size: int, generations: int) -> np.ndarray:
    """E[sum_k p_n(k)^2] = 1 - (1 - 1/M)^n (1 - sum_k q_k^2), [G+1] (exact)."""
    q = check_probs(probs)
    m, g = _check(sample_size, generations)
    return 1.0 - (1.0 - 1.0 / m) ** np.arange(g + 1) * (1.0 - np.sum(q * q))


def _banded_binomial(m: int, p: np.ndarray) -> sparse.csr_matrix:
    """Rows Binomial(m, p_r)(c) for c = 0..m, each kept within the band; CSR [len(p), m + 1]."""
    mean = m * p
    half = _BAND_SDS * np.sqrt(mean * (1.0 - p)) + _BAND_PAD
    lo = np.clip(np.floor(mean - half), 0, m).astype(np.int64)
    hi = np.clip(np.ceil(mean + half), 0, m).astype(np.int64)
    lengths = hi - lo + 1
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.repeat(np.arange(p.size), lengths)
    cols = np.arange(indptr[-1]) - np.repeat(indptr[:-1], lengths) + np.repeat(lo, lengths)
    data = stats.binom.pmf(cols, m, p[rows])
    return sparse.csr_matrix((data, cols, indptr), shape=(p.size, m + 1))


def transition_matrix(sample_size: int) -> sparse.csr_matrix:
    """P[c, c'] = Binomial(M, c/M)(c'), the one-symbol Wright-Fisher chain; banded CSR [M+1, M+1]."""
    m, _ = _check(sample_size, 0)
    return _banded_binomial(m, np.arange(m + 1) / m)


def initial_count_matrix(probs, *, sample_size: int) -> sparse.csr_matrix:
    """B[k, c] = Binomial(M, q_k)(c): the count of symbol k in the original data; banded CSR [K, M+1]."""
    m, _ = _check(sample_size, 0)
    return _banded_binomial(m, check_probs(probs))


def absorption_vectors(sample_size: int, generations: int, target: int = 0,
                       keep: np.ndarray | None = None) -> np.ndarray:
    """f_j(c) = P(count reaches `target` (0 or M) within j generations | count c), j = 0..G-1.

    Returns [G, M+1] float64, or only the rows j in `keep` ([len(keep), M+1]) to save memory.
    """
    m, g = _check(sample_size, generations)
    if target not in (0, m):
        raise ValueError(f"target must be 0 or M = {m}, got {target}")
    P = transition_matrix(m)
    keep = np.arange(g) if keep is None else np.asarray(keep, np.int64)
    out = np.empty((keep.size, m + 1))
    f = np.zeros(m + 1)
    f[target] = 1.0
    slot = {j: i for i, j in enumerate(keep.tolist())}
    for j in range(g):
        if j in slot:
            out[slot[j]] = f
        if j < g - 1:
            f = P @ f
    return out


def _absorbed_by(probs, sample_size: int, generations: int, target_fixed: bool,
                 at: np.ndarray | None) -> np.ndarray:
    q = check_probs(probs)
    m, g = _check(sample_size, generations)
    at = np.arange(g + 1) if at is None else np.asarray(at, np.int64)
    if np.any(at < 0) or np.any(at > g):
        raise ValueError(f"generations to report must lie in [0, {g}], got {at.tolist()}")
    out = np.zeros((at.size, q.size))
    if m > MAX_EXACT_SAMPLE_SIZE:
        return np.full((at.size, q.size), np.nan)
    later = at >= 1
    if later.any():
        vectors = absorption_vectors(m, max(int(at.max()), 1), m if target_fixed else 0, keep=at[later] - 1)
        out[later] = (initial_count_matrix(q, sample_size=m) @ vectors.T).T
    if not target_fixed:  # generation 0 is q itself: a symbol is lost there only if q_k = 0
        out[~later] = (q == 0)
    else:
        out[~later] = (q == 1)
    return np.clip(out, 0.0, 1.0)


def loss_probabilities(probs, *, sample_size: int, generations: int, at=None) -> np.ndarray:
    """P(symbol k has probability 0 at generation n), [len(at), K] (default at = 0..G: [G+1, K])."""
    return _absorbed_by(probs, sample_size, generations, False, at)


def fixation_probabilities(probs, *, sample_size: int, generations: int, at=None) -> np.ndarray:
    """P(symbol k has probability 1 at generation n), [len(at), K]; summed over k: P(chain absorbed)."""
    return _absorbed_by(probs, sample_size, generations, True, at)


def _loss_recursion(q: np.ndarray, m: int, g: int, weights: np.ndarray, at: np.ndarray):
    """One backward recursion for everything the summaries need.

    weights [S, K] -> sums [G+1, S] with sums[n, s] = E[sum_k w_sk 1{p_n(k) > 0}] (by linearity,
    sum_k w_sk (1 - P(k lost by n))), and alive [len(at), K] = P(p_n(k) > 0) at the generations `at`.
    """
    sums = np.empty((g + 1, weights.shape[0]))
    alive = np.empty((at.size, q.size))
    sums[0] = weights @ (q > 0)
    alive[at == 0] = q > 0
    if m > MAX_EXACT_SAMPLE_SIZE:
        sums[1:] = np.nan
        alive[at > 0] = np.nan
        return sums, alive
    B = initial_count_matrix(q, sample_size=m)
    u = (B.T @ weights.T).T  # [S, M+1]: u_s(c) = sum_k w_sk Binomial(M, q_k)(c), one vector per weight
    P = transition_matrix(m)
    f = np.zeros(m + 1)
    f[0] = 1.0
    total = weights.sum(axis=1)
    for n in range(1, g + 1):  # f = f_{n-1}
        sums[n] = total - u @ f
        if np.any(at == n):
            alive[at == n] = 1.0 - np.clip(B @ f, 0.0, 1.0)
        if n < g:
            f = P @ f
    return sums, alive


def expected_surviving_weight(probs, weights, *, sample_size: int, generations: int) -> np.ndarray:
    """E[sum_k w_k 1{p_n(k) > 0}]; weights [K] -> [G+1], or [S, K] -> [G+1, S] (one recursion). Exact;
    NaN after generation 0 when M > MAX_EXACT_SAMPLE_SIZE."""
    q = check_probs(probs)
    m, g = _check(sample_size, generations)
    w = np.asarray(weights, np.float64)
    rows = w if w.ndim == 2 else np.broadcast_to(w, q.shape)[None]
    if rows.shape[1] != q.size:
        raise ValueError(f"weights must have one entry per symbol ({q.size}), got shape {w.shape}")
    sums, _ = _loss_recursion(q, m, g, rows, np.zeros(0, np.int64))
    return sums if w.ndim == 2 else sums[:, 0]


def survival_theory(probs, *, sample_size: int, generations: int, at=(), fraction: float = 0.5
                    ) -> dict[str, np.ndarray]:
    """All replace-regime theory of a run in one recursion: E[survivors], E[rare mass], E[surviving
    mass] and E[homozygosity], each [G+1], and P(symbol k alive at n) for n in `at`, [len(at), K]."""
    q = check_probs(probs)
    m, g = _check(sample_size, generations)
    at = np.asarray(at, np.int64).reshape(-1)
    if np.any(at < 0) or np.any(at > g):
        raise ValueError(f"generations to report must lie in [0, {g}], got {at.tolist()}")
    weights = np.stack([np.ones_like(q), q * rare_mask(q, fraction), q])
    sums, alive = _loss_recursion(q, m, g, weights, at)
    return {"survivors": sums[:, 0], "rare_mass": sums[:, 1], "surviving_mass": sums[:, 2],
            "homozygosity": expected_homozygosity(q, sample_size=m, generations=g), "alive": alive}


def expected_survivors(probs, *, sample_size: int, generations: int) -> np.ndarray:
    """E[number of symbols with p_n(k) > 0], [G+1] (exact)."""
    return expected_surviving_weight(probs, 1.0, sample_size=sample_size, generations=generations)


def expected_rare_mass(probs, *, sample_size: int, generations: int, fraction: float = 0.5) -> np.ndarray:
    """E[sum over the rarest `fraction` of symbols of q_k 1{p_n(k) > 0}], [G+1] (exact)."""
    q = check_probs(probs)
    return expected_surviving_weight(q, q * rare_mask(q, fraction), sample_size=sample_size,
                                     generations=generations)


def expected_surviving_mass(probs, *, sample_size: int, generations: int) -> np.ndarray:
    """E[sum_k q_k 1{p_n(k) > 0}]: the original mass still represented at generation n, [G+1]."""
    q = check_probs(probs)
    return expected_surviving_weight(q, q, sample_size=sample_size, generations=generations)


def win_probabilities(probs) -> np.ndarray:
    """P(the chain is eventually absorbed in symbol k) = q_k, [K] (martingale argument, any M)."""
    return check_probs(probs).copy()
