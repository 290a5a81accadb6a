"""Recursive resampling of a discrete distribution (Shumailov et al., Nature 2024, Methods,
"Discrete distributions with exact approximation"; the neutral Wright-Fisher model).

Generation 0 is the truth q over K symbols (default: Zipf, q_k proportional to k^-exponent).
Generation g draws M symbols from its distribution p_g; the data regime
(`modelcollapse.regimes`) forms generation g+1's training set from those draws, and
p_{g+1} = training counts / training-set size (the maximum-likelihood fit). Generation 0's M
draws are the original data set, so generation 1 fits the original data: the chain starts at
the truth exactly as the Gaussian chain does. In the default `replace` regime this is
p_{g+1} = Multinomial(M, p_g) / M.

Regimes, carried as counts (exact: a regime only ever takes uniform subsets or unions of
exchangeable points, so the counts are sufficient):
- `replace`: the M draws.
- `accumulate`: pooled counts, the original data plus every generation's draws so far;
  p = pooled / (M (g+1)).
- `accumulate_subsample`: the same pool, then a uniform M-subset of it without replacement
  (`regimes.subsample_counts`: Floyd's algorithm, O(M^2) comparisons per generation, so keep
  M to a few hundred for this regime). Both pooling regimes need M (G + 1) < 2^31 (`check_pool`).
- `mix`: generation 1 fits the original data; later generations fit
  n_real = round(real_fraction M) real points plus the first M - n_real of the previous
  generation's draws. Real points are a uniform n_real-subset of the original data set's counts
  (`real_source: original`, via `subsample_counts`) or n_real fresh draws from q (`fresh`).

Sampling. Every training set is a multiset of integer counts, and Multinomial(n, c / sum c) is
n uniform draws from that multiset: each draw is a uniform index into [0, sum c) mapped to its
symbol, then the symbols are counted. The replace chains (and mix without real data) carry the
training set as its M symbols, so a generation is symbols[exact_indices] (no owner table rebuilt
from counts), with Lemire's exact 32-bit multiply-and-reject index (one word per draw, against
two for the 64-bit index), and run their replicates in blocks whose [b, M] arrays stay in cache
(`_replace_chunk`). Against NumPy's loop of rng.multinomial over all chains
(benchmarks/discrete.py, K = 1000, R = 200, G = 100, busy 2-core CPU, median of three runs at
M = 100 / 1000 / 10,000): NumPy / JAX = 2.98 / 2.07 / 0.82 (JAX 4.3 / 8.0 / 92 microseconds per
chain and generation), against 0.79 / 0.68 / 0.17 for the previous sampler (the same draws
through a 64-bit index and an owner table rebuilt from the counts every generation; 8 / 19 / 94
microseconds on a quiet machine). Slower exact samplers measured (quiet): 10 / 41 / 295 for
jax.random.randint + binary search, 296 / 434 / 353 for a vectorised binary tree of
jax.random.binomial, and 511 / 681 / 1240 for jax.random.multinomial (a scan of K sequential
float binomials, each running both its inversion and its BTRS rejection loop until the slowest
lane finishes). Then, on a quiet machine (three runs, median), the rare Lemire redraw went from
redrawing the whole block to one fresh word per row and pass, and the counts from vmapped
bincounts to one bincount over b K bins: 4.36 / 2.02 / 0.56 -> 4.54 / 2.29 / 0.80 (37 microseconds
per chain and generation at M = 10,000; words alone take ~15, a redraw-free index + gather ~14).
On one device NumPy stays faster at M = 10,000 (1.25x; goal 1.5x the other way): any index sampler
costs O(M) random words and counts per generation, while NumPy's conditional binomials (BTPE) cost
O(survivors), and an exact binomial in JAX needs float64 rejection tests (jax.random.binomial runs
them in float32, so it is not used here). So the chains use both cores: `_simulate` runs one
program per device on its share of the chains (`runtime.per_device`, `jax.shard_map`), and with
one forced host device per core (XLA_FLAGS=--xla_force_host_platform_device_count=2) the same
chains take 17 microseconds per chain and generation at M = 10,000 (blocks of 10 chains: the two
cores share the L3), against 27 when two devices were left to XLA's partitioner; NumPy / JAX =
7.07 / 5.37 / 1.75 on two devices and 1.44 / 2.26 / 0.74 on one (three runs, median; NumPy's loop
runs on one core). The other regimes index the owner table of their counts with
the 64-bit `uniform_index` (its bias is below sum(c) / 2^64); the growing `accumulate` pool
through a binary search of its cumulative counts. q itself is sampled as integer weights
round(q 2^30) (total exactly 2^30), so a probability is off by at most 2^-31 (relative 1e-5 for
q_k = 1e-4).

`simulate` returns whole trajectories ([R, G+1, K]: for small runs and tests);
`simulate_metrics` computes the per-generation metrics inside the scan and keeps only those and
the final distribution, which is what the experiment needs at K = 1000, G = 1000.

Keys: replicate r uses fold_in(key(seed), r) and generation g folds in g on top (purposes within
a generation fold in 1: real data, 2: subsample), so a chain's numbers do not depend on how many
replicates run beside it or how they are batched. (The replace step's draws changed in issue 17:
the same keys now give other, equally exact, chains from generation 2 on.)
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse import knobs, regimes
from modelcollapse.knobs import knob
from modelcollapse.regimes import Regime, check_pool_points, split_sizes, subsample_counts
from modelcollapse.runtime import per_device, replicate_keys
from modelcollapse.theory import discrete as theory

__all__ = ["DiscreteConfig", "DiscreteChains", "DiscreteMetrics", "zipf", "rare_mask", "uniform_index",
           "exact_indices", "draw_symbols", "count_symbols", "integer_weights", "simulate", "simulate_metrics",
           "replicate_keys", "check_pool", "check_alphabet",
           "summarize", "summarize_ranks", "summarize_absorption", "verify_regimes", "acceptance_weights",
           "check_verify_size", "VerifyChains", "simulate_verify", "summarize_verify"]

WEIGHT_BITS = 30  # q is sampled as integer weights summing to 2^30 (see the module docstring)
RARE_FRACTION = 0.5  # "rare" symbols: the half of the alphabet with the smallest q


def zipf(num_symbols: int, exponent: float) -> np.ndarray:
    """q_k proportional to k^-exponent for k = 1..K, float64 [K] (exponent 0: uniform)."""
    k = np.arange(1, num_symbols + 1, dtype=np.float64)
    q = k ** -float(exponent)
    return q / q.sum()


rare_mask = theory.rare_mask




def _int_arg(name: str, value, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_run(probs, sample_size, generations, replicates, regime) -> np.ndarray:
    """Validate a run before any work; returns q as float64 [K]. ValueError names the argument."""
    q = theory.check_probs(probs)
    positive = q[q > 0]
    if positive.min() < 2.0 ** -WEIGHT_BITS:
        raise ValueError(f"probs entries must be 0 or at least 2^-{WEIGHT_BITS} (they are sampled as "
                         f"integer weights), got {positive.min():.3g}")
    m = _int_arg("sample_size", sample_size, 1)
    g = _int_arg("generations", generations, 1)
    _int_arg("replicates", replicates, 1)
    if not isinstance(regime, Regime):
        raise ValueError(f"regime must be a modelcollapse.regimes.Regime, got {regime!r}")
    regimes.check(regime, CountOps.offers, family="the discrete chain (counts)")
    if "verified" in regimes.needs(regime) and m * 2**VERIFY_BITS >= 2**31:
        raise ValueError(f"sample_size must be below 2^{31 - VERIFY_BITS} for regime verify (its weights, counts x "
                         f"2^{VERIFY_BITS}, are int32), got {m}")
    check_pool(regime, sample_size=m, generations=g)
    return q


def check_pool(regime: Regime, *, sample_size: int, generations: int) -> None:
    """The pooling regimes' limit: the pool's int32 counts and positions (its total, the accumulate
    index's bound, uniform_subset's integer draws) must address M (G + 1) points. ValueError if not."""
    check_pool_points(regime, sample_size * (generations + 1), what="sample_size x (generations + 1)")


def check_alphabet(num_symbols: int, exponent: float) -> None:
    """The Zipf truth's rarest symbol must keep an integer weight (probability >= 2^-30); ValueError if not."""
    q_min = zipf(num_symbols, exponent)[-1]
    if q_min < 2.0 ** -WEIGHT_BITS:
        raise ValueError(f"num_symbols = {num_symbols} with exponent = {exponent} gives the rarest symbol "
                         f"probability {q_min:.3g} < 2^-{WEIGHT_BITS} (the sampler's resolution); use fewer "
                         f"symbols or a smaller exponent")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiscreteConfig:
    """One discrete chain setting (the `discrete:` config block expands to one per M)."""

    INDEX0: ClassVar[str] = "truth"  # what index 0 of the results is (regimes.INDEX0)

    sample_size: int = knob(block=False, help="M, the symbols drawn per generation (and the size of every "
                            "training set but accumulate's); the block runs one job per entry of sample_sizes.",
                            type="integer", minimum=1, maximum=10000000)
    generations: int = knob(help="Refits after generation 0 (the truth q).", type="integer", minimum=1,
                            maximum=1000000)
    replicates: int = knob(help="Independent chains per M, run in parallel with vmap.", type="integer", minimum=2,
                           maximum=10000000)
    num_symbols: int = knob(1000, help="K, the number of symbols of the truth q (q_k proportional to k^-exponent, "
                            "k = 1..K).", type="integer", minimum=2, maximum=1000000)
    exponent: float = knob(1.1, help="Zipf exponent of q; 0 is uniform, larger puts more mass on the first "
                           "symbols.", type="number", minimum=0, maximum=10)
    regime: Regime = Regime()  # how each generation's training set is formed (the block's regime)

    def __post_init__(self):
        knobs.check(self)
        check_alphabet(self.num_symbols, self.exponent)
        _check_run(self.probs, self.sample_size, self.generations, self.replicates, self.regime)

    @property
    def probs(self) -> np.ndarray:
        """The truth q, float64 [K]."""
        return zipf(self.num_symbols, self.exponent)


# The jobs of the workflow's `discrete` config block: the main chains (one per M), the absorption run
# and the verification run (one job: the neutral chain and one chain family per verifier width).
PARTS = ("main", "absorption", "verify")


def verify_regimes(block) -> dict[str, Regime]:
    """The chains of the block's `verify` sub-block by label: 'replace' (no verifier, the neutral
    reference) first, then `verify` with centre b, no real data and each width in `taus`."""
    sub = block["verify"]
    out = {"replace": Regime()}
    for tau in sub["taus"]:
        regime = Regime.from_config({"name": "verify", "b": float(sub["b"]), "tau": float(tau), "real_fraction": 0.0})
        out[regime.label] = regime
    return out


def config_from_block(block, *, part: str = "main", sample_size: int | None = None,
                      label: str | None = None) -> DiscreteConfig:
    """The DiscreteConfig of one job of the workflow's `discrete` config block: `part` 'main' (M =
    `sample_size`, the block's regime), 'absorption' (the absorption sub-block, regime replace) or
    'verify' (the verify sub-block's chain `label`, a key of `verify_regimes`); ValueError names the
    bad setting."""
    if part == "main":
        return knobs.from_block(DiscreteConfig, block, sample_size=sample_size,
                                regime=Regime.from_config(block["regime"]))
    if part in ("absorption", "verify"):
        sub = block[part]
        regime = Regime()
        if part == "verify":
            chains = verify_regimes(block)
            if label not in chains:
                raise ValueError(f"label {label!r} is not a chain of discrete.verify (labels: {', '.join(chains)})")
            regime = chains[label]
        return DiscreteConfig(sample_size=sub["sample_size"], generations=sub["generations"],
                              replicates=sub["replicates"], num_symbols=sub["num_symbols"],
                              exponent=float(block["exponent"]), regime=regime)
    raise ValueError(f"part must be one of {list(PARTS)}, got {part!r}")


class DiscreteChains(NamedTuple):
    probs: np.ndarray  # float32 [R, G+1, K]: p_n; index 0 is q (the truth) for every replicate
    counts: np.ndarray  # int32 [R, G, K]: counts[:, n-1] is generation n's training set; p_n = counts / sum


class DiscreteMetrics(NamedTuple):
    survivors: np.ndarray  # int32 [R, G+1]: symbols with p_n(k) > 0
    rare_mass: np.ndarray  # float32 [R, G+1]: sum of q_k over the rare half with p_n(k) > 0
    surviving_mass: np.ndarray  # float32 [R, G+1]: sum of q_k over all symbols with p_n(k) > 0
    homozygosity: np.ndarray  # float32 [R, G+1]: sum_k p_n(k)^2
    first_zero: np.ndarray  # int32 [R, K]: first generation n with p_n(k) = 0; G+1 if never
    final: np.ndarray  # float32 [R, K]: p_G


# -- exact multinomial draws from integer counts


def _mulhi(a: jax.Array, b: jax.Array) -> jax.Array:
    """High 32 bits of the 64-bit product of uint32 a and b, from 16-bit limbs (no uint64 without x64)."""
    a_lo, a_hi, b_lo, b_hi = a & 0xFFFF, a >> 16, b & 0xFFFF, b >> 16
    hl, lh = a_hi * b_lo, a_lo * b_hi
    cross = ((a_lo * b_lo) >> 16) + (hl & 0xFFFF) + (lh & 0xFFFF)
    return a_hi * b_hi + (hl >> 16) + (lh >> 16) + (cross >> 16)


def uniform_index(key: jax.Array, total: jax.Array | int, n: int) -> jax.Array:
    """n uniform integers in [0, total), total < 2^31; int32 [n].

    floor(X total / 2^64) for a uniform 64-bit X = (hi, lo): each value has floor or ceil of
    2^64 / total preimages, a relative bias below total / 2^64 (jax.random.randint's modulo
    reduction costs twice as much here and is biased by up to total / 2^32 for total > 2^16).
    """
    t = jnp.asarray(total).astype(jnp.uint32)
    with jax.threefry_partitionable(False):  # classic threefry: half the hashing (see gaussian.py)
        bits = jax.random.bits(key, (2, n), jnp.uint32)
    hi, lo = bits[0], bits[1]
    low = hi * t  # low 32 bits of hi * t (wraps)
    carry = (low + _mulhi(lo, t)) < low
    return (_mulhi(hi, t) + carry.astype(jnp.uint32)).astype(jnp.int32)


def draw_symbols(key: jax.Array, counts: jax.Array, n: int, *, total: int | None = None) -> jax.Array:
    """n draws with replacement from the multiset with `counts` [K] int32; symbols int32 [n].

    total: the static sum of `counts` when it is known (indexes an owner table, O(1) per draw);
    None: a traced sum (binary search of the cumulative counts, O(log K) per draw).
    """
    if total is not None:
        owner = jnp.repeat(jnp.arange(counts.shape[0], dtype=jnp.int32), counts, total_repeat_length=total)
        return owner[uniform_index(key, total, n)]
    cum = jnp.cumsum(counts)
    return jnp.searchsorted(cum, uniform_index(key, cum[-1], n), side="right", method="scan").astype(jnp.int32)


def count_symbols(symbols: jax.Array, num_symbols: int) -> jax.Array:
    """Counts of each symbol, int32 [K]."""
    return jnp.bincount(symbols, length=num_symbols).astype(jnp.int32)


def _count_rows(symbols: jax.Array, num_symbols: int) -> jax.Array:
    """Counts of each row's symbols [b, n] -> int32 [b, K], as one bincount over b K bins (row i's
    symbols offset by i K): half the time of b vmapped bincounts at K = 1000, M = 10,000."""
    b = symbols.shape[0]
    if b * num_symbols >= 2**31:
        return jax.vmap(partial(count_symbols, num_symbols=num_symbols))(symbols)
    flat = (symbols + jnp.arange(b, dtype=symbols.dtype)[:, None] * num_symbols).ravel()
    return count_symbols(flat, b * num_symbols).reshape(b, num_symbols)


def _words(keys: jax.Array, n: int) -> jax.Array:
    """n uniform 32-bit words per key; [b] keys -> uint32 [b, n]."""
    with jax.threefry_partitionable(False):  # classic threefry: half the hashing (see gaussian.py)
        return jax.vmap(lambda k: jax.random.bits(k, (n,), jnp.uint32))(keys)


def exact_indices(keys: jax.Array, m: int) -> jax.Array:
    """m uniform integers in [0, m) per key, exactly; [b] keys -> int32 [b, m].

    m < 2^16: Lemire's multiply-and-reject (ACM TOMACS 29 (2019) 3), one 32-bit word X per index:
    X m = hi 2^32 + lo, and hi is exactly uniform once the lo < 2^32 mod m (probability < m / 2^32)
    are redrawn. Each pass of the redraw loop gives the first rejected word of every row a fresh
    word (key fold_in(key, attempt)), until no row has one: rejections are rare per row (1.7% of
    rows at m = 10,000) but were common per block when blocks held 50 rows (0.6 a block; 10 rows
    now: 0.17), so a pass costs one scan of the block, not a redraw of it (which took 14 of the 30
    microseconds per row at m = 10,000). A key's indices do not depend on the other keys. Larger
    m: `uniform_index` (64 bits an index).
    """
    if m >= 2**16:
        return jax.vmap(uniform_index, in_axes=(0, None, None))(keys, m, m)
    mm, reject_below = jnp.uint32(m), jnp.uint32(2**32 % m)
    rows = jnp.arange(keys.shape[0])

    def redraw(state):
        x, attempt = state
        rejected = x * mm < reject_below
        first = jnp.argmax(rejected, axis=1)  # [b]: the row's first rejected word (0 if none)
        fresh = _words(jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, attempt), 1)[:, 0]
        return x.at[rows, first].set(jnp.where(rejected[rows, first], fresh, x[rows, first])), attempt + 1

    x, _ = jax.lax.while_loop(lambda state: jnp.any(state[0] * mm < reject_below), redraw,
                              (_words(keys, m), jnp.int32(1)))
    # hi = floor(X m / 2^32) from 16-bit limbs (exact for m < 2^16; no uint64 without x64)
    return (((x >> 16) * mm + (((x & 0xFFFF) * mm) >> 16)) >> 16).astype(jnp.int32)


def integer_weights(probs) -> np.ndarray:
    """round(q 2^30) by largest remainders, so the total is exactly 2^30; int32 [K].

    Every positive q_k >= 2^-30 (checked by simulate) keeps a weight >= 1, so no symbol is lost to rounding.
    """
    q = np.asarray(probs, np.float64)
    scaled = q * 2.0**WEIGHT_BITS
    w = np.floor(scaled).astype(np.int64)
    short = 2**WEIGHT_BITS - int(w.sum())
    w[np.argsort(w - scaled, kind="stable")[:short]] += 1  # largest fractional parts first
    return w.astype(np.int32)


# -- the chain


def _original_symbols(key, weights, m: int) -> jax.Array:
    """The original data set: generation 0's M draws from q (searching q's 2^30 integer weights); [M]."""
    return draw_symbols(jax.random.fold_in(key, 0), weights, m)


def _fit(counts):
    """p = counts / their sum (the maximum-likelihood fit), float32 [..., K]."""
    return counts.astype(jnp.float32) / jnp.sum(counts, axis=-1, keepdims=True).astype(jnp.float32)


def _metrics(counts, first_zero, n, *, q32, rare_q32, generations: int):
    """One chain's metrics of generation n (training counts [K]) and its updated first_zero [K]."""
    alive = counts > 0
    p = _fit(counts)
    first_zero = jnp.where((first_zero > generations) & ~alive, n, first_zero)
    on = alive.astype(jnp.float32)
    row = (jnp.sum(alive, dtype=jnp.int32), jnp.dot(on, rare_q32), jnp.dot(on, q32), jnp.sum(p * p))
    return row, first_zero



class _Symbols(NamedTuple):
    """A generation's i.i.d. draws as symbols [n] in draw order (their first k are k draws)."""

    symbols: jax.Array


VERIFY_BITS = 12  # the verifier's acceptance probabilities are integers / 2^12 (see verifier_weights)


def verifier_weights(num_symbols: int, b: float, tau: float) -> np.ndarray:
    """The discrete verifier of `verify`: symbol k (0 = the most frequent in q) is accepted with
    probability w_k = exp(-(k - b)^2 / (2 tau^2)), rounded to a multiple of 2^-12 and at least 2^-12
    (so a verifier never rejects every symbol); int32 [K] numerators of w_k 2^12. Accepted draws of
    p_n are exactly draws of p_n w / (p_n . w): integer weights counts x w, sampled exactly."""
    k = np.arange(num_symbols, dtype=np.float64)
    w = np.exp(-((k - float(b)) ** 2) / (2.0 * float(tau) ** 2))
    return np.maximum(1, np.round(w * 2**VERIFY_BITS)).astype(np.int32)


class CountOps(regimes.SetOps):
    """The regimes' set operations on symbol counts [K] (the discrete family's sufficient statistic):
    a union adds counts, a uniform subset is multivariate hypergeometric (`regimes.subsample_counts`).
    A sum has no generation order, so regimes that read the pool's rows by generation do not run.
    Its verifier (`verify`) weighs symbols by rank (`verifier_weights`)."""

    offers = (regimes.DATA_NEEDS | {"verified"}) - {"pool_rows"}

    def __init__(self, num_symbols: int):
        self.num_symbols = num_symbols

    def counts(self, data) -> jax.Array:
        return count_symbols(data.symbols, self.num_symbols) if isinstance(data, _Symbols) else data

    def subset(self, key, data, k):
        return subsample_counts(key, self.counts(data), k)

    def union(self, a, b):
        return self.counts(a) + self.counts(b)

    def head(self, data, k):
        return _Symbols(data.symbols[:k])

    def grow(self, pool, latest):
        return pool + self.counts(latest)


def _chain(key, weights, q32, rare_q32, *, m: int, generations: int, regime: Regime, trajectory: bool):
    """One chain of any regime (`_simulate` runs replace, and mix without real data, as `_replace_chunk`).

    weights: integer q [K]; q32, rare_q32: q and q on the rare half, float32 [K].

    trajectory: return the training counts [G, K]; else (survivors, rare_mass, surviving_mass,
    homozygosity) each [G] for generations 1..G, first_zero [K] and the final p [K].
    """
    ops = CountOps(weights.shape[0])
    pooled = regimes.uses_pool(regime)
    accept = None
    if "verified" in regimes.needs(regime):
        params = dict(regimes.spec(regime)[1])
        accept = jnp.asarray(verifier_weights(ops.num_symbols, params["b"], params["tau"]))
    original = count_symbols(_original_symbols(key, weights, m), ops.num_symbols)
    metrics = partial(_metrics, q32=q32, rare_q32=rare_q32, generations=generations)

    def step(carry, g):
        # carry: the training counts of generation g (its fit is counts / sum), and the pool if the regime keeps one.
        carry = dict(carry)
        kg = jax.random.fold_in(key, g)
        if regime.name == "accumulate":  # the pool's size grows: binary search of its cumulative counts
            latest = _Symbols(draw_symbols(kg, carry["train"], m))
        else:
            latest = _Symbols(draw_symbols(kg, carry["train"], m, total=m))
        if pooled:
            carry["pool"] = ops.grow(carry["pool"], latest)
        verified = None
        if accept is not None:  # M draws of model g that the verifier accepted: counts x w, exactly
            verified = _Symbols(draw_symbols(jax.random.fold_in(kg, 3), carry["train"] * accept, m))
        inputs = regimes.RegimeInputs(ops, jax.random.fold_in(kg, 1), jax.random.fold_in(kg, 2), original,
                                      carry.get("pool"), latest, m, g,
                                      lambda k, n: _Symbols(draw_symbols(k, weights, n)), verified)
        train = carry["train"] = ops.counts(regimes.build(regime, inputs))
        if trajectory:
            return carry, train
        row, carry["first_zero"] = metrics(train, carry["first_zero"], g + 1)
        return carry, row

    # Generation 1 trains on the original data in every regime (accumulate_subsample's M-subset of
    # an M-point pool is the pool itself).
    start = {"train": original}
    if pooled:
        start["pool"] = ops.start_pool(original, 0)
    if trajectory:
        _, rest = jax.lax.scan(step, start, jnp.arange(1, generations))
        return jnp.concatenate([original[None], rest], axis=0)
    first_zero0 = jnp.where(weights > 0, generations + 1, 0).astype(jnp.int32)
    row1, start["first_zero"] = metrics(original, first_zero0, 1)
    carry, rows = jax.lax.scan(step, start, jnp.arange(1, generations))
    rows = tuple(jnp.concatenate([a[None], b]) for a, b in zip(row1, rows))
    return rows, carry["first_zero"], _fit(carry["train"])


def _replace_chunk(keys, weights, q32, rare_q32, *, m: int, generations: int, trajectory: bool):
    """b replace-regime chains at once (keys [b]); returns what `_chain` returns, each with a leading [b].

    The state is the training set itself as M symbols [b, M], not its counts: the next training
    set is M uniform draws from it, symbols[exact_indices], so no owner table is rebuilt from
    counts, and the indices take one 32-bit word each. Counts [b, K] are formed only for the
    metrics. The chains run as one block (not vmap) so that exact_indices' rare redraw is one
    real branch for the block.
    """
    num_symbols = weights.shape[0]
    count = partial(_count_rows, num_symbols=num_symbols)
    metrics = jax.vmap(partial(_metrics, q32=q32, rare_q32=rare_q32, generations=generations),
                       in_axes=(0, 0, None))
    symbols = jax.vmap(_original_symbols, in_axes=(0, None, None))(keys, weights, m)  # [b, M]
    original = count(symbols)

    def step(carry, g):
        idx = exact_indices(jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, g), m)
        carry = dict(carry, symbols=jnp.take_along_axis(carry["symbols"], idx, axis=1))
        train = count(carry["symbols"])
        if trajectory:
            return carry, train
        row, carry["first_zero"] = metrics(train, carry["first_zero"], g + 1)
        carry["train"] = train
        return carry, row

    gens = jnp.arange(1, generations)
    if trajectory:
        _, rest = jax.lax.scan(step, {"symbols": symbols}, gens)  # [G-1, b, K]
        return jnp.concatenate([original[:, None], jnp.moveaxis(rest, 0, 1)], axis=1)
    first_zero0 = jnp.broadcast_to(jnp.where(weights > 0, generations + 1, 0).astype(jnp.int32), original.shape)
    row1, first_zero = metrics(original, first_zero0, 1)
    carry, rows = jax.lax.scan(step, {"symbols": symbols, "first_zero": first_zero, "train": original}, gens)
    rows = tuple(jnp.concatenate([a[:, None], b.T], axis=1) for a, b in zip(row1, rows))
    return rows, carry["first_zero"], _fit(carry["train"])


# Draws per block of `_replace_chunk`, so that a block's [b, M] symbols and words stay in cache.
# Measured at K = 1000, R = 200 on the 2-core CPU (microseconds per chain and generation): at
# M = 10,000, b = 10 / 50 took 36 / 36 on one device and 17 / 20 on two (the cores share the L3);
# at M = 1000, b = 50, 100 and 200 all took 5.1 / 2.2 (b = 25: 6.5 / 2.4).
CHUNK_DRAWS = 100_000


@partial(jax.jit, static_argnames=("m", "generations", "regime", "trajectory"))
def _simulate(keys, weights, q32, rare_q32, *, m, generations, regime, trajectory):
    run = partial(_simulate_here, m=m, generations=generations, regime=regime, trajectory=trajectory)
    return per_device(run)(keys, weights, q32, rare_q32)


def _simulate_here(keys, weights, q32, rare_q32, *, m, generations, regime, trajectory):
    """The chains of `keys` on one device (`_simulate` runs one of these per device)."""
    if regime.name == "replace" or (regime.name == "mix" and split_sizes(regime, m)[0] == 0):
        r = keys.shape[0]
        blocks = -(-r // max(1, CHUNK_DRAWS // m))
        b = -(-r // blocks)  # the blocks as even as they can be
        pad = -r % b  # repeated chains fill the last block; each chain depends on its key alone
        keys = jnp.concatenate([keys, keys[:pad]]) if pad else keys
        n = keys.shape[0] // b
        chunk = partial(_replace_chunk, weights=weights, q32=q32, rare_q32=rare_q32, m=m,
                        generations=generations, trajectory=trajectory)
        # Block j runs chains j, n + j, 2n + j, ...: measured faster on one device than contiguous
        # blocks (M = 10,000, R = 200: 39-42 against 44-53 microseconds per chain and generation,
        # three interleaved pairs), though the blocks do the same work; the chains are the same.
        out = jax.lax.map(chunk, keys.reshape(b, n).T)
        return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1).reshape(-1, *a.shape[2:])[:r], out)
    chain = partial(_chain, m=m, generations=generations, regime=regime, trajectory=trajectory)
    return jax.vmap(chain, in_axes=(0, None, None, None))(keys, weights, q32, rare_q32)


def _inputs(probs, fraction: float = RARE_FRACTION):
    q = theory.check_probs(probs)
    return (jnp.asarray(integer_weights(q)), jnp.asarray(q, jnp.float32),
            jnp.asarray(q * rare_mask(q, fraction), jnp.float32))


def simulate(seed: int, *, probs, sample_size: int, generations: int, replicates: int,
             regime: Regime | None = None) -> DiscreteChains:
    """Run `replicates` resampling chains from q = `probs` [K] and keep every generation.

    Returns DiscreteChains(probs float32 [R, G+1, K] with index 0 = q, counts int32 [R, G, K] with
    counts[:, n-1] = generation n's training set). Memory is 8 R G K bytes: for small runs; use
    `simulate_metrics` at scale. Same seed, same chains as `simulate_metrics`.
    """
    regime = regime or Regime()
    q = _check_run(probs, sample_size, generations, replicates, regime)
    counts = _simulate(replicate_keys(seed, replicates), *_inputs(q), m=int(sample_size),
                       generations=int(generations), regime=regime, trajectory=True)
    fitted = counts.astype(jnp.float32) / jnp.sum(counts, axis=-1, keepdims=True).astype(jnp.float32)
    first = jnp.broadcast_to(jnp.asarray(q, jnp.float32), (replicates, 1, q.size))
    return DiscreteChains(np.asarray(jnp.concatenate([first, fitted], axis=1)), np.asarray(counts))


def simulate_metrics(seed: int, *, probs, sample_size: int, generations: int, replicates: int,
                     regime: Regime | None = None, rare_fraction: float = RARE_FRACTION) -> DiscreteMetrics:
    """Run `replicates` chains keeping per-generation metrics only (see DiscreteMetrics; [R, G+1] arrays
    have generation 0 = q: K' symbols with q_k > 0, the full rare mass, mass 1, sum q^2)."""
    regime = regime or Regime()
    q = _check_run(probs, sample_size, generations, replicates, regime)
    weights, q32, rare_q32 = _inputs(q, rare_fraction)
    (surv, rare, mass, hom), first_zero, final = _simulate(
        replicate_keys(seed, replicates), weights, q32, rare_q32, m=int(sample_size),
        generations=int(generations), regime=regime, trajectory=False)
    alive0 = q > 0
    start = (np.sum(alive0), np.float32(rare_q32.sum()), np.float32(q32[alive0].sum()), np.float32(np.sum(q32 ** 2)))
    rows = [np.concatenate([np.full((replicates, 1), s, np.asarray(a).dtype), np.asarray(a)], axis=1)
            for s, a in zip(start, (surv, rare, mass, hom))]
    return DiscreteMetrics(*rows, np.asarray(first_zero), np.asarray(final))


# -- summaries across replicates (numpy)


def summarize(metrics: dict[str, np.ndarray], *, probs, sample_size: int, regime: Regime | None = None,
              rare_fraction: float = RARE_FRACTION) -> dict[str, np.ndarray]:
    """Per-generation statistics across replicates beside the exact theory; every array [G+1].

    metrics: survivors, rare_mass, surviving_mass, homozygosity [R, G+1] (a DiscreteMetrics as a
    dict). Masses are reported as shares of their generation-0 value (`rare_share`: of the rare
    half's original mass; `common_share`: of the other half's). `*_se` are Monte-Carlo standard
    errors of the means; theory columns are the replace-regime expectations and NaN otherwise (and
    for M > theory.MAX_EXACT_SAMPLE_SIZE).
    """
    from modelcollapse import metrics as mc

    q = theory.check_probs(probs)
    rare = rare_mask(q, rare_fraction)
    rare0, common0 = q[rare].sum(), q[~rare].sum()
    survivors = np.asarray(metrics["survivors"], np.float64)
    g = survivors.shape[1] - 1
    series = {"survivors": survivors,
              "rare_share": np.asarray(metrics["rare_mass"], np.float64) / rare0,
              "common_share": (np.asarray(metrics["surviving_mass"], np.float64)
                               - np.asarray(metrics["rare_mass"], np.float64)) / common0,
              "heterozygosity": 1.0 - np.asarray(metrics["homozygosity"], np.float64)}
    if (regime or Regime()).name == "replace":
        th = theory.survival_theory(q, sample_size=sample_size, generations=g, fraction=rare_fraction)
        theory_of = {"survivors": th["survivors"], "rare_share": th["rare_mass"] / rare0,
                     "common_share": (th["surviving_mass"] - th["rare_mass"]) / common0,
                     "heterozygosity": 1.0 - th["homozygosity"]}
    else:
        theory_of = {name: np.full(g + 1, np.nan) for name in series}
    out = {"generation": np.arange(g + 1)}
    for name, values in series.items():
        q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
        out |= {f"{name}_q25": q25, f"{name}_q50": q50, f"{name}_q75": q75}
        out[name], out[f"{name}_se"] = mc.mean_and_se(values)
        out[f"{name}_theory"] = theory_of[name]
    return out


def summarize_ranks(first_zero: np.ndarray, *, probs, sample_size: int, at, regime: Regime | None = None
                    ) -> dict[str, np.ndarray]:
    """P(symbol k was lost by generation n) per symbol and generation n in `at`; arrays [len(at) K].

    first_zero [R, K]. Columns: generation, rank (1 = most probable), q, lost, lost_se (binomial), and
    lost_theory (replace regime; NaN otherwise), in generation-major order.
    """
    q = theory.check_probs(probs)
    at = np.asarray(at, np.int64)
    first_zero = np.asarray(first_zero)
    lost = (first_zero[:, None, :] <= at[None, :, None]).mean(axis=0)  # [len(at), K]
    r = first_zero.shape[0]
    if (regime or Regime()).name == "replace":
        g = int(at.max())
        lost_theory = 1.0 - theory.survival_theory(q, sample_size=sample_size, generations=g, at=at)["alive"]
    else:
        lost_theory = np.full(lost.shape, np.nan)
    order = np.argsort(-q, kind="stable")
    rank = np.empty(q.size, np.int64)
    rank[order] = np.arange(1, q.size + 1)
    return {"generation": np.repeat(at, q.size), "rank": np.tile(rank, at.size), "q": np.tile(q, at.size),
            "lost": lost.ravel(), "lost_se": np.sqrt(lost * (1 - lost) / r).ravel(),
            "lost_theory": lost_theory.ravel()}


def summarize_absorption(final: np.ndarray, *, probs, sample_size: int, generations: int) -> dict[str, np.ndarray]:
    """Which symbol each chain fixed on, per symbol; arrays [K].

    final [R, K]: p_G. `wins`: share of chains fixed on symbol k at generation G (binomial `wins_se`);
    `wins_theory`: P(k fixed by G), exact; `wins_limit`: q_k, its limit as G grows. `fixed`: share of
    chains absorbed (one symbol left), with `fixed_theory` = sum_k P(k fixed by G); repeated per row.
    """
    q = theory.check_probs(probs)
    final = np.asarray(final, np.float64)
    r = final.shape[0]
    won = final >= 1.0 - 1e-6  # [R, K]: the chain is fixed on k
    wins = won.mean(axis=0)
    fixed_theory = theory.fixation_probabilities(q, sample_size=sample_size, generations=generations,
                                                 at=[generations])[0]
    return {"symbol": np.arange(1, q.size + 1), "q": q, "wins": wins, "wins_se": np.sqrt(wins * (1 - wins) / r),
            "wins_theory": fixed_theory, "wins_limit": theory.win_probabilities(q),
            "fixed": np.full(q.size, won.any(axis=1).mean()), "fixed_theory": np.full(q.size, fixed_theory.sum())}


# -- the verification run (issue 21): the chain under `verify` beside the neutral chain, against the
# exact law of Wright-Fisher with selection (theory.selection)


def acceptance_weights(regime: Regime, num_symbols: int) -> np.ndarray:
    """The verifier's integer acceptance weights [K] (out of 2^VERIFY_BITS) that `regime` samples
    with: `verifier_weights` for verify, all 2^VERIFY_BITS (accept everything) for replace."""
    if regime.name == "replace":
        return np.full(num_symbols, 2**VERIFY_BITS, np.int32)
    params = dict(regimes.spec(regime)[1])
    if regime.name != "verify" or params["real_fraction"] != 0:
        raise ValueError(f"the verification run takes replace or verify without real data, got {regime.label!r}")
    return verifier_weights(num_symbols, params["b"], params["tau"])


def check_verify_size(num_symbols: int, sample_size: int) -> None:
    """The verification run reports its exact law, whose dense chain has C(M + K - 1, K - 1) states
    (theory.selection.MAX_STATES at most); ValueError if K and M give more."""
    from modelcollapse.theory import selection

    states = selection.num_states(num_symbols, sample_size)
    if states > selection.MAX_STATES:
        raise ValueError(f"num_symbols = {num_symbols} with sample_size = {sample_size} gives {states} states of the "
                         f"exact law (C(M + K - 1, K - 1)), more than its {selection.MAX_STATES}; lower either")


class VerifyChains(NamedTuple):
    first_zero: np.ndarray  # int32 [R, K]: first generation n with p_n(k) = 0; G+1 if never (0 if q_k = 0)
    top: np.ndarray  # int16 [R, G]: the count of symbol 0 (rank 1, the most probable in q) in generations 1..G
    final: np.ndarray  # int32 [R, K]: generation G's counts


def simulate_verify(seed: int, *, probs, sample_size: int, generations: int, replicates: int,
                    regime: Regime) -> VerifyChains:
    """`simulate`'s chains reduced to what the verification run reports (see VerifyChains); for
    small K and M (the whole trajectory [R, G, K] is formed). regime: replace or verify without
    real data, where a lost symbol never returns, so first_zero gives every generation's survivors."""
    acceptance_weights(regime, np.asarray(probs).size)  # refuses other regimes before any work
    if sample_size >= 2**15:
        raise ValueError(f"sample_size must be below 2^15 for the verification run (int16 counts), got {sample_size}")
    counts = simulate(seed, probs=probs, sample_size=sample_size, generations=generations, replicates=replicates,
                      regime=regime).counts  # [R, G, K]
    lost = counts == 0
    first_zero = np.where(lost.any(axis=1), lost.argmax(axis=1) + 1, generations + 1)
    first_zero = np.where(np.asarray(probs) > 0, first_zero, 0).astype(np.int32)
    return VerifyChains(first_zero, counts[:, :, 0].astype(np.int16), counts[:, -1].astype(np.int32))


def summarize_verify(first_zero: np.ndarray, top: np.ndarray, final: np.ndarray, *, probs, sample_size: int,
                     weights) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One verification chain family (a VerifyChains' arrays) beside its exact law.

    Returns (by generation, arrays [G+1]; by symbol, arrays [K]). By generation: `fixed`, the share
    of chains with one symbol left; `survivors`, symbols left; `top_mass`, p_n of symbol 0 (the
    most probable in q); each with `_se` (standard error of the mean over chains), `_theory` (the
    exact expectation, theory.selection.chain_law; NaN past its MAX_STATES) and `_theory_se` (the
    standard error of a mean of R chains under the exact law: it does not shrink when a rare outcome
    happens not to occur among the chains, as `_se` does), and
    `top_mass_deterministic` (APPROXIMATE: the infinite-M recursion). By symbol (rank 1 = the most
    probable): q, the acceptance probability `w` (weights: `acceptance_weights`, integers out of
    2^VERIFY_BITS), `wins` (share of chains fixed on it at G, binomial
    `wins_se`), `wins_theory` (exact P(fixed on it by G)) and `wins_limit` (exact, as G grows).
    """
    from modelcollapse import metrics as mc
    from modelcollapse.theory import selection

    q = theory.check_probs(probs)
    first_zero, top, final = np.asarray(first_zero), np.asarray(top, np.float64), np.asarray(final)
    r, g = top.shape
    m = int(sample_size)
    w = np.asarray(weights, np.float64)
    n = np.arange(1, g + 1)
    survivors = (first_zero[:, None, :] > n[None, :, None]).sum(axis=2)  # [R, G]: generations 1..G
    top_mass = top / m  # [R, G]
    if selection.num_states(q.size, m) <= selection.MAX_STATES:
        law = selection.chain_law(q, w, sample_size=m, generations=g)
    else:
        law = {name: np.full(g + 1, np.nan) for name in ("fixed", "survivors", "survivors_sq")}
        law |= {name: np.full((g + 1, q.size), np.nan) for name in ("mass", "mass_sq", "wins")}
        law["wins_limit"] = np.full(q.size, np.nan)
    by_generation = {"generation": np.arange(g + 1)}
    alive0 = np.count_nonzero(q)  # generation 0 is q itself in every chain: its values are exact, s.e. 0
    for name, values, exact, square, at0 in (
            ("fixed", survivors == 1, law["fixed"], law["fixed"], float(alive0 == 1)),
            ("survivors", survivors, law["survivors"], law["survivors_sq"], float(alive0)),
            ("top_mass", top_mass, law["mass"][:, 0], law["mass_sq"][:, 0], q[0])):
        mean, se = mc.mean_and_se(values)
        by_generation[name], by_generation[f"{name}_se"] = np.r_[at0, mean], np.r_[0.0, se]
        by_generation[f"{name}_theory"] = exact
        by_generation[f"{name}_theory_se"] = np.sqrt(np.maximum(square - exact**2, 0.0) / r)
    by_generation["top_mass_deterministic"] = selection.deterministic(q, w, generations=g)[:, 0]
    wins = (np.asarray(final) == m).mean(axis=0)
    by_symbol = {"symbol": np.arange(1, q.size + 1), "q": q, "w": w / 2**VERIFY_BITS, "wins": wins,
                 "wins_se": np.sqrt(wins * (1 - wins) / r), "wins_theory": law["wins"][g],
                 "wins_theory_se": np.sqrt(law["wins"][g] * (1 - law["wins"][g]) / r),
                 "wins_limit": law["wins_limit"]}
    return by_generation, by_symbol
