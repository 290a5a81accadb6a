"""Phase diagrams of sweeps: a simulated metric over a 2-D grid as colours, its exact law as contours."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from modelcollapse.plots.style import RC, save


def grid_of(rows: list[dict[str, str]], spec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x values, y values, metric [ny, nx], theory [ny, nx]) of a sweep's table; ValueError if a
    cell is missing or given twice (the grid must have one row per point)."""
    xs = sorted({float(r[spec["x"]]) for r in rows})
    ys = sorted({float(r[spec["y"]]) for r in rows})
    metric, theory = np.full((len(ys), len(xs)), np.nan), np.full((len(ys), len(xs)), np.nan)
    for r in rows:
        i, j = ys.index(float(r[spec["y"]])), xs.index(float(r[spec["x"]]))
        if np.isfinite(metric[i, j]):
            raise ValueError(f"two rows at {spec['x']} = {xs[j]:g}, {spec['y']} = {ys[i]:g}; a phase diagram needs "
                             f"one row per grid point")
        metric[i, j], theory[i, j] = float(r[spec["metric"]]), float(r[spec["theory"]])
    if np.isnan(metric).any():
        raise ValueError(f"the table lacks some ({spec['x']}, {spec['y']}) cells of the grid")
    return np.array(xs), np.array(ys), metric, theory


def _axis_name(column: str) -> str:
    """A table column as an axis label: 'sample_size' -> 'sample size', 'grid:regime.tau' -> 'tau'."""
    return column.removeprefix("grid:").rsplit(".", 1)[-1].replace("_", " ")


def phase_diagram(panels, out_pdf: str) -> list:
    """One heat map per sweep: log10 of the metric (cells), log10 of its exact law (labelled contours)."""
    with plt.rc_context(RC):
        cols = min(len(panels), 2)  # two a row: legible at a page's width
        rows_of_panels = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows_of_panels, cols, figsize=(3.6 * cols, 2.9 * rows_of_panels), squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        for ax, (name, family, spec, rows) in zip(axes.flat, panels):
            xs, ys, metric, theory = grid_of(rows, spec)
            logm, logt = np.log10(metric), np.log10(theory)
            lo, hi = np.nanmin([logm.min(), np.nanmin(logt)]), np.nanmax([logm.max(), np.nanmax(logt)])
            mesh = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5, logm,
                                 cmap="viridis", vmin=lo, vmax=hi, shading="flat")
            levels = np.arange(np.floor(lo * 2) / 2, hi + 0.5, 0.5)
            if np.isfinite(logt).all() and len(levels) > 1 and min(logt.shape) >= 2:  # contours need a 2 x 2 grid
                cs = ax.contour(np.arange(len(xs)), np.arange(len(ys)), logt, levels=levels, colors="w",
                                linewidths=0.9, linestyles="--")
                ax.clabel(cs, fmt=lambda v: f"{10 ** v:.3g}", fontsize=6)
            ax.set_xticks(np.arange(len(xs)), [f"{x:g}" for x in xs])
            ax.set_yticks(np.arange(len(ys)), [f"{y:g}" for y in ys])
            ax.set(xlabel=_axis_name(spec["x"]), ylabel=_axis_name(spec["y"]),
                   title=f"{family}: {spec['label']}")
            fig.colorbar(mesh, ax=ax, label=r"$\log_{10}$ (simulated)")
        fig.tight_layout()
        return save(fig, out_pdf)
