"""The recursive-VAE figures: sample grids by generation, the paper's latent-density ridge plot,
and the collapse metrics against generation with bands over chains."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, colors, grouped, save

# (CSV column, axis label, reference column drawn as a dotted line: real validation vs real test,
# a second CSV column drawn dashed in the same panel)
METRICS = (
    ("latent_std", "std of latent means\n(generation-0 encoder)", None, None),
    ("class_entropy", "class entropy (nats)", None, None),
    ("precision", "precision (quality)", "reference_precision", None),
    ("recall", "recall (diversity)", "reference_recall", None),
    ("frechet", "Frechet distance\n(classifier features)", "reference_frechet", None),
    ("real_nelbo", "negative ELBO of real\nvalidation images (nats)", None, None),
    # the ELBO's two terms and the encoder's active units: posterior collapse would show as a KL
    # term and active units falling to zero; a loss of information in the data, as a falling KL
    # on the generation's own (synthetic) training data
    ("real_recon", "reconstruction term (nats)\nreal solid, training dashed", None, "final_recon"),
    ("real_kl", "KL term (nats)\nreal solid, training dashed", None, "final_kl"),
    ("active_units", "active latent units\n(Var of mean > 0.01)", None, None),
)


def _label(run) -> str:
    return str(run["regime_label"])


SAMPLES_PER_CELL = 8  # images per (regime, generation): the regimes sit side by side at print width


def plot_samples(runs: list[dict[str, np.ndarray]], generations, out_pdf: str) -> list:
    """One column per run (a chain output), one row per generation: a strip of its stored samples
    (decoder means of z ~ N(0, I)); generations a chain did not reach are dropped."""
    shown = [g for g in generations if all(g < len(run["generation"]) for run in runs)]
    cols = min(SAMPLES_PER_CELL, *(int(run["grid_images"].shape[1]) for run in runs))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(len(shown), len(runs), squeeze=False,
                                 figsize=(0.4 * cols * len(runs) + 0.6, 0.42 * len(shown) + 0.35))
        for c, run in enumerate(runs):
            for r, g in enumerate(shown):
                ax = axes[r, c]
                strip = np.concatenate(list(run["grid_images"][g, :cols]), axis=1)  # [H, cols * W]
                ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(False)
                if c == 0:
                    ax.set_ylabel(f"gen {g}", rotation=0, ha="right", va="center", fontsize=7)
                if r == 0:
                    ax.set_title(f"{_label(run)} (chain {int(run['chain'])})", fontsize=8)
        fig.tight_layout(pad=0.2, h_pad=0.15)
        return save(fig, out_pdf)


def plot_latent_density(runs: list[dict[str, np.ndarray]], out_pdf: str) -> list:
    """The paper's figure: the density of latent means of generated images under the generation-0
    encoder, one ridge per generation (each scaled to its peak), one panel per regime (densities
    averaged over the given chains of that regime)."""
    by_regime: dict[str, list] = {}
    for run in runs:
        by_regime.setdefault(_label(run), []).append(run)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(by_regime), figsize=(3.0 * len(by_regime) + 0.4, 3.6), squeeze=False)
        for ax, (label, group) in zip(axes[0], by_regime.items()):
            grid = group[0]["kde_grid"]
            density = np.mean([run["density"] for run in group], axis=0)  # [G + 1, grid]
            n_gen = density.shape[0]
            # Each ridge scaled to its own peak (1.6 rows high): the shapes are what narrows; a
            # shared scale would flatten the early, wide generations to nothing.
            shape = density / np.maximum(density.max(axis=1, keepdims=True), 1e-300) * 1.6
            palette = colors(n_gen)
            for g in range(n_gen - 1, -1, -1):  # back to front
                ax.fill_between(grid, g, g + shape[g], color=palette[g], alpha=0.85, lw=0.6, edgecolor="white")
            ticks = sorted({0, n_gen // 2, n_gen - 1})
            ax.set_yticks(ticks, [str(g) for g in ticks])
            spread = grid[np.any(shape > 0.02, axis=0)]
            ax.set_xlim(min(spread.min(), -1.0), max(spread.max(), 1.0))
            ax.set(xlabel="latent mean (generation-0 encoder)", ylabel="generation",
                   title=f"{label}, {len(group)} chain{'s' * (len(group) > 1)}")
        fig.tight_layout()
        return save(fig, out_pdf)


def plot_metrics(rows: list[dict[str, str]], out_pdf: str) -> list:
    """The collapse metrics against generation: mean over chains per regime, band = min..max."""
    per_chain = grouped(rows, ("regime", "chain"))
    regimes = sorted({k[0] for k in per_chain}, key=lambda r: (r != "replace", r))
    palette = dict(zip(regimes, colors(len(regimes))))
    dataset = rows[0]["dataset"]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(3, 3, figsize=(7.4, 6.3))
        for ax, (name, ylabel, reference, dashed) in zip(axes.ravel(), METRICS):
            for regime in regimes:
                chains = [d for (r, _), d in per_chain.items() if r == regime]
                g = chains[0]["generation"]
                for column, style in ((name, "-"), (dashed, "--")):
                    if column is None:
                        continue
                    values = np.stack([d[column] for d in chains])
                    ax.plot(g, values.mean(axis=0), color=palette[regime], lw=1.3, ls=style,
                            label=f"{regime} ({len(chains)} chains)" if style == "-" else None)
                    ax.fill_between(g, values.min(axis=0), values.max(axis=0), color=palette[regime], alpha=0.2,
                                    lw=0)
            if reference:
                ax.axhline(float(rows[0][reference]), color="0.4", ls=":", lw=1, label="real vs real")
            ax.set(xlabel="generation", ylabel=ylabel)
        axes[0, 1].axhline(np.log(10), color="0.4", ls=":", lw=1)
        axes[0, 0].legend(frameon=False, fontsize=7)
        axes[0, 2].legend(frameon=False, fontsize=7)
        fig.suptitle(f"{dataset}: mean over chains, band = range", fontsize=9)
        fig.tight_layout()
        return save(fig, out_pdf)
