"""Recursive fit-and-sample of Gaussian mixtures by EM (Shumailov et al., Nature 2024, the GMM figure).

The paper's setting: N = 1000 points from one standard 2-D Gaussian; a 2-component full-covariance
mixture is fitted by EM; each generation fits on the previous generation's N samples and draws N
new ones. Generation 0 is the fit to the original data (the paper's GMM_0); `generations` counts
the refits after it, so a chain has G + 1 fits.

The package, by concern (each module's docstring says more):
- `mixture`: a mixture's parameters, log-densities, `score` and `sample`; the [d, N] point layout.
- `spec`: the data sets and their `truth`, `GMMConfig` (a job's checks) and `GMMChains` (its result).
- `em`: one EM fit on one chain's points: E/M steps, k-means++/Lloyd or random start, convergence.
- `generation`: one generation of one chain: keys, draws, the regime's training set.
- `engines`: the lockstep and async engines over many vmapped chains, and `simulate`.
- `summary`: per-generation statistics across chains (`summarize`).

Callers use the names re-exported here (`gmm.simulate`, `gmm.GMMConfig`, ...), not the modules.
"""

from modelcollapse.gmm.em import LLOYD_ITER, LLOYD_TOL, GMMFit, em_step, fit, initialize
from modelcollapse.gmm.engines import default_slots, simulate
from modelcollapse.gmm.mixture import GMMParams, sample, score
from modelcollapse.gmm.spec import (DATASETS, ENGINES, INITS, SNAPSHOTS, GMMChains, GMMConfig, check_components,
                                   config_from_block, truth)
from modelcollapse.gmm.summary import component_scale, mode_mass, summarize

# Private names the tests reach for: they replay chains at the generation key tags and count the
# compilations of the jitted entry points.
from modelcollapse.gmm.em import _fit_jit  # noqa: F401
from modelcollapse.gmm.engines import _simulate_async  # noqa: F401
from modelcollapse.gmm.generation import _DRAW, _FIT, _REAL, _SUBSET  # noqa: F401

__all__ = ["DATASETS", "ENGINES", "INITS", "LLOYD_ITER", "LLOYD_TOL", "SNAPSHOTS", "GMMChains", "GMMConfig", "GMMFit",
           "GMMParams", "check_components", "component_scale", "config_from_block", "default_slots", "em_step", "fit",
           "initialize", "mode_mass", "sample", "score", "simulate", "summarize", "truth"]
