"""The discrete verification figure (issue 21): chains whose training draws a verifier filtered, one
colour per verifier width tau and grey for the neutral chain: how fast they collapse to one
symbol, the mass of the most probable symbol, and which symbol they end on. Dashed: the exact law
(theory.selection); dotted: the infinite-M recursion, an approximation."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, colors, grouped, save

EXACT = dict(color="k", lw=0.8, ls="--")
NEUTRAL = "0.45"  # the chain without a verifier


def _strengths(rows: list[dict[str, str]]) -> list[tuple[str, float]]:
    """(label, tau) of each chain family, strongest verifier first, the neutral chain (tau = inf) last."""
    return sorted({(r["regime"], float(r["tau"])) for r in rows}, key=lambda lt: lt[1])


def _name(tau: float) -> str:
    return "no verifier" if math.isinf(tau) else rf"$\tau$ = {tau:g}"


def plot(rows: list[dict[str, str]], symbol_rows: list[dict[str, str]], out_pdf: str) -> list:
    """rows: the --out CSV of `discrete verify`; symbol_rows: its --symbols-out CSV."""
    strengths = _strengths(rows)
    if not strengths:
        raise ValueError("the verification summary holds no rows")
    data = grouped(rows, ("regime",))
    palette = dict(zip([lt for lt in strengths if not math.isinf(lt[1])], colors(len(strengths) - 1)))
    first = rows[0]
    k, m, g, b = int(first["num_symbols"]), int(first["sample_size"]), int(first["generations"]), float(first["b"])
    with plt.rc_context(RC):
        fig, (ax_f, ax_t, ax_w) = plt.subplots(1, 3, figsize=(7.2, 2.7))
        for (label, tau) in strengths:
            d = data[(label,)]
            color = palette.get((label, tau), NEUTRAL)
            n = d["generation"][1:]  # log x: generation 0 is q itself
            for ax, name in ((ax_f, "fixed"), (ax_t, "top_mass")):
                mean, se = d[name][1:], d[f"{name}_se"][1:]
                ax.plot(n, mean, color=color, lw=1.3, label=_name(tau))
                ax.fill_between(n, mean - 2 * se, mean + 2 * se, color=color, alpha=0.25, lw=0)
                if np.isfinite(d[f"{name}_theory"][1:]).all():
                    ax.plot(n, d[f"{name}_theory"][1:], **EXACT)
            if not math.isinf(tau):  # the neutral chain's recursion is flat: its mean is exactly q_1
                ax_t.plot(n, d["top_mass_deterministic"][1:], color=color, lw=1.0, ls=":")
        ax_f.set(xscale="log", ylim=(-0.02, 1.02), xlabel="generation $n$", ylabel="share of chains",
                 title="collapsed to one symbol")
        ax_t.set(xscale="log", ylim=(-0.02, 1.02), xlabel="generation $n$", ylabel=r"$\mathbb{E}[p_n(1)]$",
                 title="mass of rank 1 (the mode of $q$)")
        ax_f.legend(frameon=False, fontsize=7, loc="upper left")
        ax_t.plot([], [], label="exact law", **EXACT)
        ax_t.plot([], [], color="0.3", lw=1.0, ls=":", label=r"$M\to\infty$ (approx.)")
        ax_t.legend(handles=ax_t.get_lines()[-2:], frameon=False, fontsize=7, loc="lower right")

        by_symbol = grouped([dict(r, generation="0") for r in symbol_rows], ("regime",))
        width = 0.8 / len(strengths)
        for i, (label, tau) in enumerate(strengths):
            d = by_symbol[(label,)]
            order = np.argsort(d["symbol"])
            rank, wins, se = d["symbol"][order], d["wins"][order], d["wins_se"][order]
            x = rank + (i - (len(strengths) - 1) / 2) * width
            color = palette.get((label, tau), NEUTRAL)
            ax_w.bar(x, wins, width=width, color=color, alpha=0.85, lw=0)
            ax_w.errorbar(x, wins, yerr=2 * se, fmt="none", ecolor="0.3", elinewidth=0.7, capsize=0)
            exact = d["wins_theory"][order]
            if np.isfinite(exact).all():
                ax_w.hlines(exact, x - 0.6 * width, x + 0.6 * width, color="k", lw=1.0)
        ax_w.plot([], [], color="k", lw=1.0, label="exact")
        ax_w.legend(frameon=False, fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.75))
        ax_w.set(xticks=np.arange(1, k + 1), ylim=(0, 1.02), xlabel="symbol rank $k$ (1 = most probable)",
                 ylabel="share of chains", title=f"fixed on rank $k$ at $n$ = {g}")
        fig.suptitle(f"Verifier keeps rank $k$ with prob. $e^{{-(k-{b + 1:g})^2/(2\\tau^2)}}$ "
                     f"($K$ = {k}, $M$ = {m}; simulation: mean $\\pm$2 s.e.)", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.97), w_pad=1.2)
        return save(fig, out_pdf)
