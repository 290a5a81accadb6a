"""d-dimensional chains (Nature Theorem 3.1) and sample-size schedules, against exact theory."""

import numpy as np
import pytest

from modelcollapse import gaussian, metrics, schedules, theory
from modelcollapse.regimes import Regime

Z = 4.0
R = 20_000


@pytest.fixture(scope="module", params=["points", "stats"])
def chains(request):
    sim = gaussian.simulate_multivariate(5, sample_size=12, generations=20, replicates=R, dim=3, correlation=0.4,
                            sampler=request.param)
    sigma0 = gaussian.GaussianConfig(sample_size=12, generations=20, replicates=2, dim=3, correlation=0.4).sigma0()
    return sim, sigma0


@pytest.mark.parametrize("n", [1, 5, 20])
def test_log_det_mean_and_variance_are_exact(chains, n):
    sim, sigma0 = chains
    sizes = np.full(20, 12)
    ld = sim.log_det[:, n].astype(np.float64)
    mean_theory = theory.expected_log_det(sizes, "unbiased", 3, np.linalg.slogdet(sigma0)[1])[n]
    var_theory = theory.var_log_det(sizes, "unbiased", 3)[n]
    assert abs(ld.mean() - mean_theory) < Z * np.sqrt(var_theory / R)
    m4 = np.mean((ld - ld.mean()) ** 4)
    assert abs(ld.var(ddof=1) - var_theory) < Z * np.sqrt((m4 - var_theory**2) / R)


@pytest.mark.parametrize("n", [1, 5, 20])
def test_mean_drift_and_expected_trace(chains, n):
    sim, sigma0 = chains
    sizes = np.full(20, 12)
    est, se = metrics.mean_and_se(np.sum(sim.mean[:, n].astype(np.float64) ** 2, axis=-1))
    assert abs(est - theory.expected_mean_sq_dist(sizes, "unbiased", np.trace(sigma0))[n]) < Z * se
    est, se = metrics.mean_and_se(np.trace(sim.cov[:, n], axis1=-2, axis2=-1).astype(np.float64))
    assert abs(est - np.trace(sigma0)) < Z * se  # unbiased: E Sigma_n = Sigma_0


def test_covariances_are_symmetric_positive_definite_and_match_log_det(chains):
    sim, sigma0 = chains
    assert sim.mean.shape == (R, 21, 3) and sim.cov.shape == (R, 21, 3, 3) and sim.log_det.shape == (R, 21)
    np.testing.assert_allclose(sim.cov[:, 0], np.broadcast_to(sigma0, (R, 3, 3)), rtol=1e-6)
    cov = sim.cov[:100, -1].astype(np.float64)
    np.testing.assert_allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-5, atol=1e-12)
    sign, logdet = np.linalg.slogdet(cov)
    assert np.all(sign > 0)
    # log_det is accumulated from Cholesky factors; slogdet of the float32 covariance is only good
    # to about d * cond(cov) * eps32, which is what we allow.
    bound = 10 * 3 * np.linalg.cond(cov) * np.finfo(np.float32).eps
    assert np.all(np.abs(logdet - sim.log_det[:100, -1]) <= bound)


def test_covariance_collapses():
    sim = gaussian.simulate_multivariate(1, sample_size=20, generations=500, replicates=500, dim=4)
    assert np.median(sim.log_det[:, -1]) < np.median(sim.log_det[:, 0]) - 20


@pytest.mark.parametrize("kwargs,match", [
    (dict(dim=5, sample_size=5), "dim \\+ 1"),
    (dict(dim=3, correlation=-0.6), "positive-definite"),
])
def test_bad_multivariate_arguments(kwargs, match):
    base = dict(sample_size=20, generations=3, replicates=2) | kwargs
    with pytest.raises(ValueError, match=match):
        gaussian.simulate_multivariate(0, **base)


def test_multivariate_configs_run_replace_only():
    # simulate_multivariate takes no regime; a config block asking for another one is refused.
    with pytest.raises(ValueError, match="dim > 1 supports regime 'replace' only"):
        gaussian.GaussianConfig(sample_size=20, generations=3, replicates=2, dim=2, regime=Regime(name="accumulate"))


# -- schedules -------------------------------------------------------------------------------------

def test_schedule_sizes():
    np.testing.assert_array_equal(schedules.sample_sizes("constant", base=10, generations=3), [10, 10, 10])
    np.testing.assert_array_equal(schedules.sample_sizes("linear", base=10, generations=3), [10, 20, 30])
    np.testing.assert_array_equal(schedules.sample_sizes("superlinear", base=10, generations=3, power=2), [10, 40, 90])
    with pytest.raises(ValueError, match="power"):
        schedules.sample_sizes("superlinear", base=10, generations=3, power=1.0)
    with pytest.raises(ValueError, match="2\\^53"):
        schedules.sample_sizes("superlinear", base=10**6, generations=10**6, power=4)


@pytest.mark.parametrize("kind", schedules.KINDS)
def test_schedule_w2_matches_theory(kind):
    # G = 50 keeps Var(sigma_n^2) = (1 + 2/19)^n - 1 moderate, so the Monte-Carlo s.e. is trustworthy;
    # for n >> M the mean is carried by rare chains and the sample s.e. understates the error.
    sizes = schedules.sample_sizes(kind, base=20, generations=50, power=2.0)
    sim = gaussian.simulate(6, sample_size=tuple(sizes), generations=50, replicates=R)
    w2 = sim.mean.astype(np.float64) ** 2 + (sim.std.astype(np.float64) - 1) ** 2
    expected = theory.schedule_w2_squared(sizes)
    for n in (1, 10, 50):
        est, se = metrics.mean_and_se(w2[:, n])
        assert abs(est - expected[n]) < Z * se, (kind, n)


def test_superlinear_schedule_stays_bounded_and_constant_does_not():
    sizes = {k: schedules.sample_sizes(k, base=10, generations=5000, power=2.0) for k in schedules.KINDS}
    w2 = {k: theory.schedule_w2_squared(s) for k, s in sizes.items()}
    assert abs(w2["superlinear"][-1] - w2["superlinear"][2500]) < 1e-3  # converged
    assert w2["constant"][-1] > 100 * w2["superlinear"][-1]
    assert w2["linear"][-1] > w2["linear"][500] + 0.1  # harmonic: grows like log n / M_0


def test_points_and_stats_samplers_agree_in_distribution():
    kwargs = dict(sample_size=15, generations=30, replicates=R)
    pts, sts = (gaussian.simulate(8, sampler=s, **kwargs) for s in ("points", "stats"))
    for n in (1, 30):
        a, b = np.log(pts.std[:, n] ** 2), np.log(sts.std[:, n] ** 2)
        assert abs(a.mean() - b.mean()) < Z * np.sqrt(a.var() / R + b.var() / R)
        c, d = pts.mean[:, n] ** 2, sts.mean[:, n] ** 2
        assert abs(c.mean() - d.mean()) < Z * np.sqrt(c.var() / R + d.var() / R)
