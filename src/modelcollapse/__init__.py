"""modelcollapse: the model-collapse experiments of Shumailov et al. (Nature 2024) in JAX.

Experiment families live in their own modules (`gaussian`, ...), each with a frozen config
dataclass, `fit`/`sample`, `simulate` for the whole recursive chain, and `summarize`; the
`theory` module holds the closed forms they are checked against. Importing this package does
not import JAX, so `modelcollapse.runtime.configure` can still choose the platform.
"""

__version__ = "0.1.0"
