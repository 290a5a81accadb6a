"""Verification (issue 21): the Gaussian chain whose synthetic draws pass a Gaussian-kernel verifier
against its exact law (theory.verify: the tilted Gaussian, and the variance chain by quadrature)."""

import numpy as np
import pytest

from modelcollapse import discrete, gaussian, regimes
from modelcollapse.regimes import Regime
from modelcollapse.theory import gaussian as closed
from modelcollapse.theory import verify

Z = 5.0  # tolerance in Monte-Carlo standard errors


def verifier(b, tau, f=0.0):
    return Regime.from_config({"name": "verify", "b": b, "tau": tau, "real_fraction": f})


def test_accepted_draws_are_the_tilted_gaussian():
    # Independent of the formula: rejection sampling in NumPy, 2 million candidates.
    rng = np.random.default_rng(0)
    mu, var, b, tau = 0.7, 2.0, -0.5, 0.8
    x = mu + np.sqrt(var) * rng.standard_normal(2_000_000)
    kept = x[rng.random(x.size) < np.exp(-((x - b) ** 2) / (2 * tau**2))]
    mean_t, var_t = verify.tilted(mu, var, b, tau)
    n = kept.size
    assert abs(kept.mean() - mean_t) < Z * np.sqrt(var_t / n)
    assert abs(kept.var() - var_t) < Z * var_t * np.sqrt(2 / n)
    p = verify.acceptance(mu, var, b, tau)
    assert abs(n / x.size - p) < Z * np.sqrt(p * (1 - p) / x.size)


@pytest.mark.parametrize("m,g", [(20, 100), (100, 300)])
def test_the_quadrature_reproduces_replace_without_a_verifier(m, g):
    law = verify.moments(g, sample_size=m, center=0.0, width=1e9)
    sizes = np.full(g, m)
    np.testing.assert_allclose(law["sigma2"], closed.expected_sigma2(sizes, "unbiased"), rtol=5e-3)
    np.testing.assert_allclose(law["mean_sq"][1:], closed.var_mean(sizes, "unbiased")[1:], rtol=5e-3)
    assert law["mass"].min() > 1 - 1e-9


def test_the_quadrature_is_converged_in_its_grid():
    coarse = verify.moments(40, sample_size=20, center=1.0, width=0.7)
    fine = verify.moments(40, sample_size=20, center=1.0, width=0.7, grid_step=0.004)
    for key in ("sigma2", "mean_sq", "mean"):
        np.testing.assert_allclose(coarse[key], fine[key], rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("b,tau,m,estimator", [(1.0, 1.0, 20, "unbiased"), (0.0, 0.5, 10, "mle"),
                                               (2.0, 3.0, 50, "unbiased")])
def test_the_verified_chain_matches_its_law(b, tau, m, estimator):
    g, r = 30, 20_000
    regime = verifier(b, tau)
    run = gaussian.simulate(0, sample_size=m, generations=g, replicates=r, estimator=estimator, regime=regime)
    s = gaussian.summarize(run.mean, run.std, sizes=np.full(g, m), estimator=estimator, regime=regime)
    law = verify.moments(g, sample_size=m, center=b, width=tau, ddof=0 if estimator == "mle" else 1)
    np.testing.assert_allclose(s["mean_sigma2_theory"], law["sigma2"])
    for sim, se, exact in ((s["mean_sigma2"], s["mean_sigma2_se"], law["sigma2"]),
                           (s["var_mu"], s["var_mu_se"], law["mean_sq"])):
        assert np.all(np.abs(sim[1:] - exact[1:]) <= Z * se[1:] + 1e-6), np.max(np.abs(sim - exact)[1:] / se[1:])
    mean = np.asarray(run.mean, np.float64).mean(0)
    se = np.asarray(run.mean, np.float64).std(0, ddof=1) / np.sqrt(r)
    assert np.all(np.abs(mean[1:] - law["mean"][1:]) <= Z * se[1:] + 1e-6)
    # the verifier pulls the mean to b and shrinks the variance faster than replace does
    replace = closed.expected_sigma2(np.full(g, m), estimator)
    assert law["sigma2"][-1] < 0.5 * replace[-1] and abs(law["mean"][-1] - b) < abs(b) / 2 + 1e-9


def test_all_real_data_is_mix_at_one_and_a_mixed_set_has_no_law():
    kw = dict(sample_size=10, generations=5, replicates=64)
    verified = gaussian.simulate(1, regime=verifier(0.0, 1.0, f=1.0), **kw)
    mixed = gaussian.simulate(1, regime=Regime(name="mix", real_fraction=1.0), **kw)
    np.testing.assert_array_equal(verified.mean, mixed.mean)
    np.testing.assert_array_equal(verified.std, mixed.std)
    regime = verifier(0.0, 1.0, f=0.5)
    run = gaussian.simulate(1, regime=regime, **kw)
    s = gaussian.summarize(run.mean, run.std, sizes=np.full(5, 10), estimator="unbiased", regime=regime)
    assert np.all(np.isnan(s["mean_sigma2_theory"])) and np.all(np.isfinite(s["mean_sigma2"]))


def test_families_without_a_verifier_refuse_it_before_any_work():
    with pytest.raises(ValueError, match="verifier accepted"):
        gaussian.GaussianConfig(sample_size=(10, 20), generations=2, replicates=2, regime=verifier(0.0, 1.0))
    with pytest.raises(ValueError, match="below 2\\^19 for regime verify"):
        discrete.DiscreteConfig(sample_size=2**19, generations=2, replicates=2, regime=verifier(0.0, 1.0))
    with pytest.raises(ValueError, match="tau"):
        verifier(0.0, 0.0)
    assert "verified" not in regimes.DATA_NEEDS


def test_every_family_without_a_verifier_names_what_is_missing():
    # (the Gaussian points chain and the discrete chain have one; the stats sampler is refused above)
    from modelcollapse import family, gmm
    from examples.exponential import exponential

    regime = verifier(0.0, 1.0)
    with pytest.raises(ValueError, match="the GMM chain"):
        gmm.GMMConfig(sample_size=10, generations=2, replicates=2, regime=regime)
    with pytest.raises(ValueError, match="the family 'exponential'"):
        family.simulate(exponential.family(1.0), 0, sample_size=10, generations=2, replicates=2, regime=regime)


def test_real_data_gives_the_variance_a_fixed_point():
    # The large-M fixed point s = f + (1 - f) s tau^2 / (s + tau^2), against a long chain at M = 2000.
    f, tau, g = 0.1, 2.0, 60
    s_star = verify.mixed_fixed_point(f, tau)
    assert s_star == pytest.approx(0.5) and verify.mixed_fixed_point(0.0, tau) == 0.0
    assert s_star == pytest.approx(f + (1 - f) * s_star * tau**2 / (s_star + tau**2))
    regime = verifier(0.0, tau, f=f)
    run = gaussian.simulate(2, sample_size=2000, generations=g, replicates=256, regime=regime)
    late = np.asarray(run.std, np.float64)[:, -20:] ** 2
    assert abs(late.mean() - s_star) < 0.02  # sampling noise and the parts' mean spread: O(1 / M)
    s = gaussian.summarize(run.mean, run.std, sizes=np.full(g, 2000), estimator="unbiased", regime=regime)
    np.testing.assert_allclose(s["sigma2_fixed_point"], s_star)


# -- the discrete verifier: symbol k kept with probability w_k (selection in the Wright-Fisher chain)


def test_discrete_verified_draws_follow_the_tilted_law_exactly():
    # Generation 2 trains on M accepted draws of model 1 (the original counts c): Multinomial(M, c w / c.w).
    from conftest import chisquare_pvalue

    q, m, r = discrete.zipf(20, 1.1), 30, 4000
    regime = verifier(0.0, 4.0)
    w = discrete.verifier_weights(20, 0.0, 4.0)
    assert w[0] == 2**discrete.VERIFY_BITS and np.all(np.diff(w) <= 0) and w.min() >= 1
    counts = np.asarray(discrete.simulate(5, probs=q, sample_size=m, generations=2, replicates=r,
                                          regime=regime).counts, np.float64)
    tilted = counts[:, 0] * w / (counts[:, 0] * w).sum(axis=1, keepdims=True)
    assert chisquare_pvalue(counts[:, 1].sum(0), m * tilted.sum(0)) > 1e-4
    untilted = counts[:, 0] / m
    assert chisquare_pvalue(counts[:, 1].sum(0), m * untilted.sum(0)) < 1e-6  # the test can tell them apart


def test_discrete_verifier_fixation_follows_kimura_approximately():
    # Two symbols, w = (1, 1 - s): Wright-Fisher with selection. The diffusion approximation (Kimura
    # 1962; approximate: it ignores O(1/M) terms) gives P(symbol 0 fixes | p) = (1 - e^{-2Msp}) / (1 - e^{-2Ms}),
    # averaged here over each chain's generation-1 frequency p.
    m, r, g, tau = 50, 4000, 600, 5.0
    s = 1 - discrete.verifier_weights(2, 0.0, tau)[1] / 2**discrete.VERIFY_BITS
    run = discrete.simulate(3, probs=np.array([0.3, 0.7]), sample_size=m, generations=g, replicates=r,
                            regime=verifier(0.0, tau))
    counts = np.asarray(run.counts)
    assert np.all(counts[:, -1].max(axis=1) == m), "every chain has fixed"
    p1 = counts[:, 0, 0] / m
    kimura = np.mean((1 - np.exp(-2 * m * s * p1)) / (1 - np.exp(-2 * m * s)))
    fixed0 = np.mean(counts[:, -1, 0] == m)
    neutral = p1.mean()
    assert abs(fixed0 - kimura) < 5 * np.sqrt(kimura * (1 - kimura) / r) + 0.01
    assert fixed0 > neutral + 0.1  # selection, not drift: far above the neutral p
