"""What a GMM job is: the data sets and their true densities (`truth`), the chain setting
(`GMMConfig`, one per data set of the `gmm:` config block) and the layout of its result
(`GMMChains`, arrays [R replicates, G+1 generations, ...]).

Every check a job makes before it starts lives here (`GMMConfig.__post_init__`,
`check_components`); `modelcollapse.config` calls the same ones, so `check-config` and the job
refuse the same settings.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import numpy as np

from modelcollapse import knobs, regimes
from modelcollapse.gmm.mixture import GMMParams
from modelcollapse.knobs import knob
from modelcollapse.regimes import Regime, check_pool_points

DATASETS = ("blob", "two_blobs")
INITS = ("kmeans++", "random")
ENGINES = ("async", "lockstep")
# The paper's snapshot generations (its GMM figure); those beyond `generations` are dropped.
SNAPSHOTS = (0, 50, 100, 150, 200, 350, 2000)


def _is_int(value, low: int = 1) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_components(sample_size: int, n_components: int) -> None:
    """EM needs at least one point per component; ValueError if not."""
    if sample_size < n_components:
        raise ValueError(f"sample_size ({sample_size}) must be >= n_components ({n_components}): "
                         f"EM needs at least one point per component")


def config_from_block(block, *, data: str) -> GMMConfig:
    """The GMMConfig of the workflow's `gmm` config block for data set `data` (the rules run one job
    per data set); ValueError names the bad setting."""
    return knobs.from_block(GMMConfig, block, data=data, regime=Regime.from_config(block["regime"]))


class GMMChains(NamedTuple):
    """What `simulate` returns; its field names are the keys `gmm simulate` writes to the .npz."""

    weights: np.ndarray  # [R, G+1, K]; generation 0 is the fit to the original data (GMM_0)
    means: np.ndarray  # [R, G+1, K, d]
    covs: np.ndarray  # [R, G+1, K, d, d]
    log_likelihood: np.ndarray  # [R, G+1]: each fit's last mean log-likelihood on its training set
    n_iter: np.ndarray  # [R, G+1] int32: EM iterations per fit
    converged: np.ndarray  # [R, G+1] bool
    l2_gmm0: np.ndarray  # [R, G+1] float64: squared L2 distance between GMM_0 and GMM_g (closed form)
    l2_truth: np.ndarray  # [R, G+1] float64: squared L2 distance between the true density and GMM_g
    snapshot_generations: np.ndarray  # [S] int32
    snapshot_points: np.ndarray  # [S, N, d]: replicate 0's draws that generation g was fitted on (g=0: original)


def truth(data: str) -> GMMParams:
    """The true data distribution of a named data set, as a mixture (float64 numpy arrays).

    blob: the paper's one standard 2-D Gaussian. two_blobs: two unit-covariance blobs at (-/+3, 0)
    with weights 1/2, 6 standard deviations apart (density exp(-4.5) of a peak at the midpoint),
    so a lost mode shows as a blob that never comes back, not only as shrinking variance.
    """
    if data == "blob":
        return GMMParams(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    if data == "two_blobs":
        return GMMParams(np.full(2, 0.5), np.array([[-3.0, 0.0], [3.0, 0.0]]), np.stack([np.eye(2)] * 2))
    raise ValueError(f"data must be one of {list(DATASETS)}, got {data!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GMMConfig:
    """One GMM chain setting (the `gmm:` config block gives one per data set)."""

    INDEX0: ClassVar[str] = "real-data model"  # what index 0 of the results is (regimes.INDEX0)

    sample_size: int = knob(help="N, points drawn per generation and in the original data set; at least "
                                 "n_components (the paper: 1000).", type="integer", minimum=2, maximum=1000000)
    generations: int = knob(help="Refits after generation 0, the fit to the original data (the paper: 2050).",
                            type="integer", minimum=1, maximum=100000)
    replicates: int = knob(help="Independent chains per data set, run together with vmap (the paper ran one).",
                           type="integer", minimum=2, maximum=100000)
    n_components: int = knob(2, help="K, mixture components fitted each generation (the paper: 2); at most "
                                     "sample_size.", type="integer", minimum=1, maximum=8)
    data: str = knob("blob", block=False, help="The true distribution (the rules run both data sets): one "
                     "standard 2-D Gaussian (the paper's) or two unit blobs at (-/+3, 0).", type="string",
                     enum=list(DATASETS))
    regime: Regime = Regime()  # how each generation's training set is formed (the block's regime)
    tol: float = knob(1e-5, help="EM stops when the mean log-likelihood changes by less (the paper: 1e-5; 0 runs "
                      "every fit to max_iter). Write 1.0e-5: YAML reads 1e-5 as text.", type="number", minimum=0,
                      maximum=1)
    max_iter: int = knob(2000, help="EM iterations per fit at most (the paper's 2000).", type="integer", minimum=1,
                         maximum=100000)
    reg_covar: float = knob(1e-6, help="Covariance floor added to each diagonal (scikit-learn's 1.0e-6); must be "
                            "> 0 so degenerate fits stay finite.", type="number", exclusiveMinimum=0, maximum=1)
    init: str = knob("kmeans++", help="EM initialisation: kmeans++ (k-means++ seeds, then Lloyd's k-means: "
                     "scikit-learn's default 'kmeans') or random (random responsibilities).", type="string",
                     enum=list(INITS))
    snapshots: tuple = knob(SNAPSHOTS, help="Generations shown in the snapshot figure and the paper's table "
                            "(replicate 0's points are stored); those beyond `generations` are dropped, at least "
                            "one must remain.", type="array", minItems=1, uniqueItems=True,
                            items={"type": "integer", "minimum": 0})

    def __post_init__(self):
        knobs.check(self)
        check_components(self.sample_size, self.n_components)
        if not isinstance(self.regime, Regime):
            raise ValueError(f"regime must be a modelcollapse.regimes.Regime, got {self.regime!r}")
        from modelcollapse.gmm.generation import ColumnOps

        regimes.check(self.regime, ColumnOps.offers, family="the GMM chain")
        check_pool_points(self.regime, self.sample_size * (self.generations + 1),
                          what="sample_size x (generations + 1)")

    @property
    def snapshot_generations(self) -> np.ndarray:
        """The snapshot generations that the chain reaches, sorted; [S] int32."""
        return np.array(sorted(s for s in self.snapshots if s <= self.generations), np.int32)
