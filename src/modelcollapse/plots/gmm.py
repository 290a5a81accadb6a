"""The Gaussian-mixture figures: the snapshot grid of one chain (the paper's GMM figure) and the
squared L2 distance to GMM_0 across chains, with the fitted scale and the share of lost modes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from modelcollapse.plots.style import RC, colors, grouped, save

DATA_LABELS = {"blob": "one blob (the paper's)", "two_blobs": "two blobs"}


def _ellipse(mean, cov, n_std: float, **kwargs) -> Ellipse:
    """The n_std-standard-deviation contour of N(mean, cov) as a patch."""
    values, vectors = np.linalg.eigh(np.asarray(cov, np.float64))
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * n_std * np.sqrt(np.maximum(values[::-1], 0))
    return Ellipse(xy=mean, width=width, height=height, angle=angle, **kwargs)


def plot_snapshots(runs: list[dict[str, np.ndarray]], out_pdf: str) -> list:
    """One row per run (a simulate output's snapshot arrays), one column per snapshot generation:
    replicate 0's training points and its fitted components' 1- and 2-sigma ellipses. Each panel
    is square and zoomed to its points (the cloud shrinks ~50-fold over 2000 generations), so the
    axis labels carry the scale."""
    cols = max(len(run["snapshot_generations"]) for run in runs)
    palette = colors(max(run["snapshot_weights"].shape[-1] for run in runs))
    with plt.rc_context(RC | {"xtick.labelsize": 5.5, "ytick.labelsize": 5.5, "xtick.major.size": 2,
                              "ytick.major.size": 2, "xtick.major.pad": 1, "ytick.major.pad": 1}):
        fig, axes = plt.subplots(len(runs), cols, figsize=(1.3 * cols + 0.4, 1.55 * len(runs) + 0.3),
                                 squeeze=False)
        for row, run in zip(axes, runs):
            for j, ax in enumerate(row):
                if j >= len(run["snapshot_generations"]):
                    ax.axis("off")
                    continue
                points = run["snapshot_points"][j]  # [N, 2]
                ax.scatter(points[:, 0], points[:, 1], s=1.0, color="0.35", alpha=0.35, lw=0, rasterized=True)
                for k in range(run["snapshot_weights"].shape[-1]):
                    mean, cov = run["snapshot_means"][j, k], run["snapshot_covs"][j, k]
                    for n_std, alpha in ((1.0, 0.9), (2.0, 0.5)):
                        ax.add_patch(_ellipse(mean, cov, n_std, fill=False, lw=1.0, alpha=alpha,
                                              color=palette[k]))
                lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
                centre, half = (lo + hi) / 2, max(np.max(hi - lo) / 2 * 1.15, 1e-6)
                ax.set_xlim(centre[0] - half, centre[0] + half)
                ax.set_ylim(centre[1] - half, centre[1] + half)
                ax.set_aspect("equal")
                ax.locator_params(nbins=3)
                for side in ("top", "right"):
                    ax.spines[side].set_visible(True)
                ax.set_title(f"generation {int(run['snapshot_generations'][j])}", fontsize=7)
            label = DATA_LABELS.get(str(run["data"]), str(run["data"]))
            row[0].set_ylabel(f"{label}\n{str(run['regime_label'])}", fontsize=7)
        fig.tight_layout(pad=0.3, w_pad=0.4, h_pad=0.5)
        return save(fig, out_pdf)


def plot_distance(rows: list[dict[str, str]], out_pdf: str) -> list:
    """Three panels against generation: the squared L2 distance between GMM_0 and GMM_n (median,
    interquartile band; log y, as the paper), the fitted component scale, and the share of chains
    that lost a true mode (data sets with more than one mode)."""
    data = grouped(rows, ("data", "regime"))
    order = sorted(data, key=lambda k: (k[0] != "blob", k))
    palette = dict(zip(order, colors(len(order))))
    multimodal = {(r["data"], r["regime"]) for r in rows if int(r["modes"]) > 1}
    replicates = {r["replicates"] for r in rows}
    with plt.rc_context(RC):
        fig, (ax_l2, ax_s, ax_m) = plt.subplots(1, 3, figsize=(7.2, 2.5))
        for key in order:
            d, color = data[key], palette[key]
            label = DATA_LABELS.get(key[0], key[0]) + ("" if key[1] == "replace" else f", {key[1]}")
            g = d["generation"][1:]  # log y: generation 0 is GMM_0 itself (distance 0)
            ax_l2.plot(g, d["l2_gmm0_q50"][1:], color=color, lw=1.2, label=label)
            ax_l2.fill_between(g, d["l2_gmm0_q25"][1:], d["l2_gmm0_q75"][1:], color=color, alpha=0.2, lw=0)
            ax_s.plot(d["generation"], d["sigma_q50"], color=color, lw=1.2)
            ax_s.fill_between(d["generation"], d["sigma_q25"], d["sigma_q75"], color=color, alpha=0.2, lw=0)
            if key in multimodal:
                centre, se = d["mode_lost"], d["mode_lost_se"]
                ax_m.plot(d["generation"], centre, color=color, lw=1.2)
                ax_m.fill_between(d["generation"], np.clip(centre - 2 * se, 0, 1), np.clip(centre + 2 * se, 0, 1),
                                  color=color, alpha=0.2, lw=0)
        stat = f"median, IQR over {'/'.join(sorted(replicates))} chains"
        ax_l2.set(yscale="log", xlabel="generation $n$", ylabel=r"$\|\mathrm{GMM}_0-\mathrm{GMM}_n\|_2^2$",
                  title=stat)
        ax_s.set(yscale="log", xlabel="generation $n$", ylabel=r"component scale $\det(\Sigma_k)^{1/4}$",
                 title="weighted over components")
        ax_m.set(xlabel="generation $n$", ylabel="share of chains", ylim=(-0.02, 1.02),
                 title=r"a true mode lost (mean $\pm$ 2 s.e.)")
        if not multimodal:
            ax_m.text(0.5, 0.5, "no multi-mode data set", ha="center", va="center", transform=ax_m.transAxes)
        ax_l2.legend(frameon=False, fontsize=7)
        fig.tight_layout()
        return save(fig, out_pdf)
