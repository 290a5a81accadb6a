"""Discrete resampling chains: statistics against the exact theory (fixed seeds, tolerances of Z
Monte-Carlo s.e.), the theory against brute force and numpy sampling, regime invariants, shapes,
determinism, batching invariance, compilation, argument checks, and the CLI steps."""

import argparse
import itertools

import jax
import numpy as np
import pytest
from scipy import stats

from conftest import chisquare_pvalue
from modelcollapse import discrete, metrics, regimes
from modelcollapse.regimes import Regime
from modelcollapse.theory import discrete as theory

R = 20_000  # replicates for the statistical checks
Z = 4.0  # tolerance in standard errors: a correct implementation fails one check in ~16,000
K, M, G = 50, 20, 30  # small enough for 20,000 chains in about a second
Q = discrete.zipf(K, 1.1)
GENS = [1, 3, 10, 30]


def zipf_numpy(k, s):
    """Independent of discrete.zipf: the normalised k^-s."""
    w = 1.0 / np.arange(1, k + 1) ** s
    return w / w.sum()


@pytest.fixture(scope="module")
def chains():
    return discrete.simulate_metrics(11, probs=Q, sample_size=M, generations=G, replicates=R)


def _close(values, expected):
    est, se = metrics.mean_and_se(np.asarray(values, np.float64))
    assert abs(est - expected) < Z * se, (est, expected, se)


# -- chains against the exact theory


@pytest.mark.parametrize("n", GENS)
def test_homozygosity_matches_closed_form(chains, n):
    q = zipf_numpy(K, 1.1)
    expected = 1.0 - (1.0 - 1.0 / M) ** n * (1.0 - np.sum(q * q))  # computed here, not by the library
    assert theory.expected_homozygosity(q, sample_size=M, generations=G)[n] == pytest.approx(expected, rel=1e-12)
    _close(chains.homozygosity[:, n], expected)


@pytest.mark.parametrize("n", GENS)
def test_surviving_symbols_and_masses_match_exact_theory(chains, n):
    th = theory.survival_theory(Q, sample_size=M, generations=G)
    _close(chains.survivors[:, n], th["survivors"][n])
    _close(chains.rare_mass[:, n], th["rare_mass"][n])
    _close(chains.surviving_mass[:, n], th["surviving_mass"][n])


def test_per_symbol_loss_matches_theory(chains):
    at = np.array([1, 10, 30])
    lost = (chains.first_zero[:, None, :] <= at[None, :, None]).mean(axis=0)
    expected = theory.loss_probabilities(Q, sample_size=M, generations=G, at=at)
    se = np.sqrt(expected * (1 - expected) / R)
    assert np.all(np.abs(lost - expected) <= Z * se + 1e-12)


def test_generation_zero_is_the_truth(chains):
    q32 = Q.astype(np.float32)
    assert np.all(chains.survivors[:, 0] == K)
    np.testing.assert_allclose(chains.homozygosity[:, 0], np.sum(q32**2), rtol=1e-6)
    np.testing.assert_allclose(chains.surviving_mass[:, 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(chains.rare_mass[:, 0], Q[K // 2:].sum(), rtol=1e-5)  # Zipf: the last half is rare


def test_absorption_in_symbol_k_has_probability_q_k():
    q = zipf_numpy(4, 1.1)
    g, r = 200, 10_000  # P(not absorbed by 200) ~ 1e-9 for M = 10 (checked below with the exact theory)
    final = discrete.simulate_metrics(5, probs=q, sample_size=10, generations=g, replicates=r).final
    fixed_theory = theory.fixation_probabilities(q, sample_size=10, generations=g, at=[g])[0]
    assert fixed_theory.sum() > 1 - 1e-8
    assert np.all(final.max(axis=1) == 1.0), "every chain has fixed on one symbol"
    wins = (final == 1.0).mean(axis=0)
    assert np.all(np.abs(wins - q) < Z * np.sqrt(q * (1 - q) / r)), (wins, q)
    np.testing.assert_allclose(theory.win_probabilities(q), q)


# -- the theory against independent computations


def _brute_force(q, m, generations):
    """The exact law of the K-symbol chain by enumerating count vectors: E[survivors], E[H], P(k lost),
    P(k fixed), E[rare mass] at n = 1..G. Independent of the one-symbol recursion."""
    k = len(q)
    states = np.array([c for c in itertools.product(range(m + 1), repeat=k) if sum(c) == m])
    law = stats.multinomial(m, q).pmf(states)  # generation 1: the original data
    step = np.array([stats.multinomial(m, s / m).pmf(states) if s.max() < m
                     else (states == s).all(axis=1).astype(float) for s in states])
    rare = q <= np.sort(q)[k // 2 - 1]
    out = []
    for _ in range(generations):
        alive = states > 0
        p = states / m
        out.append((law @ alive.sum(1), law @ (p**2).sum(1), law @ ~alive, law @ (states == m),
                    law @ (alive * (q * rare)).sum(1)))
        law = law @ step
    return [np.array(x) for x in zip(*out)]


@pytest.mark.parametrize("q,m", [(np.array([0.5, 0.3, 0.2]), 4), (zipf_numpy(4, 1.1), 3), (np.array([0.7, 0.3]), 6)])
def test_theory_matches_brute_force_enumeration(q, m):
    g = 12
    survivors, hom, lost, fixed, rare_mass = _brute_force(q, m, g)
    th = theory.survival_theory(q, sample_size=m, generations=g)
    np.testing.assert_allclose(th["survivors"][1:], survivors, rtol=1e-10)
    np.testing.assert_allclose(th["homozygosity"][1:], hom, rtol=1e-10)
    np.testing.assert_allclose(th["rare_mass"][1:], rare_mass, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(theory.loss_probabilities(q, sample_size=m, generations=g)[1:], lost, atol=1e-12)
    np.testing.assert_allclose(theory.fixation_probabilities(q, sample_size=m, generations=g)[1:], fixed,
                               atol=1e-12)


def test_theory_matches_numpy_multinomial_chains():
    # numpy's own multinomial sampler (conditional binomials), nothing from the library.
    q, m, g, r = zipf_numpy(30, 1.1), 15, 20, 10_000
    rng = np.random.default_rng(0)
    counts = rng.multinomial(m, q, size=r)
    survivors = [np.full(r, 30)]
    for _ in range(g):
        survivors.append((counts > 0).sum(1))
        counts = rng.multinomial(m, counts / m)
    survivors = np.array(survivors).T  # [r, g+1]
    expected = theory.expected_survivors(q, sample_size=m, generations=g)
    for n in (1, 5, 20):
        _close(survivors[:, n], expected[n])


def test_banded_transition_matrix_is_the_dense_binomial_matrix():
    m = 200
    dense = stats.binom.pmf(np.arange(m + 1)[None, :], m, (np.arange(m + 1) / m)[:, None])
    band = theory.transition_matrix(m).toarray()
    assert np.abs(band - dense).max() < 1e-19
    np.testing.assert_allclose(band.sum(axis=1), 1.0, atol=1e-14)


def test_ancestor_matrix_is_the_occupancy_law():
    # P(a balls fill a' of M boxes) = C(M, a') a'! S(a, a') / M^a in exact integers (scipy's Stirling
    # numbers); entries below 1e-30 are dropped, which moves others by less than that.
    from math import comb, factorial

    from scipy.special import stirling2

    m = 30
    exact = np.array([[comb(m, b) * factorial(b) * int(stirling2(a, b, exact=True)) / m**a for b in range(m + 1)]
                      for a in range(m + 1)])
    np.testing.assert_allclose(theory.ancestor_matrix(m).toarray(), exact, rtol=1e-14, atol=1e-29)


@pytest.mark.parametrize("q,m,g", [(zipf_numpy(40, 1.1), 500, 300), (np.full(4, 0.25), 60, 200)])
def test_dual_summaries_match_the_banded_loss_recursion(q, m, g):
    # survival_theory runs the ancestral (dual) route; loss_probabilities the forward recursion f = P f.
    at = [1, 2, 17, g]
    th = theory.survival_theory(q, sample_size=m, generations=g, at=at)
    lost = theory.loss_probabilities(q, sample_size=m, generations=g)  # [G+1, K]
    np.testing.assert_allclose(th["survivors"], (1 - lost).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(th["surviving_mass"], (1 - lost) @ q, rtol=1e-12)
    np.testing.assert_allclose(th["alive"], 1 - lost[at], rtol=1e-10, atol=1e-14)


def test_theory_past_the_exact_limit_is_nan_not_wrong():
    big = theory.MAX_EXACT_SAMPLE_SIZE + 1
    out = theory.expected_survivors(Q, sample_size=big, generations=3)
    assert out[0] == K and np.isnan(out[1:]).all()


def test_rare_mask_is_the_half_with_smallest_probability():
    mask = theory.rare_mask(zipf_numpy(7, 1.1))
    np.testing.assert_array_equal(mask, [False, False, False, False, True, True, True])
    assert theory.rare_mask(np.full(4, 0.25)).sum() == 2


# -- the sampler


def test_mulhi_and_uniform_index_are_exact():
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 2**32, 50_000, dtype=np.uint64) for _ in range(2))
    got = np.asarray(discrete._mulhi(jax.numpy.asarray(a.astype(np.uint32)), jax.numpy.asarray(b.astype(np.uint32))))
    np.testing.assert_array_equal(got.astype(np.uint64), (a * b) >> np.uint64(32))
    total, n = 7, 70_000
    idx = np.asarray(discrete.uniform_index(jax.random.key(0), total, n))
    assert idx.min() >= 0 and idx.max() < total
    counts = np.bincount(idx, minlength=total)
    assert np.all(np.abs(counts - n / total) < Z * np.sqrt(n * (1 / total) * (1 - 1 / total)))


def test_one_replace_generation_follows_the_multinomial_law():
    # The replace step: M exact uniform indices into the training set's M symbols. Every count vector
    # of the next generation against Multinomial(M, c / M) (pmf by scipy), chi-square with pooled cells.
    c, r = np.array([5, 4, 2, 1]), 40_000
    m = int(c.sum())
    symbols = np.repeat(np.arange(c.size), c)
    idx = np.asarray(discrete.exact_indices(discrete.replicate_keys(3, r), m))
    drawn = np.stack([np.bincount(row, minlength=c.size) for row in symbols[idx]])
    outcomes = np.array([v for v in itertools.product(range(m + 1), repeat=c.size) if sum(v) == m])
    code = {tuple(v): i for i, v in enumerate(outcomes)}
    observed = np.bincount([code[tuple(v)] for v in drawn], minlength=len(outcomes))
    expected = r * stats.multinomial(m, c / m).pmf(outcomes)
    assert chisquare_pvalue(observed, expected) > 1e-4


def test_exact_indices_redraw_rejected_words_and_stay_uniform():
    # m = 40,000: Lemire rejects a word with probability (2^32 mod m) / 2^32 = 1.7e-6, so 1.2e6
    # draws redraw a few; the redrawn positions change and everything stays uniform over [0, m).
    m, keys = 40_000, discrete.replicate_keys(5, 30)
    words = np.asarray(discrete._words(keys, m)).astype(np.uint64)
    rejected = (words * m) % 2**32 < 2**32 % m
    assert rejected.sum() >= 1
    idx = np.asarray(discrete.exact_indices(keys, m))
    np.testing.assert_array_equal(idx[~rejected], ((words * m) >> np.uint64(32))[~rejected])
    assert idx.min() >= 0 and idx.max() < m
    observed = np.bincount(idx.ravel() // 400, minlength=100)
    assert chisquare_pvalue(observed, np.full(100, idx.size / 100)) > 1e-4


def test_integer_weights_sum_to_two_to_the_thirty_and_keep_every_symbol():
    q = zipf_numpy(1000, 1.1)
    w = discrete.integer_weights(q)
    assert w.sum() == 2**30 and w.dtype == np.int32
    assert np.abs(w - q * 2.0**30).max() <= 1.0
    assert np.all(w[q > 0] >= 1)


# -- regimes


REGIMES = [Regime(), Regime(name="accumulate"), Regime(name="accumulate_subsample"),
           Regime(name="mix", real_fraction=0.25), Regime(name="mix", real_fraction=0.25, real_source="fresh")]


@pytest.fixture(scope="module")
def regime_runs():
    return {r.label: discrete.simulate(2, probs=Q, sample_size=M, generations=6, replicates=8, regime=r)
            for r in REGIMES}


@pytest.mark.parametrize("regime", REGIMES, ids=lambda r: r.label)
def test_training_set_sizes_follow_the_regime(regime_runs, regime):
    counts = regime_runs[regime.label].counts
    sizes = [regimes.training_size(regime, sample_size=M, n_original=M, generation=n) for n in range(1, 7)]
    np.testing.assert_array_equal(counts.sum(-1), np.broadcast_to(sizes, counts.shape[:2]))
    assert np.all(counts >= 0)
    fitted = regime_runs[regime.label].probs[:, 1:]
    np.testing.assert_allclose(fitted, counts / counts.sum(-1, keepdims=True), rtol=1e-6)


def test_every_regime_starts_from_the_same_original_data(regime_runs):
    first = [run.counts[:, 0] for run in regime_runs.values()]
    for other in first[1:]:
        np.testing.assert_array_equal(first[0], other)


def test_accumulate_pool_holds_the_real_data_and_grows_by_m(regime_runs):
    counts = regime_runs["accumulate"].counts
    assert np.all(counts >= counts[:, :1])  # the original data stays in the pool
    increments = np.diff(counts, axis=1)
    assert np.all(increments >= 0) and np.all(increments.sum(-1) == M)


def test_mix_with_all_real_original_data_never_drifts():
    run = discrete.simulate(3, probs=Q, sample_size=M, generations=8, replicates=16,
                            regime=Regime(name="mix", real_fraction=1.0))
    np.testing.assert_array_equal(run.counts, np.broadcast_to(run.counts[:, :1], run.counts.shape))


def test_mix_with_all_fresh_data_stays_at_generation_one():
    q = Q
    run = discrete.simulate_metrics(4, probs=q, sample_size=M, generations=G, replicates=R,
                                    regime=Regime(name="mix", real_fraction=1.0, real_source="fresh"))
    th = theory.survival_theory(q, sample_size=M, generations=1)
    _close(run.homozygosity[:, G], th["homozygosity"][1])
    _close(run.survivors[:, G], th["survivors"][1])


def test_mix_with_no_real_data_is_replace():
    kwargs = dict(probs=Q, sample_size=M, generations=6, replicates=8)
    a = discrete.simulate(2, **kwargs)
    b = discrete.simulate(2, regime=Regime(name="mix", real_fraction=0.0), **kwargs)
    np.testing.assert_array_equal(a.counts, b.counts)


# -- exact replay: the regimes written out plainly in numpy, on the chain's own random draws


_uniform_index = jax.jit(discrete.uniform_index, static_argnums=2)
_subset = jax.jit(regimes.uniform_subset, static_argnums=2)
_exact_indices = jax.jit(discrete.exact_indices, static_argnums=1)


def _replay(seed, r, *, probs, m, generations, regime):
    """Chain r's training counts [G, K]: the regime in numpy; only the uniform integers come from the
    library's samplers, called with the chain's keys (a training set is a multiset of symbols, and a
    draw from it is a uniform position in its sorted list)."""
    key = jax.random.fold_in(jax.random.key(seed), r)
    weights = discrete.integer_weights(probs)
    k = len(probs)

    def draw(key, counts, n):  # n positions in the sorted multiset `counts`, as symbols
        return np.repeat(np.arange(k), counts)[np.asarray(_uniform_index(key, int(counts.sum()), n))]

    def subset(key, counts, n):  # a uniform n-subset, without replacement, of the multiset `counts`
        return np.repeat(np.arange(k), counts)[np.asarray(_subset(key, int(counts.sum()), n))]

    count = lambda symbols: np.bincount(symbols, minlength=k)  # noqa: E731
    symbols = np.searchsorted(np.cumsum(weights), np.asarray(_uniform_index(jax.random.fold_in(key, 0), 2**30, m)),
                              side="right")
    original = count(symbols)
    n_real, n_syn = regimes.split_sizes(regime, m)
    train, pool, out = original, original, [original]
    for g in range(1, generations):
        kg = jax.random.fold_in(key, g)
        if regime.name == "replace" or (regime.name == "mix" and n_real == 0):
            # carried as the training set's symbols in draw order; a draw is a uniform index into them
            symbols = symbols[np.asarray(_exact_indices(kg[None], m))[0]]
            train = count(symbols)
        else:
            drawn = draw(kg, train, m)
            if regime.name == "accumulate":
                pool = train = pool + count(drawn)
            elif regime.name == "accumulate_subsample":
                pool = pool + count(drawn)
                train = count(subset(jax.random.fold_in(kg, 2), pool, m))
            else:  # mix: n_real real points, then the first n_syn of this generation's draws
                k_real = jax.random.fold_in(kg, 1)
                real = (subset(k_real, original, n_real) if regime.real_source == "original" else
                        np.searchsorted(np.cumsum(weights), np.asarray(_uniform_index(k_real, 2**30, n_real)),
                                        side="right"))
                train = count(np.concatenate([real, drawn[:n_syn]]))
        out.append(train)
    return np.stack(out)


REPLAYED = REGIMES + [Regime(name="mix", real_fraction=1.0), Regime(name="mix", real_fraction=0.0),
                      Regime(name="mix", real_fraction=1.0, real_source="fresh")]


@pytest.mark.parametrize("regime", REPLAYED, ids=lambda r: r.label)
def test_regimes_match_a_numpy_replay_of_the_same_draws(regime):
    q = zipf_numpy(7, 1.0)
    run = discrete.simulate(5, probs=q, sample_size=12, generations=9, replicates=3, regime=regime)
    for r in range(3):
        np.testing.assert_array_equal(run.counts[r], _replay(5, r, probs=q, m=12, generations=9, regime=regime))
    met = discrete.simulate_metrics(5, probs=q, sample_size=12, generations=9, replicates=3, regime=regime)
    np.testing.assert_array_equal(met.final, run.probs[:, -1])


# -- shapes, determinism, batching, compilation


def test_shapes_dtypes_and_agreement_of_the_two_entry_points():
    kwargs = dict(probs=Q, sample_size=M, generations=7, replicates=5)
    full, met = discrete.simulate(9, **kwargs), discrete.simulate_metrics(9, **kwargs)
    assert full.probs.shape == (5, 8, K) and full.probs.dtype == np.float32
    assert full.counts.shape == (5, 7, K) and full.counts.dtype == np.int32
    np.testing.assert_array_equal(full.probs[:, 0], np.broadcast_to(Q.astype(np.float32), (5, K)))
    for name in ("survivors", "rare_mass", "surviving_mass", "homozygosity"):
        assert getattr(met, name).shape == (5, 8)
    assert met.first_zero.shape == met.final.shape == (5, K)
    np.testing.assert_array_equal(met.survivors, (full.probs > 0).sum(-1))
    np.testing.assert_allclose(met.homozygosity, (full.probs.astype(np.float64) ** 2).sum(-1), rtol=1e-5)
    np.testing.assert_array_equal(met.final, full.probs[:, -1])
    lost = full.probs == 0  # replace: lost is absorbing, so first_zero is the first generation at 0
    first = np.where(lost.any(axis=1), lost.argmax(axis=1), 8)
    np.testing.assert_array_equal(met.first_zero, first)


def test_same_seed_same_numbers_other_seed_other_numbers():
    kwargs = dict(probs=Q, sample_size=M, generations=6, replicates=8)
    a, b, c = (discrete.simulate(s, **kwargs).counts for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("regime", [Regime(), Regime(name="accumulate")], ids=lambda r: r.label)
def test_a_chain_does_not_depend_on_how_many_run_beside_it(regime):
    kwargs = dict(probs=Q, sample_size=M, generations=6, regime=regime)
    few, many = discrete.simulate(4, replicates=3, **kwargs), discrete.simulate(4, replicates=8, **kwargs)
    np.testing.assert_array_equal(few.counts, many.counts[:3])


@pytest.mark.parametrize("regime", [Regime(), Regime(name="accumulate")], ids=lambda r: r.label)
def test_jit_matches_eager_and_second_call_does_not_recompile(regime):
    inputs = discrete._inputs(Q)
    kwargs = dict(m=M, generations=3, regime=regime, trajectory=True)
    jitted = discrete._simulate(discrete.replicate_keys(0, 2), *inputs, **kwargs)
    with jax.disable_jit():
        eager = discrete._simulate(discrete.replicate_keys(0, 2), *inputs, **kwargs)
    np.testing.assert_array_equal(jitted, eager)
    size = discrete._simulate._cache_size()
    discrete._simulate(discrete.replicate_keys(1, 2), *inputs, **kwargs)
    assert discrete._simulate._cache_size() == size


# -- arguments


GOOD = dict(probs=Q, sample_size=5, generations=5, replicates=2)


@pytest.mark.parametrize("change,key", [
    (dict(sample_size=0), "sample_size"), (dict(sample_size=2.5), "sample_size"),
    (dict(generations=0), "generations"), (dict(replicates=0), "replicates"),
    (dict(probs=np.array([0.5, 0.6])), "probs"), (dict(probs=np.array([1.5, -0.5])), "probs"),
    (dict(probs=np.ones((2, 2)) / 4), "probs"), (dict(probs=np.array([1.0])), "probs"),
    (dict(probs=np.array([1 - 1e-12, 1e-12])), "probs"), (dict(regime="replace"), "regime"),
    (dict(regime=Regime(name="accumulate"), sample_size=2**20, generations=2**12), "sample_size"),
])
def test_bad_arguments_name_the_argument(change, key):
    with pytest.raises(ValueError, match=key):
        discrete.simulate_metrics(0, **(GOOD | change))


@pytest.mark.parametrize("change,key", [
    (dict(num_symbols=1), "num_symbols"), (dict(exponent=-1.0), "exponent"), (dict(exponent=float("nan")), "exponent"),
    (dict(num_symbols=10**6, exponent=3.0), "num_symbols"), (dict(replicates=0), "replicates"),
])
def test_config_checks_its_fields(change, key):
    with pytest.raises(ValueError, match=key):
        discrete.DiscreteConfig(**(dict(sample_size=5, generations=5, replicates=2) | change))


# -- the CLI steps (through their functions)


def _parser():
    from modelcollapse.commands import discrete as commands

    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(*argv):
    argv = [str(a) for a in argv]
    args = _parser().parse_args(argv)
    args.func(args, argv)


def test_cli_steps_simulate_summarize_absorption_figure_table(tmp_path):
    common = ["--seed", 0, "--generations", 12, "--replicates", 40, "--num-symbols", 30, "--platform", "cpu"]
    _run("discrete", "simulate", "--sample-size", 10, *common, "--out", tmp_path / "M10.npz")
    _run("discrete", "simulate", "--seed", 1, "--num-symbols", 3, "--sample-size", 5, "--generations", 80,
         "--replicates", 200, "--keep", "final", "--out", tmp_path / "abs.npz")
    _run("discrete", "summarize", "--ranks-out", tmp_path / "ranks.csv", "--rank-generations", 1, 12,
         "--out", tmp_path / "s.csv", tmp_path / "M10.npz")
    _run("discrete", "absorption", "--out", tmp_path / "a.csv", tmp_path / "abs.npz")
    _run("discrete", "figure", "--summary", tmp_path / "s.csv", "--ranks", tmp_path / "ranks.csv",
         "--out", tmp_path / "f.pdf")
    _run("discrete", "table", "--summary", tmp_path / "s.csv", "--absorption", tmp_path / "a.csv",
         "--generations", 1, 12, "--table", tmp_path / "t.tex", "--absorption-table", tmp_path / "at.tex",
         "--numbers", tmp_path / "n.tex")
    from modelcollapse import io

    rows = io.read_csv(tmp_path / "s.csv")
    assert len(rows) == 13 and rows[0]["regime"] == "replace"
    assert len(io.read_csv(tmp_path / "ranks.csv")) == 2 * 30
    assert (tmp_path / "f.png").stat().st_size > 10_000
    numbers = (tmp_path / "n.tex").read_text()
    assert r"\mcdef{discrete.Gmax}{12}" in numbers and r"\mcdef{discrete.absorption.K}{3}" in numbers
    assert (tmp_path / "M10.npz.provenance.json").exists()


def test_cli_keys_used_by_the_paper_are_generated(tmp_path):
    import re

    from conftest import ROOT
    from modelcollapse.tables import discrete as tables

    used = set(re.findall(r"\\mcnum\{(discrete\.[^}]+)\}", (ROOT / "paper" / "sections" / "discrete.tex").read_text()))
    row = {"regime": "replace", "num_symbols": "30", "exponent": "1.1", "replicates": "4"}
    stats = ("survivors", "rare_share", "common_share", "heterozygosity")
    rows = [row | {"sample_size": str(m), "generation": str(g)}
            | {f"{s}{suffix}": "0.5" for s in stats for suffix in ("", "_se", "_theory", "_q25", "_q50", "_q75")}
            for m in (10, 40) for g in range(3)]
    absorbed = [{"symbol": str(k), "q": "0.5", "wins": "0.5", "wins_se": "0.1", "wins_theory": "0.5",
                 "fixed": "1.0", "fixed_theory": "1.0", "num_symbols": "2", "sample_size": "5",
                 "generations": "9", "replicates": "4"} for k in (1, 2)]
    generated = set(tables.numbers(rows, absorbed))
    assert used and used <= generated, sorted(used - generated)


@pytest.mark.parametrize("change,message", [
    (("--regime", "replace", "--real-fraction", "0.5"), "--real-fraction"),
    (("--sample-size", "0"), "sample_size"),
    (("--num-symbols", "1"), "num_symbols"),
    (("--regime", "mix", "--real-fraction", "1.5"), "real_fraction"),
])
def test_cli_bad_arguments_fail_before_any_work(tmp_path, capsys, change, message):
    # A knob's own range is the flag's type (argparse exits naming the flag and the key); a rule
    # between settings is the config's check (ValueError naming the key).
    argv = ["discrete", "simulate", "--seed", "0", "--sample-size", "5", "--generations", "3", "--replicates", "2",
            *change, "--out", str(tmp_path / "x.npz")]
    with pytest.raises((ValueError, SystemExit)) as err:
        args = _parser().parse_args(argv)
        args.func(args, argv)
    assert message in str(err.value) + capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
