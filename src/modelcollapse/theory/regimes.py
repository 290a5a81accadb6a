"""Exact E[mu_n^2] and E[sigma_n^2] of the 1-D Gaussian chain under every data regime, registered
ones included, computed from the regime's own definition.

Why it is exact: every regime of `modelcollapse.regimes` builds a training set by uniform subsets,
unions and heads, whose choices do not depend on the data's values. Write each point as
z_i = mu_k + u_i, drawn by model k with u_i = sigma_k eps_i. The fitted mean is sum_i c_i z_i / s
(c_i: the point's copies in the training set of s points) and the fitted variance
(sum_i c_i z_i^2 - s mu^2) / (s - ddof). Both are linear in the second moments of the z's, and
those follow from three arrays carried over the generations:

- C[m, l] = E[mu_m mu_l] (every E[mu] is 0 by symmetry),
- V[m] = E[sigma_m^2],
- D[m, a] = E[mu_m u_i] for a point i of class a (model m > k used it, directly or through
  earlier models; 0 for m <= k, which precede the draw),

plus, for the training set, the selection moments E[c_i], E[c_i^2] and E[c_i c_j] (i != j) per
class of exchangeable points: a generation's draws, split where a regime takes its head. A uniform
k-subset of a set of s points scales them by k/s and k(k-1)/(s(s-1)) (hypergeometric moments); an
independent union adds them. `_MomentOps` computes these by running the regime's function itself,
so the theory is the regime's definition, not a second description of it.

This is the recursion over the covariance of past estimates used for accumulate by Gerstgrasser et
al. 2024 ("Is model collapse inevitable?", sec. 3) and Kazdan et al. 2024 ("Collapse or thrive?"),
here for any regime: replace gives the closed forms of `theory.gaussian` (E mu_n^2 = sum E
sigma_i^2 / M_i), accumulate keeps E mu_n^2 bounded, mix with real data reaches a finite level.
Cost O(G L^2) with L the number of point classes (about G, or 2G where a regime takes heads).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from modelcollapse import regimes
from modelcollapse.theory.gaussian import ddof_of

FRESH = -1  # the group of points drawn from the truth for one training set (never reused)


class _Selection(NamedTuple):
    m1: np.ndarray  # [L] E c_i: expected copies of a point of each class
    m2: np.ndarray  # [L] E c_i^2
    pair: np.ndarray  # [L, L] E c_i c_j for distinct points i, j of the two classes
    size: int  # points in the set (copies counted); fixed for every regime here


class _MomentOps(regimes.SetOps):
    """Set operations on selection moments. Pass 1 (`classes` None) only records the heads taken
    of the latest generation and the fresh draws; pass 2 computes with the classes they imply."""

    offers = regimes.DATA_NEEDS

    def __init__(self, classes=None, latest_classes=(), fresh_classes=()):
        self.classes = classes  # [(group, points)]
        self.latest_classes = list(latest_classes)  # class indices of the latest group, in order
        self.fresh_classes = list(fresh_classes)
        self.heads, self.fresh = [], []
        self.latest = object()

    def whole(self, indices) -> _Selection:
        if self.classes is None:
            return None
        on = np.zeros(len(self.classes))
        on[list(indices)] = 1.0
        sizes = np.array([n for _, n in self.classes], np.float64)
        return _Selection(on, on.copy(), np.outer(on, on), int(round(float(on @ sizes))))

    def subset(self, key, data, k):
        if self.classes is None:
            return None
        k = int(k)
        s = data.size
        if k > s:
            raise ValueError(f"a subset of {k} points of a set of {s}")
        a = k / s if s else 0.0
        b = k * (k - 1) / (s * (s - 1)) if s > 1 else 0.0
        return _Selection(a * data.m1, a * data.m1 + b * (data.m2 - data.m1), b * data.pair, k)

    def union(self, a, b):
        if self.classes is None:
            return None
        return _Selection(a.m1 + b.m1, a.m2 + b.m2 + 2 * a.m1 * b.m1,
                          a.pair + b.pair + np.outer(a.m1, b.m1) + np.outer(b.m1, a.m1), a.size + b.size)

    def head(self, data, k):
        if data is not self.latest:
            raise ValueError("the exact theory takes heads of the latest generation's draws only")
        k = int(k)
        if self.classes is None:
            self.heads.append(k)
            return None
        ends = np.cumsum([self.classes[c][1] for c in self.latest_classes])
        taken = [c for c, end in zip(self.latest_classes, ends) if end <= k]
        return self.whole(taken)

    def draw_truth(self, key, n):
        if self.classes is None:
            self.fresh.append(int(n))
            return None
        self.fresh.append(int(n))
        return self.whole([self.fresh_classes[len(self.fresh) - 1]])


def _training_selection(regime, *, g: int, sizes, classes, group_classes):
    """The selection moments of model g + 1's training set and the step's classes (with fresh ones)."""
    groups = range(g + 1)

    def inputs(ops, latest):
        pool = ops.whole([c for k in groups for c in group_classes.get(k, [])])
        original = ops.whole(group_classes[0])
        return regimes.RegimeInputs(ops=ops, real_key=None, subset_key=None, original=original, pool=pool,
                                    latest=latest, m=int(sizes[g]), generation=g, draw_truth=ops.draw_truth)

    record = _MomentOps()
    regimes.build(regime, inputs(record, record.latest))
    # Split the latest generation where heads are taken (its points are no longer exchangeable).
    cuts = sorted({0, int(sizes[g])} | {k for k in record.heads if 0 < k < sizes[g]})
    group_classes[g] = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        group_classes[g].append(len(classes))
        classes.append((g, hi - lo))
    step_classes = classes + [(FRESH, n) for n in record.fresh]
    fresh = list(range(len(classes), len(step_classes)))
    ops = _MomentOps(step_classes, group_classes[g], fresh)
    latest = ops.whole(group_classes[g])
    ops.latest = latest
    return regimes.build(regime, inputs(ops, latest)), step_classes


def gaussian_moments(regime, sample_sizes, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """(E[mu_n^2], E[sigma_n^2]) for n = 0..G of the chain of `modelcollapse.gaussian.simulate`
    (truth N(0, 1); generation i draws M_i = sample_sizes[i] points; model 1 fits the original data)."""
    sizes = np.atleast_1d(np.asarray(sample_sizes, np.int64))
    ddof = ddof_of(estimator)
    regime = regimes.Regime.from_config(regime) if not isinstance(regime, (regimes.Regime, tuple)) else regime
    n_models = len(sizes) + 1
    cov = np.zeros((n_models, n_models))  # C
    var = np.zeros(n_models)  # V
    var[0] = 1.0
    classes: list[tuple[int, int]] = [(0, int(sizes[0]))]
    group_classes = {0: [0]}
    cross = np.zeros((n_models, 4 * n_models + 4))  # D, columns grown on demand
    for g in range(len(sizes)):
        if g == 0:
            step_classes = list(classes)
            sel = _MomentOps(step_classes).whole([0])
        else:
            sel, step_classes = _training_selection(regime, g=g, sizes=sizes, classes=classes,
                                                    group_classes=group_classes)
        if cross.shape[1] < len(step_classes):
            cross = np.concatenate([cross, np.zeros((n_models, 2 * len(step_classes)))], axis=1)
        cov, var, cross = _step(g, sel, step_classes, cov, var, cross, ddof)
    return np.diag(cov).copy(), var


def _step(g, sel, step_classes, cov, var, cross, ddof):
    """Moments of model g + 1 from the selection of its training set."""
    n_cls = len(step_classes)
    group = np.array([k for k, _ in step_classes])
    n = np.array([p for _, p in step_classes], np.float64)
    drawn = group != FRESH
    k = np.where(drawn, group, 0)
    d = cross[:, :n_cls]
    ez2 = np.where(drawn, cov[k, k] + var[k], 1.0)
    # E z_i z_j for distinct points of classes a, b: C[ka, kb] plus the later model's use of the other's noise
    later_b = d[k[None, :], np.arange(n_cls)[:, None]] * (k[None, :] > k[:, None])  # D[kb, a] if kb > ka
    z = cov[k[:, None], k[None, :]] + later_b + later_b.T
    z = np.where(drawn[:, None] & drawn[None, :], z, 0.0)
    pairs = np.outer(n, n) - np.diag(n)
    s = float(sel.size)
    mu2 = (np.sum(n * sel.m2 * ez2) + np.sum(pairs * sel.pair * z)) / s**2
    weight = np.where(drawn, n * sel.m1, 0.0) / s  # E c_i / s summed over a class
    models = np.arange(g + 1)
    used_later = d[models[:, None], np.arange(n_cls)[None, :]] * (models[:, None] > k[None, :])  # D[m, a]
    cov_new = (cov[k[None, :], models[:, None]] + used_later) @ weight
    cross_new = np.where(drawn, sel.m1 * var[k], 0.0) / s
    cross_new += (d[k[None, :], np.arange(n_cls)[:, None]] * (k[None, :] > k[:, None])) @ weight
    cov = cov.copy()
    cov[g + 1, : g + 1] = cov[: g + 1, g + 1] = cov_new
    cov[g + 1, g + 1] = mu2
    var = var.copy()
    var[g + 1] = (np.sum(n * sel.m1 * ez2) - s * mu2) / (s - ddof)
    cross = cross.copy()
    cross[g + 1, :n_cls] = np.where(drawn, cross_new, 0.0)
    return cov, var, cross
