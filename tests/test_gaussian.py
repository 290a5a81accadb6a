"""1-D Gaussian chains: statistics against theory (fixed seeds, tolerances of Z Monte-Carlo s.e.),
shapes, determinism, batching invariance, compilation."""

import jax
import numpy as np
import pytest

from modelcollapse import gaussian, metrics, theory
from modelcollapse.regimes import Regime

R = 20_000  # replicates for the statistical checks
Z = 4.0  # tolerance in standard errors: a correct implementation fails one check in ~16,000


@pytest.fixture(scope="module", params=["unbiased", "mle"])
def chains(request):
    estimator = request.param
    result = gaussian.simulate(7, sample_size=20, generations=40, replicates=R, estimator=estimator)
    return estimator, np.asarray(result.mean, np.float64), np.asarray(result.std, np.float64)


GENS = [1, 5, 20, 40]


def _sizes(n=40, m=20):
    return np.full(n, m)


@pytest.mark.parametrize("n", GENS)
def test_variance_of_mean_matches_theory(chains, n):
    estimator, mean, _ = chains
    est, se = metrics.mean_and_se(mean[:, n] ** 2)
    # Var(mu_n^2) from the chains; the normal-mixture fourth moment has no simple closed form.
    assert abs(est - theory.var_mean(_sizes(), estimator)[n]) < Z * se


@pytest.mark.parametrize("n", GENS)
def test_expected_sigma2_matches_theory_with_theory_standard_error(chains, n):
    estimator, _, std = chains
    expected = theory.expected_sigma2(_sizes(), estimator)[n]
    var = theory.second_moment_sigma2(_sizes(), estimator)[n] - expected**2
    assert abs(np.mean(std[:, n] ** 2) - expected) < Z * np.sqrt(var / R)


@pytest.mark.parametrize("n", GENS)
def test_log_sigma2_mean_and_variance_match_theory(chains, n):
    estimator, _, std = chains
    log_s2 = np.log(std[:, n] ** 2)
    mean_theory = theory.expected_log_sigma2(_sizes(), estimator)[n]
    var_theory = theory.var_log_sigma2(_sizes(), estimator)[n]
    assert abs(log_s2.mean() - mean_theory) < Z * np.sqrt(var_theory / R)
    # SE of a sample variance: sqrt((m4 - var^2) / R), with m4 from the chains.
    m4 = np.mean((log_s2 - log_s2.mean()) ** 4)
    assert abs(log_s2.var(ddof=1) - var_theory) < Z * np.sqrt((m4 - var_theory**2) / R)


@pytest.mark.parametrize("n", GENS)
def test_expected_sigma_is_c_to_the_n(chains, n):
    estimator, _, std = chains
    est, se = metrics.mean_and_se(std[:, n])
    assert abs(est - theory.expected_sigma(_sizes(), estimator)[n]) < Z * se


@pytest.mark.parametrize("n", GENS)
def test_expected_w2_squared_matches_theory(chains, n):
    estimator, mean, std = chains
    est, se = metrics.mean_and_se(mean[:, n] ** 2 + (std[:, n] - 1) ** 2)
    assert abs(est - theory.expected_w2_squared(_sizes(), estimator)[n]) < Z * se


@pytest.mark.parametrize("n", [20, 40])
def test_median_sigma2_matches_theory(chains, n):
    estimator, _, std = chains
    med, se = metrics.median_and_se(std[:, n] ** 2)
    assert abs(med - theory.median_sigma2(_sizes(), estimator)[n]) < Z * se


def test_collapse_typical_variance_shrinks_while_mean_stays():
    # The paper's headline in one line: with the unbiased estimator E[sigma^2] = 1 yet most chains collapse.
    result = gaussian.simulate(3, sample_size=10, generations=300, replicates=4000, estimator="unbiased")
    final = result.std[:, -1] ** 2
    assert np.median(final) < 1e-3
    assert np.mean(final < 0.5) > 0.95


def test_shapes_dtypes_and_generation_zero():
    result = gaussian.simulate(0, sample_size=5, generations=7, replicates=3)
    assert result.mean.shape == result.std.shape == (3, 8)
    assert result.mean.dtype == np.float32
    np.testing.assert_array_equal(result.mean[:, 0], 0.0)
    np.testing.assert_array_equal(result.std[:, 0], 1.0)
    assert np.all(np.isfinite(result.mean)) and np.all(result.std > 0)


def test_same_seed_same_numbers_other_seed_other_numbers():
    kwargs = dict(sample_size=10, generations=20, replicates=16)
    a, b = gaussian.simulate(1, **kwargs), gaussian.simulate(1, **kwargs)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    c = gaussian.simulate(2, **kwargs)
    assert not np.array_equal(a.mean, c.mean)


def test_a_chain_does_not_depend_on_how_many_run_beside_it():
    kwargs = dict(sample_size=10, generations=20)
    few, many = gaussian.simulate(4, replicates=3, **kwargs), gaussian.simulate(4, replicates=50, **kwargs)
    np.testing.assert_allclose(few.mean, many.mean[:3], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(few.std, many.std[:3], rtol=1e-6)


def test_estimators_share_draws_so_mle_is_a_deterministic_shrink_at_generation_one():
    kwargs = dict(sample_size=10, generations=1, replicates=8)
    unbiased, mle = (gaussian.simulate(5, estimator=e, **kwargs) for e in ("unbiased", "mle"))
    np.testing.assert_allclose(mle.std[:, 1], unbiased.std[:, 1] * np.sqrt(9 / 10), rtol=1e-6)


def test_fit_agrees_with_numpy():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 50)).astype(np.float32)
    for ddof in (0, 1):
        mean, std = gaussian.fit(x, ddof)
        np.testing.assert_allclose(mean, x.mean(axis=1), rtol=1e-5)
        np.testing.assert_allclose(std, x.std(axis=1, ddof=ddof), rtol=1e-5)


def test_jit_matches_eager_and_second_call_does_not_recompile():
    keys = gaussian.replicate_keys(0, 4)
    kwargs = dict(m=8, generations=6, ddof=1, regime=Regime())
    jitted = gaussian._simulate_points(keys, **kwargs)
    with jax.disable_jit():
        eager = gaussian._simulate_points(keys, **kwargs)
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jitted[1], eager[1], rtol=1e-5)
    size = gaussian._simulate_points._cache_size()
    gaussian._simulate_points(gaussian.replicate_keys(1, 4), **kwargs)
    assert gaussian._simulate_points._cache_size() == size


@pytest.mark.parametrize("kwargs,key", [
    (dict(sample_size=1, generations=5, replicates=2), "sample_size"),
    (dict(sample_size=5, generations=0, replicates=2), "generations"),
    (dict(sample_size=5, generations=5, replicates=0), "replicates"),
    (dict(sample_size=5.5, generations=5, replicates=2), "sample_size"),
    (dict(sample_size=5, generations=5, replicates=2, estimator="median"), "estimator"),
])
def test_bad_arguments_name_the_argument(kwargs, key):
    with pytest.raises(ValueError, match=key):
        gaussian.simulate(0, **kwargs)
