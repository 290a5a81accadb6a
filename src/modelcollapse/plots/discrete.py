"""The discrete-resampling figure: surviving symbols, the rare half's surviving mass, heterozygosity,
and, per symbol rank, the chance it is still present: the tails disappear first."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, colors, grouped, save

THEORY = dict(color="k", lw=0.8, ls="--")


def _line(ax, g, d, name, color, label=None, *, stat="median", band=True, **line):
    """Median and IQR band, or mean and +-2 s.e. band, over generations g >= 1; theory (an exact mean) dashed."""
    if stat == "median":
        centre, lo, hi = (d[f"{name}_{q}"][1:] for q in ("q50", "q25", "q75"))
    else:
        centre, se = d[name][1:], d[f"{name}_se"][1:]
        lo, hi = np.maximum(centre - 2 * se, centre / 10), centre + 2 * se  # clipped above 0 for log axes
    ax.plot(g, centre, color=color, lw=1.2, label=label, **line)
    if band:
        ax.fill_between(g, lo, hi, color=color, alpha=0.2, lw=0)
    if np.isfinite(d[f"{name}_theory"][1:]).all():
        ax.plot(g, d[f"{name}_theory"][1:], **THEORY)


def _rank_bins(rank: np.ndarray, values: np.ndarray, bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Average `values` over log-spaced bins of rank (per-symbol estimates are noisy); (centres, means)."""
    edges = np.unique(np.round(np.geomspace(1, rank.max() + 1, bins + 1)).astype(int))
    which = np.digitize(rank, edges) - 1
    used = np.unique(which)
    centres = np.array([np.exp(np.mean(np.log(rank[which == b]))) for b in used])
    return centres, np.array([values[which == b].mean() for b in used])


def plot(rows: list[dict[str, str]], rank_rows: list[dict[str, str]], out_pdf: str) -> list:
    """rows: the summary CSV of `discrete summarize`; rank_rows: its --ranks-out CSV. One line per M."""
    regimes = {r["regime"] for r in rows}
    if len(regimes) != 1:
        raise ValueError(f"the figure shows one data regime at a time; the summary holds {sorted(regimes)}")
    regime = regimes.pop()
    data = grouped(rows, ("sample_size",))
    sizes = sorted(m for (m,) in data)
    palette = dict(zip(sizes, colors(len(sizes))))
    m_rank = sizes[-1]
    ranks = grouped([r for r in rank_rows if int(r["sample_size"]) == m_rank and r["regime"] == regime],
                    ("generation",))  # grouped sorts each group by "generation"; re-sort by rank below
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(7.2, 5.2))
        (ax_s, ax_m), (ax_h, ax_r) = axes
        for m in sizes:
            d = data[(m,)]
            g = d["generation"][1:]  # log x: generation 0 is q itself
            _line(ax_s, g, d, "survivors", palette[m], f"M = {m}")
            _line(ax_m, g, d, "rare_share", palette[m], stat="mean")
            _line(ax_m, g, d, "common_share", palette[m], stat="mean", band=False, ls=":")
            _line(ax_h, g, d, "heterozygosity", palette[m])
        k = int(rows[0]["num_symbols"])
        ax_s.set(xscale="log", yscale="log", ylabel="symbols with $p_n(k)>0$", ylim=(0.8, 1.3 * k),
                 title=f"surviving symbols (of K = {k})\nmedian, IQR")
        ax_m.set(xscale="log", yscale="log", ylabel="share of the half's original mass",
                 title="original mass still present, mean $\\pm$2 s.e.\n"
                       "solid: rarest half of symbols; dotted: the rest")
        ax_h.set(xscale="log", ylim=(0, 1), ylabel=r"$1-\sum_k p_n(k)^2$",
                 title="heterozygosity (two draws differ)\nmedian, IQR")
        gens = sorted(ranks)
        shades = [plt.get_cmap("magma")(0.15 + 0.7 * i / max(len(gens) - 1, 1)) for i in range(len(gens))]
        for (n,), shade in zip(gens, shades):
            d = ranks[(n,)]
            ax_r.plot(*_rank_bins(d["rank"], 1.0 - d["lost"]), color=shade, lw=1.2, label=f"n = {n}")
            if np.isfinite(d["lost_theory"]).all():
                ax_r.plot(*_rank_bins(d["rank"], 1.0 - d["lost_theory"]), **THEORY)
        ax_r.set(xscale="log", ylim=(-0.02, 1.02), xlabel="symbol rank $k$ (1 = most probable)",
                 ylabel="P(symbol never lost by $n$)",
                 title=f"M = {m_rank}: the tail goes first\n(mean over log-spaced rank bins)")
        ax_r.legend(frameon=False, fontsize=7, loc="lower left")
        for ax in (ax_s, ax_m, ax_h):
            ax.set_xlabel("generation $n$")
        if any(np.isfinite(d["survivors_theory"][1:]).all() for d in data.values()):
            ax_s.plot([], [], label="theory (exact E)", **THEORY)
        ax_s.legend(frameon=False, fontsize=7, loc="lower left")
        if regime != "replace":
            fig.suptitle(f"regime: {regime}", fontsize=9)
        fig.tight_layout()
        return save(fig, out_pdf)
