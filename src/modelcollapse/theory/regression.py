"""Exact expected squared parameter error E||b_n - b*||^2 of the recursive least-squares chains
(`modelcollapse.regression`), model n trained on generation n - 1's labels (n >= 1; 0 at n = 0).

Both regimes are linear in the past noise. With eta_k = (X_k^T X_k)^{-1} X_k^T sigma eps_k, the
error of one OLS fit to T rows labelled by a model b with fresh noise is b - b* + eta:

- replace (Dohmatob, Feng and Kempe 2024, Theorem 1 with Gaussian design): e_n = e_{n-1} + eta_n,
  independent terms, so E||e_n||^2 = n sigma^2 E tr((X^T X)^{-1}); for a fresh Gaussian design
  E (X^T X)^{-1} = I / (T - d - 1) (the inverse-Wishart mean, T > d + 1), giving
  n sigma^2 d / (T - d - 1); for a fixed design, n sigma^2 tr((X^T X)^{-1}).
- accumulate with a fixed design (Gerstgrasser et al. 2024, Theorem 1): the pool holds the same X
  n times, so b_n is the average of the n generations' labels' fits, and
  e_n = e_{n-1} + eta_n / n: E||e_n||^2 = sigma^2 tr((X^T X)^{-1}) sum_{k=1}^n 1/k^2, bounded by
  pi^2/6 times the first model's error.
- mix with fresh real labels and a fixed design: a d x d recursion of the error covariance
  (`mix_error`) and its stationary level (`mix_stationary_error`): mixing real data keeps the
  error finite (Bertrand et al. 2024 and Kazdan et al. 2024 make the same point for other models).
- every other regime and design (accumulate_subsample, mix with the original data, anything but
  replace on fresh rows): the training design is random (a subset of pooled rows, or rows that
  earlier fits saw), X^T X with it, and no closed form is known. `selection_error` gives the law
  exactly in the label noise and by Monte Carlo over the designs only, running the regime's own
  function on row ids; for the deterministic cases it reproduces the closed forms above.
"""

from __future__ import annotations

import numpy as np


def fit_error(*, dim: int, sample_size: int, noise: float, design: np.ndarray | None = None) -> float:
    """E||eta||^2 of one OLS fit: sigma^2 d / (T - d - 1) (fresh design) or sigma^2 tr((X^T X)^{-1})."""
    if design is None:
        if sample_size <= dim + 1:
            raise ValueError(f"a fresh Gaussian design needs sample_size > dim + 1 = {dim + 1}, got {sample_size}")
        return noise ** 2 * dim / (sample_size - dim - 1)
    x = np.asarray(design, np.float64)
    return noise ** 2 * float(np.trace(np.linalg.inv(x.T @ x)))


def replace_error(n, **kwargs) -> np.ndarray:
    """E||b_n - b*||^2 under replace: n times one fit's error."""
    return np.asarray(n, np.float64) * fit_error(**kwargs)


def accumulate_error(n, *, dim: int, sample_size: int, noise: float, design: np.ndarray) -> np.ndarray:
    """E||b_n - b*||^2 under accumulate with a fixed design: one fit's error times sum_{k<=n} 1/k^2."""
    n = np.atleast_1d(np.asarray(n, np.int64))
    partial = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, max(int(n.max()), 1) + 1) ** 2)])
    return fit_error(dim=dim, sample_size=sample_size, noise=noise, design=design) * partial[n]


def mix_error(n, *, real_rows: int, noise: float, design: np.ndarray) -> np.ndarray:
    """E||b_n - b*||^2 under mix with fresh real labels and a fixed design (`regression.family`):
    model g + 1 (g >= 1) fits the first `real_rows` rows of X labelled by the truth and the first
    T - real_rows rows labelled by model g, each with fresh noise.

    With X_r, X_s those rows and A = X_r^T X_r + X_s^T X_s, e_{g+1} = P e_g + A^{-1} (X_r^T sigma eps_r
    + X_s^T sigma eps_s), P = A^{-1} X_s^T X_s, so the error covariance follows exactly
    C_{g+1} = P C_g P^T + sigma^2 A^{-1} from C_1 = sigma^2 (X^T X)^{-1} (model 1: the original
    data), and E||e_n||^2 = tr C_n. The spectral radius of P is below 1 when real_rows >= d (X_r of
    full rank), so C_n converges to the stationary error of the Lyapunov equation C = P C P^T + sigma^2 A^{-1}.
    """
    x = np.asarray(design, np.float64)
    t = x.shape[0]
    xr, xs = x[:real_rows], x[: t - real_rows]
    a_inv = np.linalg.inv(xr.T @ xr + xs.T @ xs)
    p = a_inv @ xs.T @ xs
    n = np.atleast_1d(np.asarray(n, np.int64))
    cov = noise ** 2 * np.linalg.inv(x.T @ x)
    out = np.zeros(int(n.max()) + 1)
    for g in range(1, len(out)):
        out[g] = np.trace(cov)
        cov = p @ cov @ p.T + noise ** 2 * a_inv
    return out[n]


def mix_stationary_error(*, real_rows: int, noise: float, design: np.ndarray) -> float:
    """lim E||b_n - b*||^2 of `mix_error`: tr C for C = P C P^T + sigma^2 A^{-1} (finite when X_r has rank d)."""
    from scipy.linalg import solve_discrete_lyapunov

    x = np.asarray(design, np.float64)
    xr, xs = x[:real_rows], x[: x.shape[0] - real_rows]
    if np.linalg.matrix_rank(xr) < x.shape[1]:
        raise ValueError(f"real_rows = {real_rows} rows of the design have rank below d = {x.shape[1]}: "
                         f"the error has no stationary level")
    a_inv = np.linalg.inv(xr.T @ xr + xs.T @ xs)
    p = a_inv @ xs.T @ xs
    return float(np.trace(solve_discrete_lyapunov(p, noise ** 2 * a_inv)))


def expected_error(regime, n, *, dim: int, sample_size: int, noise: float, design: np.ndarray | None) -> np.ndarray:
    """E||b_n - b*||^2 under `regime` where an exact law exists, else NaN; `design` None is a fresh
    Gaussian design. Exact: replace (either design), accumulate and mix with fresh real labels
    (fixed design). The others refit on a random subset of rows, so X^T X is random and the error
    no longer follows from a covariance recursion: no closed form, NaN."""
    from modelcollapse import regimes

    n = np.atleast_1d(np.asarray(n, np.int64))
    name, params = regimes.spec(regime)
    params = dict(params)
    kwargs = dict(dim=dim, sample_size=sample_size, noise=noise, design=design)
    if name == "replace" or (name == "mix" and params.get("real_fraction") == 0):
        return replace_error(n, **kwargs)
    if design is not None and name == "accumulate":
        return accumulate_error(n, **kwargs)
    if design is not None and name == "mix" and params.get("real_source") == "fresh":
        real_rows = int(np.floor(params["real_fraction"] * sample_size + 0.5))
        return mix_error(n, real_rows=real_rows, noise=noise, design=design)
    return np.full(n.shape, np.nan)


class _RowOps:
    """Set operations on pool row ids (NumPy), for `selection_error`: the regime's own function
    picks the rows, with a NumPy generator in place of the chain's keys."""

    def __init__(self, rng, table):
        self.rng, self.table = rng, table

    def subset(self, key, data, k):
        return data[self.rng.choice(len(data), int(k), replace=False)]

    def union(self, a, b):
        return np.concatenate([a, b])

    def head(self, data, k):
        return data[: int(k)]

    def draw_truth(self, key, n):
        return self.table.add(model=0, n=int(n))


class _Rows:
    """Every labelled row so far (its id is its noise's column): the model that labelled it and its
    features, the fixed design's first n rows or fresh standard normal rows."""

    def __init__(self, capacity: int, design, dim: int, rng):
        self.model = np.zeros(capacity, np.int64)
        self.x = np.zeros((capacity, dim))
        self.design, self.rng, self.size = design, rng, 0

    def add(self, *, model: int, n: int) -> np.ndarray:
        ids = np.arange(self.size, self.size + n)
        self.model[ids] = model
        self.x[ids] = self.design[:n] if self.design is not None else self.rng.standard_normal((n, self.x.shape[1]))
        self.size += n
        return ids


def selection_error(regime, generations: int, *, sample_size: int, dim: int, noise: float, design: np.ndarray | None,
                    draws: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """E||b_n - b*||^2 of the chain of `regression.family` under any regime, n = 0..G, and its
    standard error: exact in the label noise, Monte Carlo over the training designs only (the
    regime's row selections, and the rows themselves for a fresh design, `design` None).

    Given the rows each generation trains on, every error is linear in the label noises: e_n =
    L_n eps with e_{g+1} = A^{-1} sum_i x_i (x_i^T e_{k(i)} + sigma eps_i), A the training rows'
    X^T X and k(i) the model that labelled row i, so E[||e_n||^2 | designs] = sigma^2 ||L_n||_F^2
    exactly. Averaged over `draws` sequences of designs (the selections drawn by running the
    regime's own function on row ids), this is the law where a random training design leaves no
    closed form: accumulate_subsample, mix with the original data, anything on a fresh design but
    replace. With a fixed design and a deterministic regime one draw gives the exact law.
    """
    from modelcollapse import regimes

    x = None if design is None else np.asarray(design, np.float64)
    t, d = sample_size, dim
    spec = regimes.spec(regime)
    rng = np.random.default_rng(seed)
    capacity = (2 * generations + 1) * t
    totals = np.zeros((draws, generations + 1))
    for draw in range(draws):
        rows = _Rows(capacity, x, d, rng)
        ops = _RowOps(rng, rows)
        coeffs = [np.zeros((d, capacity))]  # L_0: the truth has no error
        original = rows.add(model=0, n=t)
        pool, training = original, original
        for g in range(generations):
            if g > 0:
                latest = rows.add(model=g, n=t)
                pool = np.concatenate([pool, latest])
                inputs = regimes.RegimeInputs(ops=ops, real_key=None, subset_key=None, original=original, pool=pool,
                                              latest=latest, m=t, generation=g, draw_truth=ops.draw_truth)
                training = regimes.build(spec, inputs)
            xs = rows.x[training]
            labels = np.stack([coeffs[m] for m in rows.model[training]])  # [n, d, capacity]
            fresh = np.zeros((capacity, d))
            np.add.at(fresh, training, xs)  # each training row's own noise, twice if chosen twice
            coeffs.append(np.linalg.solve(xs.T @ xs, np.einsum("id,ie,iek->dk", xs, xs, labels) + noise * fresh.T))
            totals[draw, g + 1] = np.sum(coeffs[-1] ** 2)
    mean = totals.mean(axis=0)
    se = totals.std(axis=0, ddof=1) / np.sqrt(draws) if draws > 1 else np.zeros_like(mean)
    return mean, se
