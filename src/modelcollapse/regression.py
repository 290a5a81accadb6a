"""Linear regression trained on its own labels (Dohmatob, Feng and Kempe 2024, "Model collapse
demystified"; Gerstgrasser et al. 2024, "Is model collapse inevitable?").

The truth is y = x . b* + sigma eps with x ~ N(0, I_d). Generation 0's original data are T rows
(x, y) from the truth; model g + 1 is the ordinary least-squares fit to the training set that the
data regime forms, and model g labels its T rows as y = x . b_g + sigma eps (fresh noise). The
design x is drawn afresh every generation (`design: fresh`) or is one fixed T x d matrix for every
generation and chain (`design: fixed`, the setting of Gerstgrasser et al.'s accumulate result).
Chains run through `modelcollapse.family` (jit(vmap(lax.scan)), every regime of
`modelcollapse.regimes`); the metric `error` is ||b_g - b*||^2, whose exact expectation
`modelcollapse.theory.regression` gives.

Rows are [x_1 .. x_d, y], float32 [T, d + 1].
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse import knobs
from modelcollapse import metrics as stats
from modelcollapse import family as families
from modelcollapse.family import Family
from modelcollapse.knobs import knob
from modelcollapse.regimes import Regime

DESIGNS = ("fresh", "fixed")


def fit(rows: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted least squares b = (X^T W X)^{-1} X^T W y; rows [T, d + 1], weights [T] of 0/1."""
    x, y = rows[:, :-1], rows[:, -1]
    xw = x * weights[:, None]
    return jnp.linalg.solve(xw.T @ x, xw.T @ y)


def fixed_design(seed: int, sample_size: int, dim: int) -> np.ndarray:
    """The fixed design X [T, d], standard normal, drawn once from `seed` (float32)."""
    return np.asarray(jax.random.normal(jax.random.key(seed), (sample_size, dim)), np.float32)


def check(*, dim, noise, design, sample_size) -> None:
    """ValueError naming the first bad argument of `family`."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise > 0:
        raise ValueError(f"noise must be a number > 0, got {noise!r}")
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {list(DESIGNS)}, got {design!r}")
    if design == "fixed" and (sample_size is None or sample_size <= dim + 1):
        raise ValueError(f"design 'fixed' needs sample_size > dim + 1 = {dim + 1}, got {sample_size!r}")


def family(*, dim: int, noise: float = 1.0, design: str = "fresh", sample_size: int | None = None,
           design_seed: int = 0) -> Family:
    """The regression family with b* = (1, ..., 1) / sqrt(d) and noise sd `noise`.

    design 'fixed' needs `sample_size` (T, the rows every generation labels: the fixed design has
    T rows, so regimes must train on whole generations of T rows) and draws X from `design_seed`.
    """
    check(dim=dim, noise=noise, design=design, sample_size=sample_size)
    b_star = jnp.full(dim, 1.0 / np.sqrt(dim), jnp.float32)
    x_fixed = jnp.asarray(fixed_design(design_seed, sample_size, dim)) if design == "fixed" else None

    def sample(key, b, n):
        k_x, k_eps = jax.random.split(key)
        if x_fixed is None:
            x = jax.random.normal(k_x, (n, dim))
        elif n == x_fixed.shape[0]:
            x = x_fixed
        else:  # fewer rows (mix's real share from the truth): the first n rows of the design
            x = x_fixed[:n]
        y = x @ b + noise * jax.random.normal(k_eps, (n,))
        return jnp.concatenate([x, y[:, None]], axis=1)

    def metrics(b):
        return {"error": jnp.sum((b - b_star) ** 2)}

    return Family(name=f"regression-{design}", truth=b_star, fit=fit, sample=sample, metrics=metrics)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegressionConfig:
    """One regression chain setting (the `regression:` config block runs one per regime listed)."""

    INDEX0: ClassVar[str] = "truth"  # what index 0 of the results is (regimes.INDEX0)

    dim: int = knob(help="d, features (b* = (1, ..., 1) / sqrt(d)).", type="integer", minimum=1, maximum=1000)
    sample_size: int = knob(help="T, rows each generation labels (and rows of the original data); more than "
                                 "dim + 1.", type="integer", minimum=3, maximum=1000000)
    noise: float = knob(1.0, help="sigma, standard deviation of the label noise.", type="number",
                        exclusiveMinimum=0, maximum=1000)
    design: str = knob("fixed", help="fixed: one T x d Gaussian design for every generation, drawn from the seed "
                                     "(Gerstgrasser et al.'s setting, where accumulate has its exact law); fresh: "
                                     "new rows every generation.", type="string", enum=list(DESIGNS))
    generations: int = knob(50, help="G, refits after the fit to the original data.", type="integer", minimum=1,
                            maximum=100000)
    replicates: int = knob(1000, help="R, independent chains per regime, run together with vmap.", type="integer",
                           minimum=2, maximum=10000000)
    regime: Regime = Regime()  # one entry of the block's `regimes` (one job each)
    design_seed: int = knob(0, block=False, help="Seed of the fixed design's draw (the rules: the config's seed).",
                            type="integer", minimum=0)

    def __post_init__(self):
        knobs.check(self)
        if self.sample_size <= self.dim + 1:
            raise ValueError(f"sample_size must exceed dim + 1 = {self.dim + 1} (least squares on T rows has "
                             f"a finite expected error only then), got {self.sample_size}")

    def family(self) -> Family:
        return family(dim=self.dim, noise=self.noise, design=self.design, sample_size=self.sample_size,
                      design_seed=self.design_seed)


def config_from_block(block, *, label: str, seed: int = 0) -> RegressionConfig:
    """The RegressionConfig of the `regression` block for the regime of `regimes` labelled `label`
    (the rules run one job per regime); the fixed design is drawn from the config's seed."""
    by_label = {Regime.from_config(r).label: Regime.from_config(r) for r in block["regimes"]}
    if label not in by_label:
        raise ValueError(f"label {label!r} is not a regime of regression.regimes ({sorted(by_label)})")
    return knobs.from_block(RegressionConfig, block, regime=by_label[label], design_seed=seed)


def simulate(cfg: RegressionConfig, seed: int) -> np.ndarray:
    """||b_g - b*||^2 of `replicates` chains, float32 [R, G + 1] (index 0: the truth, 0)."""
    run = families.simulate(cfg.family(), seed, sample_size=cfg.sample_size, generations=cfg.generations,
                            replicates=cfg.replicates, regime=cfg.regime)
    return np.asarray(run["error"])


def summarize(error: np.ndarray, cfg: RegressionConfig) -> dict[str, np.ndarray]:
    """Per-generation mean error (and s.e., median) beside the exact law where the regime has one
    (`theory.regression.expected_error`; NaN where not); every array [G + 1]."""
    from modelcollapse.theory import regression as theory

    error = np.asarray(error, np.float64)
    design = fixed_design(cfg.design_seed, cfg.sample_size, cfg.dim) if cfg.design == "fixed" else None
    out = {"generation": np.arange(error.shape[1])}
    out["error"], out["error_se"] = stats.mean_and_se(error)
    out["error_q50"] = np.median(error, axis=0)
    out["error_theory"] = theory.expected_error(cfg.regime, out["generation"], dim=cfg.dim,
                                                sample_size=cfg.sample_size, noise=cfg.noise, design=design)
    return out


def sweep_rows(block, seed: int) -> list[dict]:
    """A sweep point (`modelcollapse.sweeps`): the block's chains, one per regime of `regimes`,
    each summarized at the last generation."""
    from modelcollapse import sweeps

    rows = []
    for regime in block["regimes"]:
        cfg = config_from_block(block, label=Regime.from_config(regime).label, seed=seed)
        stats = summarize(simulate(cfg, seed), cfg)
        rows.append({"sample_size": cfg.sample_size, "dim": cfg.dim, "design": cfg.design,
                     "regime": cfg.regime.label, "real_fraction": cfg.regime.real_fraction}
                    | sweeps.last_generation(stats))
    return rows
