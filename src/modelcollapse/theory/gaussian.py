"""Closed-form theory for recursive Gaussian fitting, overlaid on every simulation.

Setting (Shumailov et al., arXiv 2305.17493 sec. 4.2; Nature 631 (2024) Methods, "Gaussian
model"): generation i is N(mu_i, sigma_i^2); it draws M_i samples, and generation i+1 is the
sample mean and the sample standard deviation with `ddof` (1: unbiased, 0: maximum likelihood).
Start: N(0, 1). Because the sample mean and variance of normal data are independent,

    mu_{i+1}      = mu_i + sigma_i * zbar_i,        zbar_i ~ N(0, 1/M_i)
    sigma_{i+1}^2 = sigma_i^2 * S_i,                S_i = chi2_{M_i - 1} / (M_i - ddof)

with all zbar_i, S_i independent. Every formula below follows from these two lines:

- E[sigma_n^2]   = prod_{i<n} E[S_i],   E[S_i] = (M_i - 1)/(M_i - ddof)
  (unbiased: 1; MLE: ((M-1)/M)^n -- the Nature paper's eq. for the MLE drift).
- E[mu_n^2]      = sum_{i<n} E[sigma_i^2] / M_i  (martingale increments; unbiased: n/M).
- log sigma_n^2  = sum_{i<n} log S_i, a sum of independent terms with
  E[log S] = digamma(k/2) + log 2 - log(M - ddof), Var[log S] = trigamma(k/2), k = M - 1
  (moments of log chi-square). So sigma_n^2 -> 0 almost surely although E[sigma_n^2] = 1
  for the unbiased estimator: the typical sigma_n^2 is exp(n E[log S]).
- E[sigma_n]     = prod_{i<n} c_i,  c_i = E[sqrt(S_i)] = sqrt(2/(M_i - ddof)) Gamma(M_i/2)/Gamma(k_i/2).
- W2^2(N(0,1), N(mu_n, sigma_n^2)) = mu_n^2 + (sigma_n - 1)^2, hence
  E[W2^2] = E[mu_n^2] + E[sigma_n^2] + 1 - 2 E[sigma_n]
  (unbiased: sum 1/M_i + 2 (1 - prod c(M_i)), the bound in the Nature paper's Theorem 3.1 discussion).

All functions take the per-generation sample sizes `sample_sizes` = [M_0, ..., M_{G-1}] (so
schedules work) and return arrays over generations n = 0..G (index 0 = the original N(0, 1)).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["ESTIMATORS", "ddof_of", "log_s_moments", "expected_sigma2", "second_moment_sigma2", "c_factor",
           "expected_sigma", "var_mean", "expected_log_sigma2", "var_log_sigma2", "median_sigma2",
           "expected_w2_squared", "abs_mean_error_quantile", "abs_std_error_quantile", "expected_log_det",
           "var_log_det", "expected_mean_sq_dist", "expected_trace", "schedule_w2_squared"]

ESTIMATORS = {"unbiased": 1, "mle": 0}


def ddof_of(estimator: str) -> int:
    try:
        return ESTIMATORS[estimator]
    except KeyError:
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {estimator!r}") from None


def _sizes(sample_sizes) -> np.ndarray:
    m = np.atleast_1d(np.asarray(sample_sizes, dtype=np.float64))
    if np.any(m < 2):
        raise ValueError(f"sample_sizes must all be >= 2 (a standard deviation needs two points), got min {m.min()}")
    return m


def _cum(per_generation: np.ndarray, op) -> np.ndarray:
    """[G] per-generation factors -> [G+1] cumulative values with the identity at n = 0."""
    identity = 0.0 if op is np.cumsum else 1.0
    return np.concatenate([[identity], op(per_generation)])


def log_s_moments(sample_sizes, estimator: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance and third cumulant of log S_i for each generation i; each [G]."""
    m, ddof = _sizes(sample_sizes), ddof_of(estimator)
    half_k = (m - 1) / 2
    mean = special.digamma(half_k) + np.log(2.0) - np.log(m - ddof)
    return mean, special.polygamma(1, half_k), special.polygamma(2, half_k)


def expected_sigma2(sample_sizes, estimator: str) -> np.ndarray:
    """E[sigma_n^2], [G+1]."""
    m, ddof = _sizes(sample_sizes), ddof_of(estimator)
    return _cum((m - 1) / (m - ddof), np.cumprod)


def second_moment_sigma2(sample_sizes, estimator: str) -> np.ndarray:
    """E[sigma_n^4] = prod E[S_i^2], E[chi2_k^2] = k^2 + 2k; gives Monte-Carlo errors of E[sigma_n^2]."""
    m, ddof = _sizes(sample_sizes), ddof_of(estimator)
    k = m - 1
    return _cum((k * k + 2 * k) / (m - ddof) ** 2, np.cumprod)


def c_factor(sample_sizes, estimator: str = "unbiased") -> np.ndarray:
    """c(M) = E[sqrt(S)] = sqrt(2/(M - ddof)) Gamma(M/2) / Gamma((M-1)/2), [G]; in log space for large M."""
    m, ddof = _sizes(sample_sizes), ddof_of(estimator)
    return np.exp(0.5 * np.log(2.0 / (m - ddof)) + special.gammaln(m / 2) - special.gammaln((m - 1) / 2))


def expected_sigma(sample_sizes, estimator: str) -> np.ndarray:
    """E[sigma_n], [G+1]."""
    return _cum(c_factor(sample_sizes, estimator), np.cumprod)


def var_mean(sample_sizes, estimator: str) -> np.ndarray:
    """Var(mu_n) = E[mu_n^2] = sum_{i<n} E[sigma_i^2]/M_i, [G+1]; n/M for the unbiased estimator."""
    m = _sizes(sample_sizes)
    return _cum(expected_sigma2(m, estimator)[:-1] / m, np.cumsum)


def expected_log_sigma2(sample_sizes, estimator: str) -> np.ndarray:
    """E[log sigma_n^2] = sum_{i<n} E[log S_i] (exact), [G+1]."""
    return _cum(log_s_moments(sample_sizes, estimator)[0], np.cumsum)


def var_log_sigma2(sample_sizes, estimator: str) -> np.ndarray:
    """Var[log sigma_n^2] = sum_{i<n} trigamma(k_i/2) (exact), [G+1]."""
    return _cum(log_s_moments(sample_sizes, estimator)[1], np.cumsum)


def median_sigma2(sample_sizes, estimator: str) -> np.ndarray:
    """Median of sigma_n^2, [G+1].

    log sigma_n^2 is a sum of n independent terms, so its median is its mean minus the
    first Cornish-Fisher correction kappa_3 / (6 kappa_2) (cumulants of the sum); the
    correction is O(1/M) and does not grow with n. The median of sigma_n^2 is exp of that.
    """
    mean, k2, k3 = (_cum(c, np.cumsum) for c in log_s_moments(sample_sizes, estimator))
    correction = np.divide(k3, 6 * k2, out=np.zeros_like(k3), where=k2 > 0)
    return np.exp(mean - correction)


def expected_w2_squared(sample_sizes, estimator: str) -> np.ndarray:
    """E[W2^2] between N(0, 1) and N(mu_n, sigma_n^2), [G+1] (exact)."""
    return (var_mean(sample_sizes, estimator) + expected_sigma2(sample_sizes, estimator)
            + 1.0 - 2.0 * expected_sigma(sample_sizes, estimator))


def abs_mean_error_quantile(sample_sizes, estimator: str, q: float) -> np.ndarray:
    """Approximate q-quantile of |mu_n - mu_0|, [G+1].

    mu_n is a Gaussian scale mixture; we take the variance along the typical path
    sigma_i^2 = median_sigma2(i), so |mu_n| is half-normal with scale sqrt(sum_i sigma_i^2 / M_i).
    Exact at n = 1 and while sigma_i stays near 1; it tracks the median closely in practice.
    """
    m = _sizes(sample_sizes)
    var_typical = _cum(median_sigma2(m, estimator)[:-1] / m, np.cumsum)
    return stats.norm.ppf((1 + q) / 2) * np.sqrt(var_typical)


def abs_std_error_quantile(sample_sizes, estimator: str, q: float, iters: int = 200) -> np.ndarray:
    """Approximate q-quantile of |sigma_n - sigma_0|, [G+1].

    Uses the normal (central-limit) approximation of log sigma_n^2 ~ N(E, Var) from
    `expected_log_sigma2` / `var_log_sigma2`, then solves P(|1 - exp(L/2)| <= t) = q for t by
    bisection. The CLT is accurate once n (or M) is moderately large.
    """
    mean = expected_log_sigma2(sample_sizes, estimator)
    sd = np.sqrt(var_log_sigma2(sample_sizes, estimator))
    out = np.zeros_like(mean)
    live = sd > 0
    mu, s = mean[live], sd[live]

    def cdf(t):
        upper = stats.norm.cdf((2 * np.log1p(t) - mu) / s)
        lower = np.where(t < 1, stats.norm.cdf((2 * np.log(np.clip(1 - t, 1e-300, None)) - mu) / s), 0.0)
        return upper - lower

    lo, hi = np.zeros_like(mu), np.full_like(mu, 1.0)
    while np.any(cdf(hi) < q):  # widen until the quantile is bracketed
        hi = np.where(cdf(hi) < q, hi * 2, hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = cdf(mid) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    out[live] = (lo + hi) / 2
    return out


# -- d-dimensional Gaussian (Nature 2024, Theorem 3.1) -------------------------------------------
# With the unbiased sample covariance, (M-1) S_i ~ Wishart_d(M-1, I) in whitened coordinates, and
# Sigma_{i+1} = L_i S_i L_i^T. By the Bartlett decomposition det((M-1) S) = prod_{j<d} chi2_{M-1-j},
# independent, so log det Sigma_n is a random walk with
#   E[log det S]   = sum_{j<d} digamma((M-1-j)/2) + d log 2 - d log(M - ddof)
#   Var[log det S] = sum_{j<d} trigamma((M-1-j)/2)
# (Muirhead 1982, Thm 3.2.14). E[Sigma_i] = Sigma_0 prod E[S] (unbiased: Sigma_0), so
#   E||mu_n - mu_0||^2 = tr(Sigma_0) sum_{i<n} E-factor_i / M_i  (unbiased: tr(Sigma_0) sum 1/M_i),
# i.e. tr(Sigma_0) times the 1-D `var_mean`.


def _log_det_moments(sample_sizes, estimator: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    m, ddof = _sizes(sample_sizes), ddof_of(estimator)
    if np.any(m < dim + 1):
        raise ValueError(f"sample_sizes must be >= dim + 1 = {dim + 1} for a full-rank covariance")
    half = (m[:, None] - 1 - np.arange(dim)[None, :]) / 2  # [G, d]
    mean = special.digamma(half).sum(axis=1) + dim * np.log(2.0) - dim * np.log(m - ddof)
    return mean, special.polygamma(1, half).sum(axis=1)


def expected_log_det(sample_sizes, estimator: str, dim: int, log_det0: float = 0.0) -> np.ndarray:
    """E[log det Sigma_n] = log det Sigma_0 + sum_{i<n} E[log det S_i] (exact), [G+1]."""
    return log_det0 + _cum(_log_det_moments(sample_sizes, estimator, dim)[0], np.cumsum)


def var_log_det(sample_sizes, estimator: str, dim: int) -> np.ndarray:
    """Var[log det Sigma_n] = sum_{i<n} sum_j trigamma((M_i-1-j)/2) (exact), [G+1]."""
    return _cum(_log_det_moments(sample_sizes, estimator, dim)[1], np.cumsum)


def expected_mean_sq_dist(sample_sizes, estimator: str, trace0: float) -> np.ndarray:
    """E||mu_n - mu_0||^2 = tr(Sigma_0) * sum_{i<n} E[tr Sigma_i]/(tr(Sigma_0) M_i), [G+1] (exact)."""
    return trace0 * var_mean(sample_sizes, estimator)


def expected_trace(sample_sizes, estimator: str, trace0: float) -> np.ndarray:
    """E[tr Sigma_n] = tr(Sigma_0) prod E[S_i] (unbiased: constant), [G+1] (exact)."""
    return trace0 * expected_sigma2(sample_sizes, estimator)


def schedule_w2_squared(sample_sizes) -> np.ndarray:
    """E[W2^2] under a schedule, unbiased estimator: sum_{i<n} 1/M_i + 2 (1 - prod_{i<n} c(M_i)), [G+1]."""
    return expected_w2_squared(sample_sizes, "unbiased")
