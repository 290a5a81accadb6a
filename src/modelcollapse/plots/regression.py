"""The regression family's figure: the parameter error by generation under each regime, exact laws dashed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, colors, grouped, save

ORDER = ("replace", "accumulate_subsample", "accumulate")


def order_key(label: str):
    return (ORDER.index(label), 0.0) if label in ORDER else (len(ORDER), label)


def plot_regimes(rows: list[dict[str, str]], out_pdf: str) -> list:
    """E||b_n - b*||^2 per regime (mean +- 2 s.e.), the exact law dashed where one exists, and
    Gerstgrasser et al.'s bound pi^2/6 times the first fit's error dotted. Linear axes on the
    left (replace's straight line), logarithmic on the right (the bounded regimes apart)."""
    data = grouped(rows, ("regime",))
    order = sorted(data, key=lambda k: order_key(k[0]))
    palette = dict(zip(order, colors(len(order))))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.6))
        for ax in axes:
            for key in order:
                d = data[key]
                g, centre, se = d["generation"][1:], d["error"][1:], d["error_se"][1:]
                ax.plot(g, centre, color=palette[key], lw=1.2, label=key[0])
                ax.fill_between(g, centre - 2 * se, centre + 2 * se, color=palette[key], alpha=0.2, lw=0)
                if np.isfinite(d["error_theory"][1:]).all():
                    ax.plot(g, d["error_theory"][1:], color="k", lw=0.8, ls="--")
            first = next(iter(data.values()))["error_theory"][1]
            if np.isfinite(first):
                ax.axhline(np.pi**2 / 6 * first, color="0.4", lw=0.8, ls=":")
            ax.set(xlabel="generation $n$", ylabel=r"$\mathbb{E}\|\hat b_n - b^*\|^2$")
        axes[0].set_title("linear axes")
        axes[1].set(xscale="log", yscale="log", title="logarithmic axes")
        axes[0].plot([], [], color="k", lw=0.8, ls="--", label="exact law")
        axes[0].plot([], [], color="0.4", lw=0.8, ls=":", label=r"$\pi^2/6\times$ generation 1")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
        return save(fig, out_pdf)
