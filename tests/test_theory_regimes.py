"""The Gaussian chain under every data regime against the exact second-moment recursion of
`theory.regimes`: E[mu_n^2] and E[sigma_n^2] within 5 Monte-Carlo standard errors (computed here),
for the built-in regimes, a registered one (replay), both estimators, both samplers and a schedule."""

import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
import examples.replay.replay  # noqa: E402, F401  (registers 'replay')
from modelcollapse import gaussian, theory  # noqa: E402
from modelcollapse.regimes import Regime  # noqa: E402
from modelcollapse.theory import regimes as exact  # noqa: E402

Z, R = 5.0, 4000


def _within(samples, expected):
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(mean[1:] - expected[1:]) < Z * se[1:]), ((mean - expected) / se)


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
def test_replace_is_the_closed_form(estimator):
    sizes = [10, 4, 30, 7, 7, 100]
    mu2, sigma2 = exact.gaussian_moments(Regime(), sizes, estimator)
    np.testing.assert_allclose(mu2, theory.var_mean(sizes, estimator), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sigma2, theory.expected_sigma2(sizes, estimator), rtol=1e-12)


CASES = [
    ("accumulate", "unbiased", "points"),
    ("accumulate", "mle", "stats"),
    ("accumulate_subsample", "unbiased", "points"),
    ("accumulate_subsample", "mle", "points"),
    ({"name": "mix", "real_fraction": 0.3}, "unbiased", "points"),
    ({"name": "mix", "real_fraction": 0.3}, "mle", "points"),
    ({"name": "mix", "real_fraction": 0.5, "real_source": "fresh"}, "unbiased", "stats"),
    ({"name": "replay", "replay_fraction": 0.4}, "unbiased", "points"),
]


@pytest.mark.parametrize("regime, estimator, sampler", CASES)
def test_every_regime_matches_its_exact_second_moments(regime, estimator, sampler):
    regime, m, g = Regime.from_config(regime), 8, 10
    run = gaussian.simulate(7, sample_size=m, generations=g, replicates=R, estimator=estimator, regime=regime,
                            sampler=sampler)
    mu2, sigma2 = exact.gaussian_moments(regime, [m] * g, estimator)
    mean, std = np.asarray(run.mean, np.float64), np.asarray(run.std, np.float64)
    _within(mean**2, mu2)
    _within(std**2, sigma2)


@pytest.mark.parametrize("regime", ["accumulate", {"name": "mix", "real_fraction": 0.25, "real_source": "fresh"}])
def test_a_sample_size_schedule(regime):
    sizes, regime = [6, 9, 12, 4, 18, 21, 5], Regime.from_config(regime)
    run = gaussian.simulate(3, sample_size=sizes, generations=len(sizes), replicates=R, regime=regime, sampler="stats")
    mu2, sigma2 = exact.gaussian_moments(regime, sizes, "unbiased")
    _within(np.asarray(run.mean, np.float64) ** 2, mu2)
    _within(np.asarray(run.std, np.float64) ** 2, sigma2)


def test_the_regimes_are_told_apart():
    """The laws differ by far more than the tests' tolerance, so a regime run as another fails."""
    m, g = 8, 10
    laws = {r: exact.gaussian_moments(Regime.from_config(r), [m] * g, "unbiased")[0][-1]
            for r in ["replace", "accumulate", "accumulate_subsample"]}
    # replace grows as n/M; accumulate stays below the sum of 1/k^2 bound; subsampling lies between
    assert laws["replace"] == pytest.approx(g / m)
    assert laws["accumulate"] < np.pi**2 / 6 / m
    assert laws["accumulate"] < laws["accumulate_subsample"] < laws["replace"]
    assert laws["accumulate_subsample"] > 1.5 * laws["accumulate"]
    stationary = exact.gaussian_moments(Regime(name="mix", real_fraction=0.5), [m] * 200, "unbiased")[0]
    assert abs(stationary[-1] - stationary[-20]) < 1e-9 and stationary[-1] < laws["replace"] / 4


def test_heads_of_older_sets_are_refused():
    def reuse_original_head(x):
        return x.ops.head(x.original, x.m)

    from modelcollapse import regimes
    regimes.register("original_head_theory_test", reuse_original_head, needs=frozenset())
    with pytest.raises(ValueError, match="heads of the latest"):
        exact.gaussian_moments(Regime(name="original_head_theory_test"), [5, 5, 5], "unbiased")
