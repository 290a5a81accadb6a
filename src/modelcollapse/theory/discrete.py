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
- Duality (what the summaries use). Trace the M individuals of generation n back j generations:
  each picks a parent uniformly, so the number of distinct ancestors is a Markov chain A_j
  started at A_0 = M whose step is the occupancy law Q[a, a'] = P(a balls in M boxes fill a'
  boxes), and given A_j = a the ancestors are a uniform a-subset of the earlier generation. A
  symbol with count c there is lost j generations later iff all of them are of other symbols:

      f_j(c) = sum_a P(A_j = a) h(c, a),   h(c, a) = C(M - c, a) / C(M, a)

  (the moment duality of the Wright-Fisher chain with its ancestral process; Moehle, Bernoulli
  5 (1999) 761; Tavare, Theor. Popul. Biol. 26 (1984) 119). Every term is a product of
  probabilities, so nothing cancels.

Numerics. P and Q are stored banded: P's row c keeps the columns within 12 standard deviations
+ 30 of its mean c, where the binomial tail is below 1e-19 (Bernstein's inequality); Q's rows
and the law of A_j drop entries below 1e-30. So each step loses less than 1e-19 of mass and
the results are exact to double precision (the two routes below agree to a relative 2e-14 in
E[survivors] at M = 1000, G = 1000). The summaries (`survival_theory`) run the dual: the law of
A_j has a few hundred entries (A_j is near 2M/j), and h is needed only at the counts c that the
original data can have, so M = 10,000 and 1,000 generations take about 1 s on a 2-core CPU. The
recursion f_j = P f_{j-1} reads P's 10^7 entries every generation (12 s there); it remains for
the per-symbol `loss_probabilities` and `fixation_probabilities`. Beyond
`MAX_EXACT_SAMPLE_SIZE` the functions return NaN and the figure shows no theory line for that M
(no diffusion approximation: it is poor exactly for the rare symbols, whose counts are O(1),
that this experiment is about).

Arrays run over generations n = 0..G (index 0 is q itself).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse, stats

__all__ = ["MAX_EXACT_SAMPLE_SIZE", "check_probs", "rare_mask", "expected_homozygosity", "transition_matrix",
           "initial_count_matrix", "ancestor_matrix", "absorption_vectors", "loss_probabilities",
           "fixation_probabilities",
           "expected_surviving_weight", "survival_theory", "expected_survivors", "expected_rare_mass",
           "expected_surviving_mass", "win_probabilities"]

# Largest M for which the exact theory runs (P's band has ~ M^1.5 entries: 10^7 at M = 10^4).
MAX_EXACT_SAMPLE_SIZE = 20_000
_BAND_SDS, _BAND_PAD = 12.0, 30.0  # band half-width: 12 standard deviations + 30 counts
_TINY = 1e-30  # probabilities below this are dropped from Q's rows and from the law of A_j


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


def ancestor_matrix(sample_size: int) -> sparse.csr_matrix:
    """Q[a, a'] = P(a balls thrown uniformly into M boxes occupy a' boxes): the number of distinct
    parents of a individuals. Rows by adding one ball at a time (it lands in one of the a' occupied
    boxes with probability a'/M); banded CSR [M+1, M+1].

    The recursion runs in long double (80-bit on x86): in float64 its rounding compounds over the
    M rows and then over the generations of the ancestral chain (relative 4e-13 in E[survivors]
    at M = 1000, G = 1000, against 4e-15 for the rounded long-double rows).
    """
    m, _ = _check(sample_size, 0)
    occupied = np.arange(m + 2, dtype=np.longdouble)
    empty = m - occupied
    rows, starts = [np.ones(1, np.longdouble)], [0]
    row, lo = rows[0], 0  # row a over a' = lo .. lo + row.size - 1
    for _ in range(m):
        n = row.size
        new = np.empty(n + 1, np.longdouble)  # M times the next row: the ball lands in an occupied box, or not
        np.multiply(row, occupied[lo:lo + n], out=new[:-1])
        new[-1] = 0.0
        new[1:] += row * empty[lo:lo + n]
        first, last = 0, n + 1  # the row is unimodal: only its ends fall below the cut
        while new[first] < _TINY * m:
            first += 1
        while new[last - 1] < _TINY * m:
            last -= 1
        row, lo = new[first:last] / m, lo + first
        rows.append(row)
        starts.append(lo)
    lengths = np.array([r.size for r in rows])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    cols = np.arange(indptr[-1]) - np.repeat(indptr[:-1], lengths) + np.repeat(starts, lengths)
    return sparse.csr_matrix((np.concatenate(rows).astype(np.float64), cols, indptr), shape=(m + 1, m + 1))


@functools.lru_cache(maxsize=2)  # a summary asks twice for the same (M, G): surviving symbols, then ranks
def _ancestor_laws(m: int, g: int) -> tuple[tuple[int, np.ndarray], ...]:
    """The law of A_j for j = 0..g-1, each as (first a, probabilities of a = first, first + 1, ...)."""
    q = ancestor_matrix(m)
    laws = [(m, np.ones(1))]
    for _ in range(g - 1):
        first, law = laws[-1]
        law = q[first:first + law.size].T @ law
        keep = np.flatnonzero(law >= _TINY)
        laws.append((int(keep[0]), law[keep[0]:keep[-1] + 1]))
    return tuple(laws)


def _hypergeometric_blocks(m: int, top: int, block: int = 512):
    """h(c, a) = C(M - c, a) / C(M, a) for c < top, a = 0..M, in column blocks: yields (a0, [rows, n]).

    h falls in both c and a, so a block keeps only the rows c whose h(c, a0) is not yet 0 (rows
    past them are 0)."""
    c = np.arange(top, dtype=np.float64)[:, None]
    h = np.ones((top, 1))  # h(c, a0)
    for a0 in range(0, m + 1, block):
        rows = int(np.count_nonzero(h))
        a = np.arange(a0, min(a0 + block, m + 1), dtype=np.float64)[None, :]
        ratio = np.maximum(m - c[:rows] - a, 0.0) / np.maximum(m - a, 1.0)  # h(c, a + 1) / h(c, a)
        steps = np.cumprod(ratio, axis=1)
        yield a0, h[:rows] * np.concatenate([np.ones((rows, 1)), steps[:, :-1]], axis=1)
        h = h[:rows] * steps[:, -1:]
        h[h < 1e-290] = 0.0  # keep denormals out of the products


def _loss_recursion(q: np.ndarray, m: int, g: int, weights: np.ndarray, at: np.ndarray):
    """Everything the summaries need, through the dual (module docstring).

    weights [S, K] -> sums [G+1, S] with sums[n, s] = E[sum_k w_sk 1{p_n(k) > 0}] (by linearity,
    sum_k w_sk (1 - P(k lost by n))), and alive [len(at), K] = P(p_n(k) > 0) at the generations `at`.
    P(k lost by n) = sum_c B[k, c] f_{n-1}(c) with f_{n-1}(c) = sum_a P(A_{n-1} = a) h(c, a), so
    sums[n] = total - sum_a P(A_{n-1} = a) U(a), U(a) = sum_c u(c) h(c, a), u = w B.
    """
    sums = np.empty((g + 1, weights.shape[0]))
    alive = np.empty((at.size, q.size))
    sums[0] = weights @ (q > 0)
    alive[at == 0] = q > 0
    if m > MAX_EXACT_SAMPLE_SIZE:
        sums[1:] = np.nan
        alive[at > 0] = np.nan
        return sums, alive
    if g == 0:
        return sums, alive
    B = initial_count_matrix(q, sample_size=m)
    top = int(B.indices.max()) + 1  # counts the original data can have; f is needed only there
    B = B[:, :top]
    u = (B.T @ weights.T).T  # [S, top]: u_s(c) = sum_k w_sk Binomial(M, q_k)(c)
    laws = _ancestor_laws(m, g)
    later = at[at > 0]
    law_at = np.zeros((later.size, m + 1))  # [len(later), M+1]: the law of A_{n-1} for n in `later`
    for i, n in enumerate(later):
        first, law = laws[n - 1]
        law_at[i, first:first + law.size] = law
    big_u = np.empty((weights.shape[0], m + 1))
    f_at = np.zeros((later.size, top))
    for a0, h in _hypergeometric_blocks(m, top):
        rows, cols = h.shape
        big_u[:, a0:a0 + cols] = u[:, :rows] @ h
        f_at[:, :rows] += law_at[:, a0:a0 + cols] @ h.T
    total = weights.sum(axis=1)
    for n in range(1, g + 1):
        first, law = laws[n - 1]
        sums[n] = total - big_u[:, first:first + law.size] @ law
    alive[at > 0] = 1.0 - np.clip(f_at @ B.T, 0.0, 1.0)
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
