"""The 1-D Gaussian fit-and-sample figure: errors of the fitted mean and std, and E[W2^2]."""

from __future__ import annotations

from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, colors, save

PANELS = (
    ("abs_mu_err", r"$|\hat\mu_n - \mu|$", "median, IQR band"),
    ("abs_sigma_err", r"$|\hat\sigma_n - \sigma|$", "median, IQR band"),
    ("w2sq", r"$\mathbb{E}[W_2^2]$", r"mean $\pm$ 2 s.e."),
)


def _columns(rows: list[dict[str, str]]) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    grouped = defaultdict(list)
    for row in rows:
        grouped[(row["estimator"], int(row["sample_size"]))].append(row)
    out = {}
    for key, group in grouped.items():
        group.sort(key=lambda r: int(r["generation"]))
        out[key] = {name: np.array([float(r[name]) for r in group]) for name in group[0]
                    if name not in ("estimator", "sample_size")}
    return out


def plot(rows: list[dict[str, str]], out_pdf: str) -> list:
    """rows: the tidy summary CSV of `gaussian summarize`. One row of panels per estimator."""
    data = _columns(rows)
    estimators = sorted({e for e, _ in data}, key=lambda e: (e != "unbiased", e))
    sizes = sorted({m for _, m in data})
    palette = dict(zip(sizes, colors(len(sizes))))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(len(estimators), 3, figsize=(7.2, 2.3 * len(estimators)),
                                 squeeze=False, sharex=True)
        for row, estimator in zip(axes, estimators):
            for m in sizes:
                d = data.get((estimator, m))
                if d is None:
                    continue
                g = d["generation"][1:]  # log x: generation 0 (the truth) has zero error
                for ax, (name, label, _) in zip(row, PANELS):
                    if name == "w2sq":
                        centre, se = d["w2sq"][1:], d["w2sq_se"][1:]
                        # Clip the band above zero: the y axis is logarithmic.
                        lo = np.maximum(centre - 2 * se, centre / 10)
                        hi, theory = centre + 2 * se, d["w2sq_theory"][1:]
                    else:
                        centre, lo, hi = (d[f"{name}_{q}"][1:] for q in ("q50", "q25", "q75"))
                        theory = d[f"{name}_q50_theory"][1:]
                    ax.plot(g, centre, color=palette[m], lw=1.2, label=f"M = {m}")
                    ax.fill_between(g, lo, hi, color=palette[m], alpha=0.2, lw=0)
                    ax.plot(g, theory, color="k", lw=0.8, ls="--")
            for ax, (name, label, stat) in zip(row, PANELS):
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_ylabel(label)
                ax.set_title(f"{estimator}: {stat}")
        for ax in axes[-1]:
            ax.set_xlabel("generation $n$")
        axes[0, 0].plot([], [], color="k", lw=0.8, ls="--", label="theory")
        axes[0, 0].legend(frameon=False, loc="upper left")
        fig.tight_layout()
        return save(fig, out_pdf)
