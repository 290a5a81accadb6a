"""The synthetic Markov language: its tables against dense numpy/scipy computations on a small
language, its sampler against the exact transition probabilities and entropy rate (fixed seeds,
tolerances in standard errors computed here), exact log-probabilities against a direct loop, the KL
helper against closed forms, the words, determinism and argument checks."""

import jax
import numpy as np
import pytest
from scipy import linalg, stats
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from conftest import chisquare_pvalue
from modelcollapse.lm.synthetic import SyntheticLanguage, kl_truth_model, word_list

Z = 4.0  # Monte-Carlo tolerance in standard errors
SMALL = SyntheticLanguage(vocab_size=50, n_successors=8, seed=3)
DEFAULT = SyntheticLanguage()


# Few distinct sample shapes: each (n, length, V, K) compiles once (seconds on a busy CPU).
@pytest.fixture(scope="module")
def small_sample():
    # 4,000 independent stationary sequences of 100 words: 396,000 transitions.
    return np.asarray(SMALL.sample(jax.random.key(0), 4000, 100))


@pytest.fixture(scope="module")
def default_corpus():
    # 4,000 independent stationary blocks of 64 words of the default language.
    return np.asarray(DEFAULT.corpus(jax.random.key(2), n_tokens=4000 * 64))


# -- the tables


@pytest.mark.parametrize("lang", [SMALL, DEFAULT, SyntheticLanguage(vocab_size=3, n_successors=2, concentration=0.05)])
def test_transition_structure(lang):
    t = lang.tables
    v, k = lang.vocab_size, lang.n_successors
    assert t.successors.shape == t.probs.shape == (v, k) and t.successors.dtype == np.int32
    np.testing.assert_allclose(t.probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(t.probs > 0)
    assert np.all(np.diff(t.successors, axis=1) > 0)  # sorted, so distinct
    assert np.all(t.successors[:, 0] == 0)  # word 0 follows every word (aperiodicity)
    dense = lang.transition_matrix()
    assert np.count_nonzero(dense) == v * k
    # Irreducible: one strongly connected component (scipy's graph search, not our argument).
    n_comp, _ = connected_components(csr_matrix(dense > 0), directed=True, connection="strong")
    assert n_comp == 1


def test_small_chain_is_primitive():
    # Irreducible and aperiodic <=> some power of P is entrywise positive (Wielandt: n <= (V-1)^2 + 1).
    reach = SMALL.transition_matrix() > 0
    power = reach.copy()
    for _ in range((SMALL.vocab_size - 1) ** 2 + 1):
        if power.all():
            break
        power = (power.astype(np.int64) @ reach.astype(np.int64)) > 0
    assert power.all()


@pytest.mark.parametrize("lang", [SMALL, DEFAULT])
def test_stationary_distribution(lang):
    pi = lang.stationary
    assert pi.shape == (lang.vocab_size,) and np.all(pi > 0)
    assert abs(pi.sum() - 1) < 1e-12
    np.testing.assert_allclose(pi @ lang.transition_matrix(), pi, rtol=0, atol=1e-13)


def test_small_tables_against_dense_numpy():
    # Independent: pi from the eigenvector of the dense P^T for eigenvalue 1 (LAPACK), entropies by scipy.
    p = SMALL.transition_matrix()
    w, vecs = linalg.eig(p.T)
    ref = np.real(vecs[:, np.argmin(np.abs(w - 1))])
    ref /= ref.sum()
    np.testing.assert_allclose(SMALL.stationary, ref, rtol=1e-9)
    h_rows = stats.entropy(p, axis=1)  # -sum_j P_ij log P_ij, zeros contribute 0
    assert SMALL.entropy_rate == pytest.approx(float(ref @ h_rows), rel=1e-10)
    assert SMALL.unigram_entropy == pytest.approx(float(stats.entropy(ref)), rel=1e-10)
    assert 0 < SMALL.entropy_rate < SMALL.unigram_entropy < np.log(SMALL.vocab_size)


def test_default_language_numbers():
    # Context is worth nats: the model that learns the chain beats the unigram model by ~2.9 nats.
    assert DEFAULT.entropy_rate == pytest.approx(3.0548, abs=1e-3)
    assert DEFAULT.unigram_entropy == pytest.approx(5.9266, abs=1e-3)
    assert DEFAULT.entropy_rate <= np.log(DEFAULT.n_successors)


def test_next_token_probs_dense_rows():
    prev = np.array([[0, 5], [49, 5]])
    out = SMALL.next_token_probs(prev)
    assert out.shape == (2, 2, 50)
    np.testing.assert_array_equal(out[0, 1], out[1, 1])
    t = SMALL.tables
    for i in (0, 5, 49):
        row = np.zeros(50)
        row[t.successors[i]] = t.probs[i]
        np.testing.assert_array_equal(SMALL.next_token_probs(i), row)


# -- sampling against the truth


def test_empirical_transitions_match_p(small_sample):
    x = small_sample
    p = SMALL.transition_matrix()
    counts = np.zeros((50, 50))
    np.add.at(counts, (x[:, :-1].ravel(), x[:, 1:].ravel()), 1)
    assert counts[p == 0].sum() == 0  # no forbidden transition is ever drawn
    # Given the visits n_i to word i, its successors are Multinomial(n_i, P_i) (Markov property), so
    # the Pearson statistic summed over rows is chi-square with sum_i (K - 1) degrees of freedom.
    n_i = counts.sum(axis=1, keepdims=True)
    expected = n_i * p
    on = p > 0
    chi2 = float(np.sum((counts[on] - expected[on]) ** 2 / expected[on]))
    df = int(on.sum() - 50)
    assert stats.chi2.sf(chi2, df) > 1e-4, (chi2, df)
    # and no single cell is off by more than 4.5 SE (about 3e-3 family-wise over 400 cells) where the
    # normal approximation holds (n p (1 - p) >= 10); in the sparse cells the exact binomial two-sided
    # tail must stay above the same per-cell level, 2 * norm.sf(4.5)
    n_b = np.broadcast_to(n_i, p.shape)
    se = np.sqrt(np.where(on, p * (1 - p), 1.0) / np.maximum(n_b, 1))
    normal = on & (n_b * p * (1 - p) >= 10)
    assert np.max(np.abs(counts / np.maximum(n_b, 1) - p)[normal] / se[normal]) < 4.5
    sparse = on & ~normal
    c, n_s, p_s = counts[sparse], n_b[sparse], p[sparse]
    tail = 2 * np.minimum(stats.binom.cdf(c, n_s, p_s), stats.binom.sf(c - 1, n_s, p_s))
    assert np.min(tail) > 2 * stats.norm.sf(4.5)


@pytest.mark.parametrize("lang", [SMALL, DEFAULT, SyntheticLanguage(vocab_size=3, n_successors=2, concentration=0.05)])
def test_sampler_thresholds_realise_p(lang):
    # The sampler picks #{k : t_k <= b} for a uniform 32-bit b, so category k has probability
    # (t_k - t_{k-1}) / 2^32: within 2^-32 of P (rounding each cumulative sum moves it by <= 2^-33).
    from modelcollapse.lm.synthetic import _thresholds

    for probs in (lang.tables.probs, lang.stationary[None]):
        t = _thresholds(probs).astype(np.float64)
        edges = np.concatenate([np.zeros((len(t), 1)), t, np.full((len(t), 1), 2.0**32)], axis=1)
        np.testing.assert_allclose(np.diff(edges, axis=1) / 2.0**32, probs, rtol=0, atol=2.0**-32)
    start = np.zeros(lang.vocab_size)
    start[1], start[-1] = 0.7, 0.3
    widths = np.diff(np.concatenate([[0.0], _thresholds(start).astype(np.float64), [2.0**32]]))
    assert widths[0] == 0 and np.all(widths[2:-1] == 0)  # impossible words stay impossible


def test_first_token_is_stationary(small_sample):
    counts = np.bincount(small_sample[:, 0], minlength=50)
    assert chisquare_pvalue(counts, 4000 * SMALL.stationary) > 1e-4
    # and the chain stays stationary: position 99 too
    assert chisquare_pvalue(np.bincount(small_sample[:, -1], minlength=50), 4000 * SMALL.stationary) > 1e-4


def test_given_start_distribution():
    start = np.zeros(50)
    start[[7, 30, 49]] = [0.5, 0.3, 0.2]
    x = np.asarray(SMALL.sample(jax.random.key(1), 4000, 100, start=start))[:, :2]
    counts = np.bincount(x[:, 0], minlength=50)
    assert counts[start == 0].sum() == 0
    assert stats.chisquare(counts[[7, 30, 49]], 4000 * start[[7, 30, 49]]).pvalue > 1e-4
    lp = SMALL.log_prob(x, start=start)
    np.testing.assert_allclose(lp, np.log(start[x[:, 0]]) + np.log(SMALL.transition_matrix()[x[:, 0], x[:, 1]]))


def test_mean_loss_approaches_entropy_rate(default_corpus):
    # Independent stationary sequences: E[-log p(x_1..x_{T-1} | x_0)] = (T - 1) H exactly and
    # E[-log p(x)] = H(pi) + (T - 1) H; sequences are i.i.d., so the SE is the plain one.
    x = default_corpus
    n, length = 4000, 64
    assert x.shape == (n, length) and x.dtype == np.int32
    cond = -DEFAULT.log_prob(x, start=None)
    full = -DEFAULT.log_prob(x)
    h, h_pi = DEFAULT.entropy_rate, DEFAULT.unigram_entropy
    assert abs(cond.mean() - (length - 1) * h) < Z * cond.std(ddof=1) / np.sqrt(n)
    assert abs(full.mean() - h_pi - (length - 1) * h) < Z * full.std(ddof=1) / np.sqrt(n)
    assert DEFAULT.cross_entropy(x, start=None) == pytest.approx(cond.mean() / (length - 1), rel=1e-12)


def test_samples_are_prefix_consistent_and_deterministic():
    key = jax.random.key(5)
    a = np.asarray(SMALL.sample(key, 40, 30))
    assert a.dtype == np.int32 and a.shape == (40, 30)
    np.testing.assert_array_equal(a[:7], np.asarray(SMALL.sample(key, 7, 30)))
    np.testing.assert_array_equal(a, np.asarray(SMALL.sample(key, 40, 30)))
    assert not np.array_equal(a, np.asarray(SMALL.sample(jax.random.key(6), 40, 30)))
    # the same language rebuilt from the same seed samples the same text
    rebuilt = SyntheticLanguage(vocab_size=50, n_successors=8, seed=3)
    np.testing.assert_array_equal(a, np.asarray(rebuilt.sample(key, 40, 30)))
    assert np.isfinite(SMALL.log_prob(a)).all()
    # Step t draws from fold_in(key, t) whatever the length, so shorter runs are prefixes too;
    # checked op by op without jit (the same draws; 3 steps, as unjitted dispatch is slow).
    with jax.disable_jit():
        np.testing.assert_array_equal(a[:7, :4], np.asarray(SMALL.sample(key, 7, 4)))


def test_no_recompilation_for_same_shapes():
    from modelcollapse.lm import synthetic

    lang = SyntheticLanguage(vocab_size=50, n_successors=8, seed=11)
    lang.sample(jax.random.key(0), 40, 30)
    before = synthetic._sample._cache_size()
    lang.sample(jax.random.key(1), 40, 30)
    SyntheticLanguage(vocab_size=50, n_successors=8, seed=12).sample(jax.random.key(1), 40, 30)  # same shapes
    assert synthetic._sample._cache_size() == before


# -- exact log-probabilities


def test_log_prob_equals_direct_loop(small_sample):
    rng = np.random.default_rng(0)
    p = SMALL.transition_matrix()
    pi = SMALL.stationary
    x = small_sample[:5, :12].copy()
    x[4] = rng.integers(0, 50, 12)  # arbitrary words: almost surely some forbidden transition
    for start, ref_first in [("stationary", pi), (None, None)]:
        got = SMALL.log_prob(x, start=start)
        for row, value in zip(x, got):
            ref = 0.0 if ref_first is None else np.log(ref_first[row[0]])
            for a, b in zip(row[:-1], row[1:]):
                ref += np.log(p[a, b]) if p[a, b] > 0 else -np.inf
            assert value == pytest.approx(ref, rel=1e-12) if np.isfinite(ref) else value == -np.inf
    assert SMALL.log_prob(x[:, :1]).tolist() == pytest.approx(np.log(pi[x[:, 0]]).tolist(), rel=1e-12)


# -- KL helper


def test_kl_closed_forms():
    p = np.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    assert kl_truth_model(p, logp) == pytest.approx(0.0, abs=1e-15)
    # KL(p || uniform) = log V - H(p) per row, averaged
    expected = np.mean([np.log(3) - np.log(2), np.log(3) - 1.5 * np.log(2)])
    assert kl_truth_model(p, np.zeros((2, 3))) == pytest.approx(expected, rel=1e-12)  # logits: renormalised
    assert kl_truth_model(p, np.full((2, 3), 7.0)) == pytest.approx(expected, rel=1e-12)  # shift-invariant
    # a model that is tiny where the truth is positive: its exact log, no underflow to log 0
    tiny = np.array([[np.log1p(-1e-300), -300 * np.log(10), -np.inf]])
    assert kl_truth_model(p[:1], tiny) == pytest.approx(0.5 * np.log(0.5) + 0.5 * (np.log(0.5) + 300 * np.log(10)),
                                                        rel=1e-12)
    assert kl_truth_model(p[:1], np.array([[0.0, -np.inf, 0.0]])) == np.inf


def test_kl_to_model_matches_dense_helper():
    rng = np.random.default_rng(1)
    prev = rng.integers(0, 50, 300)
    logits = rng.normal(size=(300, 50)).astype(np.float32)
    dense = kl_truth_model(SMALL.next_token_probs(prev), logits)
    assert SMALL.kl_to_model(prev, logits) == pytest.approx(dense, rel=1e-12)
    with np.errstate(divide="ignore"):
        assert SMALL.kl_to_model(prev, np.log(SMALL.next_token_probs(prev))) == pytest.approx(0.0, abs=1e-12)


# -- words


def test_words_unique_pronounceable_and_round_trip(default_corpus):
    words = DEFAULT.word_list()
    assert len(words) == 2000 == len(set(words))
    assert all(w.isalpha() and w.islower() for w in words)
    lengths = np.array([len(w) for w in words])
    assert np.all(np.diff(lengths) >= 0)  # frequent words are never longer than rarer ones
    assert lengths[0] == 2 and lengths[-1] == 4  # 70 one-syllable words, then two syllables
    assert word_list(2000)[:50] == word_list(50) == SMALL.word_list()  # fixed by V alone, nested
    x = default_corpus[:3, :20]
    text = DEFAULT.words(x)
    assert text.count("\n") == 2
    np.testing.assert_array_equal(DEFAULT.encode(text).reshape(3, 20), x)
    np.testing.assert_array_equal(DEFAULT.encode(DEFAULT.words(np.arange(2000))), np.arange(2000))
    with pytest.raises(KeyError, match="not a word"):
        DEFAULT.encode("hello")


# -- arguments


@pytest.mark.parametrize("kwargs,name", [
    (dict(vocab_size=2), "vocab_size"), (dict(vocab_size=10, n_successors=11), "n_successors"),
    (dict(n_successors=1), "n_successors"), (dict(zipf_exponent=-1.0), "zipf_exponent"),
    (dict(concentration=0.0), "concentration"), (dict(seed=-1), "seed"), (dict(vocab_size=2.5), "vocab_size"),
])
def test_invalid_config(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SyntheticLanguage(**kwargs)


def test_invalid_calls():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="length"):
        SMALL.sample(key, 2, 0)
    with pytest.raises(ValueError, match="start"):
        SMALL.sample(key, 2, 3, start=np.ones(50))
    with pytest.raises(ValueError, match="start"):
        SMALL.sample(key, 2, 3, start=None)
    with pytest.raises(ValueError, match="tokens"):
        SMALL.log_prob(np.array([[0, 50]]))
    with pytest.raises(ValueError, match="n_tokens"):
        SMALL.corpus(key, n_tokens=0)
    assert SMALL.corpus(key, n_tokens=39 * 30 + 1, block_size=30).shape == (40, 30)  # ceil
