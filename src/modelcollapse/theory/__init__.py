"""Closed-form theory for every experiment family, one module each, with the sources of each formula.

`modelcollapse.theory` itself re-exports the 1-D Gaussian formulas for brevity
(`theory.var_mean`, `theory.expected_w2_squared`, ...).
"""

from modelcollapse.theory.gaussian import *  # noqa: F401,F403
