"""Closed-form squared L2 distance between Gaussian mixtures (the paper's GMM distance figure).

For densities p = sum_i a_i N(mu_i, A_i) and q = sum_j b_j N(nu_j, B_j) on R^d,

    L2^2(p, q) = int (p - q)^2 dx = <p, p> - 2 <p, q> + <q, q>,   <p, q> = int p q dx,

and each cross term is a sum over component pairs of the integral of a product of two Gaussian
densities, which is itself a Gaussian density evaluated at one mean (the Gaussian product
identity; Petersen & Pedersen, "The Matrix Cookbook", 2012, sec. 8.1.8 "Product of gaussian
densities"; equivalently the marginal of a linear-Gaussian model, Bishop, PRML 2006, eq. 2.115):

    int N(x | mu, A) N(x | nu, B) dx = N(mu | nu, A + B)
        = (2 pi)^(-d/2) det(A + B)^(-1/2) exp(-(mu - nu)^T (A + B)^(-1) (mu - nu) / 2),

so <p, q> = sum_ij a_i b_j N(mu_i | nu_j, A_i + B_j) (used for mixture registration by Jian &
Vemuri, IEEE TPAMI 33(8), 2011). Shumailov et al. plot this distance between GMM_0 and GMM_i.

Everything is float64 numpy, broadcast over leading batch dimensions, so one call covers
[replicates, generations] at once. Mixtures are (weights [..., K], means [..., K, d],
covs [..., K, d, d]) tuples, e.g. `modelcollapse.gmm.GMMParams`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_overlap", "inner_product", "l2_squared", "self_inner_single"]


def gaussian_overlap(mean1, cov1, mean2, cov2) -> np.ndarray:
    """int N(x | mean1, cov1) N(x | mean2, cov2) dx = N(mean1 | mean2, cov1 + cov2); broadcast, [...]."""
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    s = np.asarray(cov1, np.float64) + np.asarray(cov2, np.float64)  # [..., d, d]
    d = s.shape[-1]
    diff = mean1 - mean2  # [..., d]
    chol = np.linalg.cholesky(s)
    y = np.linalg.solve(chol, diff[..., None])[..., 0]  # L^{-1} diff; chol is lower, solve is exact
    log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), -1)
    return np.exp(-0.5 * (d * np.log(2 * np.pi) + log_det + np.sum(y * y, -1)))


def inner_product(p, q) -> np.ndarray:
    """<p, q> = int p(x) q(x) dx = sum_ij a_i b_j N(mu_i | nu_j, A_i + B_j) for mixtures p, q; [...]."""
    (a, mu, cov_a), (b, nu, cov_b) = ((np.asarray(t, np.float64) for t in m) for m in (p, q))
    overlap = gaussian_overlap(mu[..., :, None, :], cov_a[..., :, None, :, :],
                               nu[..., None, :, :], cov_b[..., None, :, :, :])  # [..., K_p, K_q]
    return np.sum(a[..., :, None] * b[..., None, :] * overlap, axis=(-2, -1))


def l2_squared(p, q) -> np.ndarray:
    """Squared L2 distance int (p - q)^2 dx between mixtures p and q, broadcast over batch dims; [...].

    Exactly 0 for identical parameters; a rounding-level negative value (the three terms nearly
    cancel for close mixtures) is clipped to 0.
    """
    return np.maximum(inner_product(p, p) - 2.0 * inner_product(p, q) + inner_product(q, q), 0.0)


def self_inner_single(cov) -> np.ndarray:
    """<N(mu, S), N(mu, S)> = (4 pi)^(-d/2) det(S)^(-1/2): how a collapsing component blows up L2; [...]."""
    cov = np.asarray(cov, np.float64)
    d = cov.shape[-1]
    return (4 * np.pi) ** (-d / 2) * np.exp(-0.5 * np.linalg.slogdet(cov)[1])
