"""The recursive-LM figures: Nature Fig. 1b,c (per-sequence perplexity of each generation's data
under the generation-0 model, and test perplexity by generation) for every regime, and the tail
and diversity metrics against generation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from modelcollapse.plots.style import RC, colors, grouped, save

METRICS = (
    ("test_ppl", "test perplexity\n(original test set)"),
    ("data_ppl_median", "median perplexity of the data\nunder the generation-0 model"),
    ("rare_share", "share of tokens from the\noriginal's rarest 50% of mass"),
    ("unigram_entropy", "unigram entropy of the data (nats)"),
    ("distinct_2", "distinct-2 of the data"),
    ("kl_truth_model", "KL(truth || model), nats/token"),
)


# Perplexities span orders of magnitude between regimes (beam search can jump 100-fold).
LOG_SCALE = ("test_ppl", "data_ppl_median")


def _by_label(runs):
    out: dict[str, list] = {}
    for run in runs:
        out.setdefault(str(run["label"]), []).append(run)
    return dict(sorted(out.items()))


def plot_perplexity(runs: list[dict[str, np.ndarray]], generations, out_pdf: str) -> list:
    """One row per regime: left, histograms (log x) of the perplexity of every block of a
    generation's training data under the generation-0 model, pooled over chains, for the chosen
    generations; right, test perplexity by generation (each chain, and the mean)."""
    by_label = _by_label(runs)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(len(by_label), 2, figsize=(7.2, 2.6 * len(by_label)), squeeze=False,
                                 gridspec_kw={"width_ratios": [1.6, 1]})
        for (label, group), (ax_h, ax_t) in zip(by_label.items(), axes):
            n_gen = group[0]["data_ppl"].shape[0]
            shown = [g for g in generations if g < n_gen]
            pooled = {g: np.concatenate([run["data_ppl"][g] for run in group]) for g in shown}
            finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in pooled.values()])
            bins = np.geomspace(finite.min(), finite.max(), 60)
            palette = colors(len(shown))
            for color, g in zip(palette, shown):
                ax_h.hist(pooled[g], bins=bins, density=True, histtype="step", lw=1.2, color=color,
                          label="real data" if g == 0 else f"generation {g}")
            ax_h.set(xscale="log", xlabel="perplexity of a block under the generation-0 model",
                     ylabel="density", title=f"regime {label} ({group[0]['decoding']})")
            ax_h.legend(frameon=False, fontsize=6.5, ncol=2)
            g_all = np.arange(n_gen)
            test = np.stack([run["test_ppl"] for run in group])
            for row in test:
                ax_t.plot(g_all, row, color="0.6", lw=0.8, alpha=0.8)
            ax_t.plot(g_all, test.mean(axis=0), color="C3", lw=1.6, marker="o", ms=3,
                      label=f"mean of {len(group)} chains")
            ax_t.set(xlabel="generation (0: trained on real data)", ylabel="test perplexity",
                     title=f"regime {label}: original test set")
            ax_t.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax_t.legend(frameon=False, fontsize=7)
        fig.tight_layout()
        return save(fig, out_pdf)


def _mean_and_range(ax, per_chain, label: str, name: str, color, **line) -> int:
    """Column `name` of regime `label`'s chains by generation: the mean as a line, the range as a
    band; returns the number of chains."""
    chains = [d for (lab, _), d in per_chain.items() if lab == label]
    g, values = chains[0]["generation"], np.stack([d[name] for d in chains])
    ax.plot(g, values.mean(axis=0), color=color, lw=1.3, marker="o", ms=2.5, **line)
    ax.fill_between(g, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2, lw=0)
    return len(chains)


def plot_metrics(rows: list[dict[str, str]], out_pdf: str) -> list:
    """Tail and diversity metrics against generation: mean over chains per regime, band = range."""
    per_chain = grouped(rows, ("label", "chain"))
    labels = sorted({k[0] for k in per_chain})
    palette = dict(zip(labels, colors(len(labels))))
    truth = np.isfinite(float(rows[0]["entropy_rate"]))
    shown = [m for m in METRICS if truth or m[0] != "kl_truth_model"]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 3, figsize=(7.4, 4.6))
        for ax, (name, ylabel) in zip(axes.ravel(), shown):
            for label in labels:
                decoding = next(r["decoding"] for r in rows if r["label"] == label)
                n = _mean_and_range(ax, per_chain, label, name, palette[label])
                ax.lines[-1].set_label(f"regime {label}: {decoding} ({n} chains)")
            ax.set(xlabel="generation", ylabel=ylabel, yscale="log" if name in LOG_SCALE else "linear")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if truth:
            axes[0, 0].axhline(np.exp(float(rows[0]["entropy_rate"])), color="0.4", ls=":", lw=1,
                               label="truth: exp(entropy rate)")
            axes[1, 0].axhline(float(rows[0]["truth_unigram_entropy"]), color="0.4", ls=":", lw=1,
                               label="truth")
        for ax in axes.ravel()[len(shown):]:
            ax.axis("off")
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), frameon=False, fontsize=7)
        fig.suptitle(f"corpus {rows[0]['corpus']}: mean over chains, band = range", fontsize=9)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        return save(fig, out_pdf)


# The panels of each comparison block's figure (lm.<block>; see commands.lm.COMPARISONS), with the
# y-labels of METRICS.
YLABELS = dict(METRICS) | {"forbidden_share": "share of the data's transitions\nthat the truth forbids"}
COMPARISON_METRICS = {"verify": ("test_ppl", "forbidden_share", "distinct_2"),
                      "penalty": ("test_ppl", "data_ppl_median", "distinct_2")}


def comparison_legend(row: dict[str, str], block: str) -> str:
    """verify: 'VA: beam, verifier recall 1.00, false rejection 0.00' (realised rates), or 'A: beam,
    no verifier'; any other block: 'P1: beam, repetition penalty 1'."""
    head = f"{row['label']}: {row['decoding']}"
    if block != "verify":
        return f"{head}, repetition penalty {float(row['repetition_penalty']):g}"
    if not np.isfinite(float(row["verifier_recall"])):
        return head + ", no verifier"
    return (f"{head}, verifier recall {float(row['verifier_recall']):.2f}, "
            f"false rejection {float(row['verifier_false_rejection']):.2f}")


def plot_comparison(rows: list[dict[str, str]], out_pdf: str, *, block: str) -> list:
    """A comparison block's figure (verify: issue 21; penalty: issue 13): its COMPARISON_METRICS
    against generation, every regime of its summary (its own and the compared ones) one line, mean
    over its chains, band = range; beam search solid, sampling dashed."""
    if block not in COMPARISON_METRICS:
        raise ValueError(f"block must be one of {list(COMPARISON_METRICS)}, got {block!r}")
    per_chain = grouped(rows, ("label", "chain"))
    labels = sorted({k[0] for k in per_chain})
    palette = dict(zip(labels, colors(len(labels))))
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 3, figsize=(7.4, 2.9))
        for ax, name in zip(axes, COMPARISON_METRICS[block]):
            for label in labels:
                first = next(r for r in rows if r["label"] == label)
                _mean_and_range(ax, per_chain, label, name, palette[label],
                                ls="-" if first["decoding"] == "beam" else "--")
                ax.lines[-1].set_label(comparison_legend(first, block))
            ax.set(xlabel="generation", ylabel=YLABELS[name])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if np.isfinite(float(rows[0]["entropy_rate"])):  # a real corpus has no known truth
            axes[0].axhline(np.exp(float(rows[0]["entropy_rate"])), color="0.4", ls=":", lw=1,
                            label="truth: exp(entropy rate)")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=2, frameon=False, fontsize=7)
        fig.tight_layout(rect=(0, 0.04 + 0.045 * ((len(names) + 1) // 2), 1, 1))
        return save(fig, out_pdf)
