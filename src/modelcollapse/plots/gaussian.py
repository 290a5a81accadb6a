"""The 1-D Gaussian fit-and-sample figure: errors of the fitted mean and std, and E[W2^2]."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, colors, grouped, save

PANELS = (
    ("abs_mu_err", r"$|\hat\mu_n - \mu|$", "median, IQR band"),
    ("abs_sigma_err", r"$|\hat\sigma_n - \sigma|$", "median, IQR band"),
    ("w2sq", r"$\mathbb{E}[W_2^2]$", r"mean $\pm$ 2 s.e."),
)


def plot(rows: list[dict[str, str]], out_pdf: str) -> list:
    """The main figure; rows: the tidy summary CSV of `gaussian summarize`. One row of panels per estimator."""
    data = grouped(rows, ("estimator", "sample_size"))
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
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
        return save(fig, out_pdf)


def plot_regimes(rows: list[dict[str, str]], out_pdf: str) -> list:
    """E[W2^2] to the original, E[mu_n^2] (exact theory for every regime) and the median fitted
    sigma, one line per data regime."""
    data = grouped(rows, ("regime",))
    order = sorted(data, key=lambda k: ("replace", "accumulate", "accumulate_subsample").index(k[0])
                   if k[0] in ("replace", "accumulate", "accumulate_subsample") else 3)
    palette = dict(zip(order, colors(len(order))))
    with plt.rc_context(RC):
        fig, (ax_w, ax_m, ax_s) = plt.subplots(1, 3, figsize=(7.2, 2.5))
        for key in order:
            d = data[key]
            g = d["generation"][1:]
            for ax, name in ((ax_w, "w2sq"), (ax_m, "var_mu")):
                centre, se = d[name][1:], d[f"{name}_se"][1:]
                ax.plot(g, centre, color=palette[key], lw=1.2, label=_regime_name(key[0]))
                ax.fill_between(g, np.maximum(centre - 2 * se, centre / 10), centre + 2 * se,
                                color=palette[key], alpha=0.2, lw=0)
                if np.isfinite(d[f"{name}_theory"][1:]).all():
                    ax.plot(g, d[f"{name}_theory"][1:], color="k", lw=0.8, ls="--")
            ax_s.plot(g, np.sqrt(d["median_sigma2"][1:]), color=palette[key], lw=1.2)
        ax_w.set(xscale="log", yscale="log", xlabel="generation $n$", ylabel=r"$\mathbb{E}[W_2^2]$",
                 title="distance to the original")
        ax_m.set(xscale="log", yscale="log", xlabel="generation $n$", ylabel=r"$\mathbb{E}[(\mu_n-\mu_0)^2]$",
                 title="mean's drift")
        ax_s.set(xscale="log", xlabel="generation $n$", ylabel=r"median $\hat\sigma_n$",
                 title="fitted standard deviation")
        ax_w.plot([], [], color="k", lw=0.8, ls="--", label="theory")
        handles, labels = ax_w.get_legend_handles_labels()
        rows_of_legend = -(-len(labels) // 4)
        fig.tight_layout(rect=(0, 0.05 + 0.06 * rows_of_legend, 1, 1))
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
        return save(fig, out_pdf)


def _regime_name(label: str) -> str:
    """A legend name: the verify regime's label spelt out ('verify-b0-real_fraction0.1-tau2' ->
    'verify b=0, tau=2, 10% real'); other labels as they are."""
    found = re.fullmatch(r"verify-b(.+)-real_fraction(.+)-tau(.+)", label)
    if not found:
        return label
    b, f, tau = found.groups()
    return rf"verify $b$={b}, $\tau$={tau}" + (f", {float(f) * 100:g}% real" if float(f) else "")


def plot_schedules(rows: list[dict[str, str]], out_pdf: str) -> list:
    """E[W2^2] under constant, linear and superlinear sample-size schedules, theory dashed."""
    data = grouped(rows, ("schedule",))
    order = [k for k in (("constant",), ("linear",), ("superlinear",)) if k in data]
    palette = dict(zip(order, colors(len(order))))
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(3.6, 2.6))
        for key in order:
            d = data[key]
            g, centre, se = d["generation"][1:], d["w2sq"][1:], d["w2sq_se"][1:]
            ax.plot(g, centre, color=palette[key], lw=1.2, label=key[0])
            ax.fill_between(g, np.maximum(centre - 2 * se, centre / 10), centre + 2 * se, color=palette[key],
                            alpha=0.2, lw=0)
            ax.plot(g, d["w2sq_theory"][1:], color="k", lw=0.8, ls="--")
        ax.plot([], [], color="k", lw=0.8, ls="--", label="theory")
        ax.set(xscale="log", yscale="log", xlabel="generation $n$", ylabel=r"$\mathbb{E}[W_2^2]$")
        ax.legend(frameon=False)
        fig.tight_layout()
        return save(fig, out_pdf)


def plot_multivariate(rows: list[dict[str, str]], out_pdf: str) -> list:
    """Theorem 3.1: log det Sigma_n drifts to -infinity while E||mu_n - mu_0||^2 grows; per dimension."""
    data = grouped(rows, ("dim",))
    dims = sorted(data)
    palette = dict(zip(dims, colors(len(dims))))
    with plt.rc_context(RC):
        fig, (ax_l, ax_m) = plt.subplots(1, 2, figsize=(7.2, 2.6))
        for key in dims:
            d = data[key]
            g = d["generation"]
            ax_l.plot(g, d["log_det_q50"], color=palette[key], lw=1.2, label=f"d = {key[0]}")
            ax_l.fill_between(g, d["log_det_q25"], d["log_det_q75"], color=palette[key], alpha=0.2, lw=0)
            ax_l.plot(g, d["log_det_theory"], color="k", lw=0.8, ls="--")
            centre, se = d["mean_sq_dist"][1:], d["mean_sq_dist_se"][1:]
            ax_m.plot(g[1:], centre, color=palette[key], lw=1.2)
            ax_m.fill_between(g[1:], np.maximum(centre - 2 * se, centre / 10), centre + 2 * se,
                              color=palette[key], alpha=0.2, lw=0)
            ax_m.plot(g[1:], d["mean_sq_dist_theory"][1:], color="k", lw=0.8, ls="--")
        ax_l.set(xlabel="generation $n$", ylabel=r"$\log\det\Sigma_n$", title="median, IQR; dashed: E (theory)")
        ax_m.set(xscale="log", yscale="log", xlabel="generation $n$", ylabel=r"$\mathbb{E}\|\mu_n-\mu_0\|^2$",
                 title=r"mean $\pm$ 2 s.e.; dashed: theory")
        ax_l.legend(frameon=False)
        fig.tight_layout()
        return save(fig, out_pdf)
