"""Log-likelihood and perplexity of token sequences under a GPT (the paper's perplexity histograms).

The paper (Shumailov et al., Nature 2024, its OPT-125m figure) scores each generated or original
sequence by its perplexity under a model: log p(x) = sum_t log p(x_t | x_<t). Here
`sequence_log_likelihood` returns that sum per sequence, over positions t >= max(1, prefix_length)
(position 0 has no context and is never scored; `prefix_length` leaves out a prompt, e.g. the
64-token prefix that the paper's generations continue), and `sequence_perplexity` returns
exp(-sum / number of scored tokens).

Sequences are scored in jitted batches of a fixed shape [batch_size, T] (the last batch padded with
copies of row 0, dropped afterwards), so one compilation per (batch_size, T) serves any number N.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from modelcollapse.lm.model import GPT
from modelcollapse.lm.opt import OPT
from modelcollapse.runtime import map_in_batches


@partial(jax.jit, static_argnums=0)
def _batch_log_likelihood(graphdef, state, batch, first):
    """batch int32 [B, T] -> [B] sums of log p(x_t | x_<t) over t >= first."""
    logp = jax.nn.log_softmax(nnx.merge(graphdef, state)(batch[:, :-1]).astype(jnp.float32), axis=-1)
    target = jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1)[..., 0]  # [B, T - 1]: targets 1 .. T-1
    weight = (jnp.arange(1, batch.shape[1]) >= first).astype(jnp.float32)
    return jnp.sum(target * weight, axis=-1)


def sequence_log_likelihood(model: GPT | OPT, tokens, *, batch_size: int = 64, prefix_length: int = 0,
                            state: nnx.State | None = None) -> np.ndarray:
    """Sum of log p(x_t | x_<t) over t >= max(1, prefix_length), per sequence (natural log).

    model: the GPT (architecture, and parameters unless `state` is given, e.g. a TrainResult's
    best_state). tokens: int [N, T] with 2 <= T <= context + 1 and prefix_length < T.
    Returns float64 [N] (accumulated in float32 on the device).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be an integer array [N, T], got {tokens.dtype}{tokens.shape}")
    n, t = tokens.shape
    # The last token is only predicted, never read: T may be context + 1, as for training blocks.
    if not 2 <= t <= model.config.context + 1:
        raise ValueError(f"tokens length T must be in [2, context + 1 = {model.config.context + 1}], got {t}")
    if n and not (0 <= tokens.min() and tokens.max() < model.config.vocab_size):
        raise ValueError(f"tokens must be in [0, vocab_size={model.config.vocab_size})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(prefix_length, int) or not 0 <= prefix_length < t:
        raise ValueError(f"prefix_length must be an integer in [0, T={t}), got {prefix_length!r}")
    if n == 0:
        return np.zeros(0)
    graphdef, own_state = nnx.split(model)
    state = own_state if state is None else state
    first = jnp.int32(max(1, prefix_length))
    out = map_in_batches(lambda batch: _batch_log_likelihood(graphdef, state, jnp.asarray(batch), first),
                         tokens.astype(np.int32), batch_size)
    return out.astype(np.float64)


def sequence_perplexity(model: GPT | OPT, tokens, *, batch_size: int = 64, prefix_length: int = 0,
                        state: nnx.State | None = None) -> np.ndarray:
    """exp(-(sum of log p over scored tokens) / (number of scored tokens)) per sequence, [N]."""
    loglik = sequence_log_likelihood(model, tokens, batch_size=batch_size, prefix_length=prefix_length,
                                     state=state)
    scored = np.asarray(tokens).shape[1] - max(1, prefix_length)
    return np.exp(-loglik / scored)
