"""The 1-D Gaussian chain whose synthetic data pass a Gaussian-kernel verifier (issue 21).

The verifier accepts a draw x with probability exp(-(x - b)^2 / (2 tau^2)). A draw of N(mu, s)
that it accepts is N(mu', s') with

    1 / s' = 1 / s + 1 / tau^2,        mu' = s' (mu / s + b / tau^2),

(the product of two Gaussian densities), so M accepted draws are M i.i.d. draws of N(mu', s').
The fit to them (ddof 1 or 0) gives, with Z ~ N(0, 1) and X ~ chi^2_{M-1} independent:

    mu_{n+1} - b = a(s_n) (mu_n - b) + sqrt(h(s_n) / M) Z,    a(s) = tau^2 / (s + tau^2),
    s_{n+1} = h(s_n) X / (M - ddof),                         h(s) = s tau^2 / (s + tau^2).

The variance is a Markov chain of its own (the sample mean and variance of Gaussian draws are
independent), and given its path the mean is a linear Gaussian recursion. `moments` propagates
the law of log s_n on a grid together with E[(mu_n - b); s_n] and E[(mu_n - b)^2; s_n]; the
kernel integrates the exact log-chi^2 density over each cell, so the only error is the grid's
(the tests compare with a finer grid and with the chains). Model 1 is the fit to the M original
draws of the truth N(0, 1) (not verified), as in every regime; index 0 is the truth.

Without the verifier (tau -> inf) a(s) = 1 and h(s) = s: the replace chain, whose moments
`theory.gaussian` gives in closed form (a test checks the grid reproduces them).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def tilted(mean, var, center: float, width: float):
    """(mean', var') of the accepted draws of N(mean, var) under the kernel verifier (b, tau)."""
    tau2 = float(width) ** 2
    var_acc = var * tau2 / (var + tau2)
    return var_acc * (mean / var + center / tau2), var_acc


def acceptance(mean, var, center: float, width: float):
    """P(accept) of one draw of N(mean, var): sqrt(tau^2 / (var + tau^2)) exp(-(mean - b)^2 / (2 (var + tau^2)))."""
    tau2 = float(width) ** 2
    return np.sqrt(tau2 / (var + tau2)) * np.exp(-((mean - center) ** 2) / (2 * (var + tau2)))


def mixed_fixed_point(real_fraction: float, width: float) -> float:
    """The variance the verified chain with a real share f settles at, for large M and b = mu_0 = 0
    (an approximation: it ignores the sampling noise and the spread between the two parts'
    means): s = f + (1 - f) h(s), i.e. s^2 + f (tau^2 - 1) s - f tau^2 = 0. f = 0: 0 (collapse)."""
    f, tau2 = float(real_fraction), float(width) ** 2
    return 0.5 * (-f * (tau2 - 1) + np.sqrt(f**2 * (tau2 - 1) ** 2 + 4 * f * tau2))


def _log_chi2_cdf(t, m: int, ddof: int):
    """P(log(X / (M - ddof)) <= t) for X ~ chi^2_{M-1}."""
    return stats.chi2.cdf((m - ddof) * np.exp(t), m - 1)


def moments(generations: int, *, sample_size: int, center: float, width: float, ddof: int = 1,
            grid_step: float | None = None) -> dict[str, np.ndarray]:
    """E[mu_n], E[(mu_n - mu_0)^2] (mu_0 = 0), E[sigma_n^2] and the grid's probability mass for
    n = 0..G, each [G + 1] float64 (index 0: the truth N(0, 1)). `width` = inf: no verifier
    (replace). The grid of log s spans where E[s_n] and the mass live (the upper tail carries
    E[s_n]: under replace it stays 1 while the median collapses)."""
    m, g_max = int(sample_size), int(generations)
    if m < 3 or g_max < 1:
        raise ValueError(f"sample_size must be >= 3 and generations >= 1, got {sample_size!r}, {generations!r}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    tau2, b = float(width) ** 2, float(center)
    noise_sd = np.sqrt(stats.chi2(m - 1).var()) / (m - 1)  # sd of log(X / (M - 1)), about sqrt(2 / (M - 1))
    step = grid_step or min(0.02, noise_sd / 8)
    walk = 2.0 * g_max / (m - 1)  # at most the variance of replace's log s_n
    low = -walk / 2 - 8 * np.sqrt(walk) - 4 + min(0.0, np.log(tau2 / (g_max + 1.0)))  # s_n <~ tau^2 / n
    high = walk + 8 * np.sqrt(walk) + 4
    edges = np.arange(low, high + step, step)
    y = 0.5 * (edges[:-1] + edges[1:])  # log s at the cell centres
    s = np.exp(y)
    h = s if not np.isfinite(tau2) else s * tau2 / (s + tau2)
    a = np.ones_like(s) if not np.isfinite(tau2) else tau2 / (s + tau2)
    kernel = _kernel(edges, np.log(h), m, ddof, int(np.ceil(12 * noise_sd / step)) + 2)
    # model 1: the fit to M draws of N(0, 1), its mean and variance independent
    p = np.diff(_log_chi2_cdf(edges, m, ddof))
    m1 = (0.0 - b) * p
    m2 = (1.0 / m + b**2) * p
    out = {k: np.empty(g_max + 1) for k in ("mean", "mean_sq", "sigma2", "mass")}
    out["mean"][0], out["mean_sq"][0], out["sigma2"][0], out["mass"][0] = 0.0, 0.0, 1.0, 1.0
    for n in range(1, g_max + 1):
        mass = p.sum()
        out["mass"][n] = mass
        out["sigma2"][n] = (s * p).sum()
        out["mean"][n] = b * mass + m1.sum()
        out["mean_sq"][n] = m2.sum() + 2 * b * m1.sum() + b**2 * mass
        if n < g_max:
            p, m1, m2 = kernel @ p, kernel @ (a * m1), kernel @ (a**2 * m2 + h / m * p)
    return out


def _kernel(edges, log_h, m: int, ddof: int, half_width: int):
    """Sparse [cells, cells] transition matrix: column i is the law of log s' over the cells given
    s = s_i, the exact log-chi^2 probability of each cell within half_width cells of its centre."""
    from scipy import sparse

    cells = len(edges) - 1
    step = edges[1] - edges[0]
    centre = np.round((log_h + np.log((m - 1) / (m - ddof)) - edges[0]) / step).astype(int)
    cols = np.repeat(np.arange(cells), 2 * half_width + 1)
    rows = (centre[:, None] + np.arange(-half_width, half_width + 1)[None, :]).ravel()
    inside = (rows >= 0) & (rows < cells)
    rows, cols = rows[inside], cols[inside]
    probs = (_log_chi2_cdf(edges[rows + 1] - log_h[cols], m, ddof) - _log_chi2_cdf(edges[rows] - log_h[cols], m, ddof))
    return sparse.csr_matrix((probs, (rows, cols)), shape=(cells, cells))
