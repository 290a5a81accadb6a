"""A new family in about 80 lines: the exponential distribution, its rate refitted by maximum likelihood.

Generation 0 is Exp(rate lambda_0), of scale s_0 = 1 / lambda_0. Model n+1 is the MLE on its training
set, lambda = (sum of weights) / (weighted sum of the points), i.e. scale = the weighted sample mean.

Theory under `replace` (each model fitted to M draws of the previous one): a sum of M draws of
Exp(scale s_n) is s_n Gamma(M, 1), so

    s_{n+1} = s_n G_n / M,   G_n ~ Gamma(M, 1) independent,

hence, exactly for every n (psi = digamma, psi' = trigamma):

    E[log s_n] = log s_0 + n (psi(M) - log M)     (psi(M) < log M: a negative drift ~ -n / (2M))
    Var[log s_n] = n psi'(M)
    E[s_n] = s_0,  Var[s_n] = s_0^2 ((1 + 1/M)^n - 1)
    E[KL(truth || model n)] = n (psi(M) - log M) + (M / (M - 1))^n - 1          (M >= 2)

The scale is a martingale (its mean never moves) that still collapses: log s_n is a random walk
with negative drift, so s_n -> 0 almost surely while ever rarer chains carry the mean. This is
the 1-D Gaussian's sigma^2 story (Shumailov et al. 2024, Theorem 3.1) in a one-parameter family.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from modelcollapse import knobs
from modelcollapse.family import Family
from modelcollapse.knobs import knob
from modelcollapse.regimes import Regime


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExponentialConfig:
    """One chain setting of the `exponential:` block (the rules run one per entry of its regimes).
    Each knob is a setting: the block's schema, the checks and the command-line flags come from it."""

    INDEX0: ClassVar[str] = "truth"  # index 0 of the results is the true distribution
    rate: float = knob(1.0, help="True rate lambda_0 of generation 0 (scale 1 / rate).", type="number",
                       exclusiveMinimum=0)
    sample_size: int = knob(help="M, points drawn per generation and in the original data; at least 2 (the KL "
                            "theory needs M >= 2).", type="integer", minimum=2, maximum=1000000)
    generations: int = knob(help="Refits after generation 0.", type="integer", minimum=1, maximum=100000)
    replicates: int = knob(help="Independent chains per regime, run together with vmap.", type="integer", minimum=2,
                           maximum=10000000)
    regime: Regime = Regime()  # an entry of the block's regimes

    def __post_init__(self):
        knobs.check(self)


def fit(x: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
    """MLE of the rate from the rows of x [T] with weight 1 (weights [T] of 0/1)."""
    return {"rate": jnp.sum(weights) / jnp.sum(weights * x)}


def sample(key: jax.Array, params: dict[str, jax.Array], n: int) -> jax.Array:
    """n draws from Exp(rate); [n] float32."""
    return jax.random.exponential(key, (n,)) / params["rate"]


def kl(rate0, rate):
    """KL(Exp(rate0) || Exp(rate)) = log(rate0 / rate) + rate / rate0 - 1, in nats."""
    return jnp.log(rate0 / rate) + rate / rate0 - 1.0


@lru_cache(maxsize=None)  # one Family object per rate, so repeated simulations reuse the compilation
def family(rate: float = 1.0) -> Family:
    """The exponential family with true rate `rate` (> 0)."""
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
        raise ValueError(f"rate must be a number > 0, got {rate!r}")
    rate0 = float(rate)

    def metrics(params):
        # log_scale from the rate, not log(scale): stays exact where the scale itself would underflow.
        return {"scale": 1.0 / params["rate"], "log_scale": -jnp.log(params["rate"]),
                "kl": kl(rate0, params["rate"])}

    return Family(name="exponential", truth={"rate": jnp.float32(rate0)}, fit=fit, sample=sample, metrics=metrics)


# -- theory (replace regime), each a function of the generation n (array) and M


def expected_log_scale(n, sample_size: int, scale0: float = 1.0) -> np.ndarray:
    return np.log(scale0) + np.asarray(n, np.float64) * (special.digamma(sample_size) - np.log(sample_size))


def var_log_scale(n, sample_size: int) -> np.ndarray:
    return np.asarray(n, np.float64) * special.polygamma(1, sample_size)


def expected_scale(n, scale0: float = 1.0) -> np.ndarray:
    return np.full(np.shape(n), scale0, np.float64)


def var_scale(n, sample_size: int, scale0: float = 1.0) -> np.ndarray:
    return scale0**2 * ((1.0 + 1.0 / sample_size) ** np.asarray(n, np.float64) - 1.0)


def expected_kl(n, sample_size: int) -> np.ndarray:
    if sample_size < 2:
        raise ValueError(f"sample_size must be >= 2 (E[1/G] diverges for M = 1), got {sample_size}")
    n = np.asarray(n, np.float64)
    return n * (special.digamma(sample_size) - np.log(sample_size)) + (sample_size / (sample_size - 1)) ** n - 1.0
