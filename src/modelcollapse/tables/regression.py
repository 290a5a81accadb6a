"""Headline numbers of the regression section (generated macros; every number in the text)."""

from __future__ import annotations

import numpy as np

from modelcollapse.paper import latex_number, latex_pm


def numbers(rows: list[dict[str, str]]) -> dict[str, str]:
    """Per regime at the last generation: the mean error +- s.e., its exact law, the ratio to the
    first generation's error; the setting (d, T, G) and the pi^2/6 bound of accumulate."""
    gmax = max(int(r["generation"]) for r in rows)
    first = {r["regime"]: r for r in rows if int(r["generation"]) == 1}
    last = {r["regime"]: r for r in rows if int(r["generation"]) == gmax}
    any_row = next(iter(last.values()))
    out = {"regression.G": str(gmax), "regression.d": any_row["dim"], "regression.T": any_row["sample_size"],
           "regression.design": any_row["design"]}
    for label, r in last.items():
        prefix = f"regression.{label}"
        error, theory = float(r["error"]), float(r["error_theory"])
        out[f"{prefix}.error"] = latex_pm(error, float(r["error_se"]))
        out[f"{prefix}.theory"] = latex_number(theory)  # n/a where the regime has no exact law
        out[f"{prefix}.ratio"] = latex_number(error / float(first[label]["error"]))
    fit = float(next(iter(first.values()))["error_theory"])
    out["regression.fit_error"] = latex_number(fit)
    out["regression.bound"] = latex_number(np.pi**2 / 6 * fit)
    return out
