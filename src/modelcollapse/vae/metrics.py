"""Image-quality metrics for the recursive VAE: class histograms, precision/recall, Frechet distance, KDE.

Pure numpy functions on arrays that a model has already produced (class probabilities, features,
latent means); no model code here. Everything is computed in float64: the inputs are at most a few
tens of thousands of points, and float64 keeps the distance and matrix-square-root arithmetic far
from the tolerances the tests hold it to.

- `class_histogram`, `entropy`, `mean_confidence`: mode loss seen through a digit classifier
  trained once on real data (a collapsing generator drifts towards few classes: the histogram's
  entropy falls from log(10) and its confidence changes).
- `precision_recall`: Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models" (NeurIPS), with k-NN balls in a feature space (default k = 3).
- `frechet_distance`: the Frechet distance between Gaussian fits of two feature sets (Heusel et
  al. 2017, the FID formula), here in the digit classifier's penultimate-layer features.
- `kde`: a Gaussian kernel density estimate on a grid (the paper's latent-mean densities under
  the generation-0 encoder), Scott's rule by default, as `scipy.stats.gaussian_kde`.
"""

from __future__ import annotations

import numpy as np

# Rows per block of pairwise distances: a block is [BLOCK, N] float64, 80 MB for N = 10k.
BLOCK = 1024


def class_histogram(x: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of samples in each class, [n_classes], summing to 1.

    `x` is either integer labels [N] or class probabilities [N, n_classes]; probabilities are
    turned into hard labels by their argmax (the classifier's decision), so that the histogram
    counts images, not probability mass.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    x = np.asarray(x)
    if x.ndim == 2:
        if x.shape[1] != n_classes:
            raise ValueError(f"x has {x.shape[1]} class columns but n_classes={n_classes}")
        labels = np.argmax(x, axis=1)
    elif x.ndim == 1:
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"x must be integer labels [N] or probabilities [N, K], got dtype {x.dtype}")
        labels = x
    else:
        raise ValueError(f"x must be labels [N] or probabilities [N, K], got shape {x.shape}")
    if labels.size == 0:
        raise ValueError("x must hold at least one sample")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"x has labels outside [0, {n_classes})")
    return np.bincount(labels, minlength=n_classes) / labels.size


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats (natural log) of distributions along the last axis, [...].

    `p` [..., K] is non-negative and is normalised along the last axis first (so counts work too);
    0 log 0 = 0. Uniform over K classes gives log K (log 10 ~ 2.303 for digits); one class gives 0.
    """
    p = np.asarray(p, np.float64)
    if p.ndim < 1 or p.shape[-1] == 0:
        raise ValueError(f"p must have a non-empty last axis, got shape {p.shape}")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("p must be finite and non-negative")
    total = p.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("p must have a positive sum along its last axis")
    p = p / total
    logp = np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    return -np.sum(p * logp, axis=-1)


def mean_confidence(probs: np.ndarray) -> float:
    """Mean over samples of the largest class probability; probs is [N, K]."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probs must be [N, K] with N >= 1, got shape {probs.shape}")
    return float(np.mean(np.max(probs, axis=1)))


def _as_points(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be [N, F] with N >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x


def _sq_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)] by |a|^2 + |b|^2 - 2 a.b (one matmul, BLAS).

    The expansion loses digits when two points are close; in float64 the error is ~1e-16 of the
    squared norms, far below any k-NN radius of real features. Clipped at 0 for the same reason.
    """
    d2 = np.sum(a * a, axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


def knn_radii(x: np.ndarray, *, k: int = 3) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set, [N].

    The point itself is excluded (it sits at distance 0): as in the reference implementation, the
    radius is entry k (0-based) of the sorted distances including the point itself, so a duplicate
    of the point counts as a neighbour at distance 0.
    """
    x = _as_points(x, "x")
    if k < 1 or k >= x.shape[0]:
        raise ValueError(f"k must be in [1, N - 1] = [1, {x.shape[0] - 1}], got {k}")
    x_sq = np.sum(x * x, axis=1)
    radii_sq = np.empty(x.shape[0])
    for start in range(0, x.shape[0], BLOCK):
        d2 = _sq_distances(x[start:start + BLOCK], x, x_sq)  # [block, N]
        radii_sq[start:start + BLOCK] = np.partition(d2, k, axis=1)[:, k]
    return np.sqrt(radii_sq)


def inside_balls(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each query lies in the union of the closed balls B(centres[i], radii[i]), [Q] bool."""
    queries, centres = _as_points(queries, "queries"), _as_points(centres, "centres")
    if queries.shape[1] != centres.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} features, centres {centres.shape[1]}")
    radii_sq = np.asarray(radii, np.float64) ** 2
    if radii_sq.shape != (centres.shape[0],):
        raise ValueError(f"radii must be [{centres.shape[0]}], got shape {radii_sq.shape}")
    c_sq = np.sum(centres * centres, axis=1)
    inside = np.empty(queries.shape[0], bool)
    for start in range(0, queries.shape[0], BLOCK):
        d2 = _sq_distances(queries[start:start + BLOCK], centres, c_sq)  # [block, C]
        inside[start:start + BLOCK] = np.any(d2 <= radii_sq[None, :], axis=1)  # <=: closed balls
    return inside


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, *, k: int = 3,
                     real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of generated vs real samples.

    Each set's manifold is the union of balls around its points with radius the distance to the
    point's k-th nearest neighbour in its own set (the point itself excluded). Precision = share
    of generated points inside the real manifold (quality); recall = share of real points inside
    the generated manifold (coverage). real_features [N, F], fake_features [M, F]; distances are
    taken in blocks of rows, so 10k x 10k needs ~80 MB at a time. real_radii: `knn_radii(real,
    k=k)` when the caller already has them (a fixed real set scored against many generated ones:
    the N x N distances are most of the cost).
    """
    real = _as_points(real_features, "real_features")
    fake = _as_points(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features have {real.shape[1]} features, fake_features {fake.shape[1]}")
    if k < 1 or k >= min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be in [1, min(N, M) - 1], got {k} for N={real.shape[0]}, M={fake.shape[0]}")
    if real_radii is None:
        real_radii = knn_radii(real, k=k)
    elif np.shape(real_radii) != (real.shape[0],):
        raise ValueError(f"real_radii must have shape ({real.shape[0]},), got {np.shape(real_radii)}")
    precision = inside_balls(fake, real, real_radii).mean()
    recall = inside_balls(real, fake, knn_radii(fake, k=k)).mean()
    return float(precision), float(recall)


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] of features [N, F] (ddof=1, as the FID reference code)."""
    x = _as_points(features, "features")
    if x.shape[0] < 2:
        raise ValueError(f"features need at least 2 rows for a covariance, got {x.shape[0]}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False, ddof=1))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigh; rounding-negative eigenvalues -> 0."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def frechet_distance_from_fits(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}): the squared 2-Wasserstein distance of two Gaussians.

    Tr (S1 S2)^{1/2} is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix sqrt(S1) S2 sqrt(S1), which has the same eigenvalues as S1 S2 (AB and BA share their
    non-zero spectrum, with A = sqrt(S1), B = sqrt(S1) S2). Why not scipy.linalg.sqrtm(S1 @ S2),
    as the FID reference code does: S1 S2 is not symmetric, so its Schur-based square root is
    complex with spurious imaginary parts and unstable when the covariances are singular or
    ill-conditioned (features of a collapsed generator often are: the reference code then adds
    eps * I and retries). The symmetric form goes through eigh, which is backward stable, and
    its eigenvalues are real and >= 0 up to rounding, which we clip.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or cov1.shape != (f, f) or cov2.shape != (f, f):
        raise ValueError(f"need mu [F] and cov [F, F] of one F; got mu1 {mu1.shape}, cov1 {cov1.shape}, "
                         f"mu2 {mu2.shape}, cov2 {cov2.shape}")
    root1 = _psd_sqrt(cov1)
    m = root1 @ cov2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)  # symmetrised: removes the matmuls' rounding asymmetry
    tr_sqrt = np.sum(np.sqrt(np.maximum(eig, 0.0)))
    d = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt
    return float(max(d, 0.0))  # >= 0 in exact arithmetic; rounding can give -1e-13


def frechet_distance(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of real [N, F] and generated [M, F] features."""
    real, fake = _as_points(real_features, "real_features"), _as_points(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features have {real.shape[1]} features, fake_features {fake.shape[1]}")
    return frechet_distance_from_fits(*gaussian_fit(real), *gaussian_fit(fake))


def scott_factor(n: int, d: int) -> float:
    """Scott's rule bandwidth factor n^(-1/(d+4)) (scipy.stats.gaussian_kde's default)."""
    return float(n) ** (-1.0 / (d + 4))


def kde(values: np.ndarray, grid: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density estimate of `values` evaluated at `grid`, [M].

    values [N] (1-D) or [N, d]; grid [M] or [M, d]. The kernel covariance is
    - bandwidth None: Scott's rule, scott_factor(N, d)^2 times the data covariance (ddof=1), as
      scipy.stats.gaussian_kde(values.T)(grid.T) computes;
    - bandwidth h > 0: h^2 I, i.e. h is the kernel's standard deviation in data units
      (gaussian_kde with bw_method = h / std(values) in 1-D).
    The density integrates to 1 over R^d. Evaluated in blocks of grid points.
    """
    x = np.asarray(values, np.float64)
    g = np.asarray(grid, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    g = g[:, None] if g.ndim == 1 else g
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"values must be [N] or [N, d] with N >= 2, got shape {np.shape(values)}")
    if g.ndim != 2 or g.shape[1] != x.shape[1]:
        raise ValueError(f"grid must be [M] or [M, d] with d = {x.shape[1]}, got shape {np.shape(grid)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(g))):
        raise ValueError("values and grid must be finite")
    n, d = x.shape
    if bandwidth is None:
        cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=1)) * scott_factor(n, d) ** 2
    else:
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 or None, got {bandwidth}")
        cov = np.eye(d) * float(bandwidth) ** 2
    # Whiten with the Cholesky factor: the kernel becomes a standard normal in the new coordinates.
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("values have a singular covariance (constant or collinear); pass a bandwidth") from None
    xw = np.linalg.solve(chol, x.T).T  # [N, d]
    gw = np.linalg.solve(chol, g.T).T  # [M, d]
    log_norm = -0.5 * d * np.log(2 * np.pi) - np.sum(np.log(np.diag(chol))) - np.log(n)
    x_sq = np.sum(xw * xw, axis=1)
    out = np.empty(g.shape[0])
    for start in range(0, g.shape[0], BLOCK):
        d2 = _sq_distances(gw[start:start + BLOCK], xw, x_sq)  # [block, N]
        out[start:start + BLOCK] = np.exp(-0.5 * d2 + log_norm).sum(axis=1)
    return out
