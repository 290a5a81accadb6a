"""The closed forms in `theory`, each against an independent computation (scipy, numpy sampling)."""

import numpy as np
import pytest
from scipy import integrate, stats

from modelcollapse import theory

SIZES = [2, 5, 20, 100, 10_000]


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("estimator,ddof", [("unbiased", 1), ("mle", 0)])
def test_per_generation_moments_match_scipy_chi_square(m, estimator, ddof):
    k = m - 1
    scale = m - ddof  # S = chi2_k / scale
    mean_log, var_log, _ = theory.log_s_moments([m], estimator)
    # E[log S] and Var[log S] by quadrature over the chi-square density.
    e_log = stats.chi2(k).expect(lambda x: np.log(x / scale))
    e_log2 = stats.chi2(k).expect(lambda x: np.log(x / scale) ** 2)
    assert mean_log[0] == pytest.approx(e_log, rel=1e-6, abs=1e-9)
    assert var_log[0] == pytest.approx(e_log2 - e_log**2, rel=1e-5, abs=1e-9)
    # c(M) = E[sqrt(S)] is the mean of a chi distribution over sqrt(scale).
    assert theory.c_factor([m], estimator)[0] == pytest.approx(stats.chi(k).mean() / np.sqrt(scale), rel=1e-9)


@pytest.mark.parametrize("m", [5, 100])
def test_closed_forms_quoted_in_the_paper(m):
    n = np.arange(51)
    sizes = np.full(50, m)
    # unbiased: E sigma^2 = 1, Var mu_n = n / M, E W2^2 = n/M + 2(1 - c^n)
    np.testing.assert_allclose(theory.expected_sigma2(sizes, "unbiased"), 1.0)
    np.testing.assert_allclose(theory.var_mean(sizes, "unbiased"), n / m, rtol=1e-12)
    c = theory.c_factor([m])[0]
    np.testing.assert_allclose(theory.expected_w2_squared(sizes, "unbiased"), n / m + 2 * (1 - c**n),
                               rtol=1e-10, atol=1e-14)
    # MLE: E sigma^2 = ((M-1)/M)^n and Var mu_n = sum_i ((M-1)/M)^i / M = 1 - ((M-1)/M)^n
    r = (m - 1) / m
    np.testing.assert_allclose(theory.expected_sigma2(sizes, "mle"), r**n, rtol=1e-12)
    np.testing.assert_allclose(theory.var_mean(sizes, "mle"), 1 - r**n, rtol=1e-10, atol=1e-15)
    # E[log sigma_n^2] grows linearly with slope digamma((M-1)/2) - log((M-1)/2)
    from scipy.special import digamma
    slope = digamma((m - 1) / 2) - np.log((m - 1) / 2)
    np.testing.assert_allclose(theory.expected_log_sigma2(sizes, "unbiased"), n * slope, rtol=1e-12)


def test_schedules_enter_through_per_generation_sizes():
    sizes = np.array([10, 20, 40, 80])
    np.testing.assert_allclose(theory.var_mean(sizes, "unbiased"), np.concatenate([[0], np.cumsum(1 / sizes)]))


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
def test_median_sigma2_matches_direct_sampling_of_the_product(estimator):
    # sigma_n^2 = prod S_i with S_i = chi2_{M-1}/(M-ddof), sampled with numpy, independently of JAX.
    rng = np.random.default_rng(1)
    m, n, reps = 10, 30, 200_000
    ddof = theory.ddof_of(estimator)
    log_sigma2 = np.log(rng.chisquare(m - 1, size=(reps, n)) / (m - ddof)).sum(axis=1)
    empirical = np.exp(np.median(log_sigma2))
    # SE of the sample median of a near-normal variable: sqrt(pi/2) * sd / sqrt(reps), on the log scale.
    se_log = np.sqrt(np.pi / 2) * log_sigma2.std() / np.sqrt(reps)
    predicted = theory.median_sigma2(np.full(n, m), estimator)[-1]
    assert abs(np.log(predicted) - np.log(empirical)) < 4 * se_log


def test_abs_std_error_quantile_inverts_its_own_cdf():
    sizes = np.full(200, 50)
    q = theory.abs_std_error_quantile(sizes, "unbiased", 0.5)
    mean = theory.expected_log_sigma2(sizes, "unbiased")
    sd = np.sqrt(theory.var_log_sigma2(sizes, "unbiased"))
    for n in (1, 10, 200):
        # P(|1 - exp(L/2)| <= t) with L ~ N(mean, sd^2), by quadrature.
        t = q[n]
        lo, hi = (2 * np.log(max(1 - t, 1e-300)) if t < 1 else -np.inf), 2 * np.log1p(t)
        prob = integrate.quad(lambda x: stats.norm.pdf(x, mean[n], sd[n]), lo, hi)[0]
        assert prob == pytest.approx(0.5, abs=1e-6)
    assert q[0] == 0


@pytest.mark.parametrize("bad", [[1], [0, 5], [-3]])
def test_sample_sizes_below_two_are_rejected(bad):
    with pytest.raises(ValueError, match="sample_sizes"):
        theory.var_mean(bad, "unbiased")


def test_unknown_estimator_is_rejected():
    with pytest.raises(ValueError, match="estimator"):
        theory.expected_sigma2([10], "ddof2")
