"""Per-generation summaries of finished chains (NumPy, float64): component scales, the mass on
each true mode, and `summarize`, the statistics across replicates that `gmm summarize` writes.

Inputs are anything with `GMMChains`' fields, [R replicates, G+1 generations, ...]; outputs are
[G+1] per statistic. The squared L2 distances themselves are computed in closed form when the
chains are simulated (`engines.simulate`, `theory.gmm`), so here they are only summarised.
"""

from __future__ import annotations

import numpy as np

from modelcollapse import metrics
from modelcollapse.gmm.spec import truth


def component_scale(covs: np.ndarray) -> np.ndarray:
    """det(Sigma_k)^(1/(2d)): the geometric mean of a component's principal standard deviations; [..., K]."""
    covs = np.asarray(covs, np.float64)
    return np.exp(np.linalg.slogdet(covs)[1] / (2 * covs.shape[-1]))


def mode_mass(weights: np.ndarray, means: np.ndarray, true_means: np.ndarray) -> np.ndarray:
    """Fitted weight on each true mode: the summed weight of the components whose mean is nearest it.

    weights [..., K], means [..., K, d], true_means [M, d] -> [..., M]. A mode is counted as lost
    when its mass is below 1/N: fewer than one of the next N draws is expected near it, and under
    `replace` a mode that receives no draw never comes back.
    """
    d2 = np.sum((np.asarray(means, np.float64)[..., :, None, :] - true_means) ** 2, -1)  # [..., K, M]
    onehot = np.argmin(d2, -1)[..., None] == np.arange(true_means.shape[0])  # [..., K, M]
    return np.sum(np.asarray(weights, np.float64)[..., None] * onehot, -2)


def summarize(chains, *, data: str, sample_size: int, max_iter: int) -> dict[str, np.ndarray]:
    """Per-generation statistics across replicates, every array [G+1].

    chains: anything with GMMChains' fields (a GMMChains, or the loaded .npz as a namespace).
    l2_gmm0 / l2_truth: squared L2 distances (quartiles; mean +- s.e.). sigma: each chain's
    weight-averaged `component_scale` (quartiles). mode_lost: share of chains with a true mode
    below 1/N mass (+- s.e.; 0 for one-mode data). n_iter_mean / n_iter_max: EM iterations per
    fit, mean and slowest chain; capped: share of fits stopped by max_iter.
    """
    out = {"generation": np.arange(np.shape(chains.l2_gmm0)[1])}
    for name in ("l2_gmm0", "l2_truth"):
        values = np.asarray(getattr(chains, name), np.float64)
        out[f"{name}_q25"], out[f"{name}_q50"], out[f"{name}_q75"] = np.quantile(values, [0.25, 0.5, 0.75], 0)
        out[f"{name}_mean"], out[f"{name}_se"] = metrics.mean_and_se(values)
    weights = np.asarray(chains.weights, np.float64)
    sigma = np.sum(weights * component_scale(chains.covs), -1)  # [R, G+1]
    out["sigma_q25"], out["sigma_q50"], out["sigma_q75"] = np.quantile(sigma, [0.25, 0.5, 0.75], 0)
    lost = np.min(mode_mass(weights, chains.means, truth(data).means), -1) < 1.0 / sample_size  # [R, G+1]
    out["mode_lost"], out["mode_lost_se"] = metrics.mean_and_se(lost.astype(np.float64))
    n_iter = np.asarray(chains.n_iter)
    out["n_iter_mean"], out["n_iter_max"] = n_iter.mean(0), n_iter.max(0).astype(np.float64)
    out["capped"] = np.mean(~np.asarray(chains.converged, bool) & (n_iter >= max_iter), 0)
    return out
