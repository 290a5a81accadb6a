"""Shared figure style and the deterministic save used by every figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from modelcollapse.io import atomic_path  # noqa: E402

RC = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,
}


def colors(n: int) -> list:
    return [plt.get_cmap("viridis")(x) for x in ([0.5] if n == 1 else [i / (n - 1) * 0.85 for i in range(n)])]


def save(fig, out_pdf: str | Path) -> list[Path]:
    """Write `out_pdf` and the PNG beside it atomically, without creation dates (reproducible bytes)."""
    out_pdf = Path(out_pdf)
    if out_pdf.suffix != ".pdf":
        raise ValueError(f"figure output must end in .pdf, got {out_pdf}")
    written = []
    for path, meta in ((out_pdf, {"CreationDate": None, "Producer": None}),
                       (out_pdf.with_suffix(".png"), {"Software": None})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], metadata=meta, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def grouped(rows: list[dict[str, str]], by: tuple[str, ...]) -> dict[tuple, dict[str, np.ndarray]]:
    """Tidy CSV rows -> {key tuple: {numeric column: array over generations}}, sorted by generation."""
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault(tuple(_parse(row[k]) for k in by), []).append(row)
    out = {}
    for key, group in groups.items():
        group.sort(key=lambda r: int(r["generation"]))
        numeric = [name for name, v in group[0].items() if name not in by and _is_number(v)]
        out[key] = {name: np.array([float(r[name]) for r in group]) for name in numeric}
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _parse(text: str):
    return int(text) if text.lstrip("-").isdigit() else text
