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
from typing import NamedTuple

import numpy as np

from modelcollapse.gmm.mixture import GMMParams
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
    return GMMConfig(sample_size=block["sample_size"], generations=block["generations"],
                     replicates=block["replicates"], n_components=block["n_components"], data=data,
                     regime=Regime.from_config(block["regime"]), tol=float(block["tol"]),
                     max_iter=block["max_iter"], reg_covar=float(block["reg_covar"]), init=block["init"],
                     snapshots=tuple(block["snapshots"]))


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

    sample_size: int  # N: points drawn per generation (and the size of the original data set)
    generations: int  # G: refits after generation 0 (the fit to the original data)
    replicates: int  # R: independent chains, run in parallel with vmap
    n_components: int = 2  # K: mixture components fitted each generation
    data: str = "blob"  # the true distribution, one of DATASETS
    regime: Regime = Regime()  # how each generation's training set is formed
    tol: float = 1e-5  # EM stops when the mean log-likelihood changes by less (scikit-learn's test)
    max_iter: int = 2000  # EM iteration cap per fit (the paper's)
    reg_covar: float = 1e-6  # covariance floor added to each diagonal (scikit-learn's default)
    init: str = "kmeans++"  # 'kmeans++' seeds + Lloyd, or 'random' responsibilities
    snapshots: tuple = SNAPSHOTS  # generations whose draws of replicate 0 are stored (for the figure)

    def __post_init__(self):
        for name in ("sample_size", "generations", "replicates", "n_components", "max_iter"):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_components(self.sample_size, self.n_components)
        if self.data not in DATASETS:
            raise ValueError(f"data must be one of {list(DATASETS)}, got {self.data!r}")
        if not isinstance(self.regime, Regime):
            raise ValueError(f"regime must be a modelcollapse.regimes.Regime, got {self.regime!r}")
        if not (_is_number(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if not (_is_number(self.reg_covar) and self.reg_covar > 0):
            raise ValueError(f"reg_covar must be a finite number > 0 (the floor that keeps covariances positive "
                             f"definite), got {self.reg_covar!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {self.init!r}")
        snaps = tuple(self.snapshots)
        if any(not _is_int(s, 0) for s in snaps) or len(set(snaps)) != len(snaps):
            raise ValueError(f"snapshots must be distinct integers >= 0, got {self.snapshots!r}")
        check_pool_points(self.regime, self.sample_size * (self.generations + 1),
                          what="sample_size x (generations + 1)")

    @property
    def snapshot_generations(self) -> np.ndarray:
        """The snapshot generations that the chain reaches, sorted; [S] int32."""
        return np.array(sorted(s for s in self.snapshots if s <= self.generations), np.int32)
