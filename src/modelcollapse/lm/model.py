"""A small GPT decoder in flax.nnx, with a key/value cache for decoding.

The architecture is GPT-2's (Radford et al. 2019) at a small size, as in nanoGPT: token and learned
position embeddings; `n_layers` pre-LayerNorm blocks x + attn(ln1(x)), x + mlp(ln2(x)) with causal
multi-head self-attention and a GELU MLP; a final LayerNorm; the output projection TIED to the token
embedding, logits = h @ E^T (one [V, d] array, no output bias). Weights start as GPT-2's: normal(0.02),
the two residual projections of each block scaled by 1/sqrt(2 n_layers), biases zero, LayerNorm 1/0.
Dropout (`config.dropout`, default 0) acts on the embeddings' sum and on each residual branch, only
when `deterministic=False` and a dropout key is given; attention weights are not dropped.

The paper (Shumailov et al., Nature 2024, its language-model section) fine-tuned OPT-125m; this
model is the same kind of decoder at a size a CPU trains in minutes.

Parameter count (`param_count`): V d + C d (embeddings) + L (4 d^2 + 2 d f + 9 d + f) (per block:
qkv 3d^2 + 3d, out d^2 + d, fc1 d f + f, fc2 f d + d, two LayerNorms 4d) + 2d (final LayerNorm);
669,184 at the default size (V = 2000, C = 128, L = 2, d = 128, f = 512).

Cache (the interface `lm.generate` codes against): `init_cache(batch_size, max_length)` gives
{"k": [B, L, H, S, hd], "v": [B, L, H, S, hd]} zeros, S = max_length, batch FIRST in every leaf so
that beam search can reorder rows with `jax.tree.map(lambda c: c[idx], cache)`.
`decode(tokens [B, T], cache, position)` writes the chunk's keys and values at [position,
position + T) and lets the chunk's t-th token attend to cached positions <= position + t (a mask over
S, so `position` may be traced: it works inside jit and lax.scan). The prompt goes in as one chunk
at position 0, then one token at a time.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from modelcollapse import knobs
from modelcollapse.knobs import knob

# GPT-2's initialisation scale.
INIT_STD = 0.02
# Large negative instead of -inf for masked scores: exp underflows to exactly 0, and a row can
# never be all -inf (so no NaN), since every token sees at least itself.
_MASKED = -1e30


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = knob(block=False, help="V, tokens in the vocabulary (the corpus's).", type="integer",
                           minimum=1)
    context: int = knob(128, help="C, positions (a prompt block plus a generated block).", type="integer", minimum=1,
                        maximum=8192)
    n_layers: int = knob(2, help="L, transformer blocks.", type="integer", minimum=1, maximum=96)
    d_model: int = knob(128, help="d, residual width; a multiple of n_heads.", type="integer", minimum=1,
                        maximum=8192)
    n_heads: int = knob(4, help="H, attention heads.", type="integer", minimum=1, maximum=128)
    d_ff: int | None = knob(None, block=False, help="f, MLP hidden width; null: 4 x d_model (GPT-2).",
                            type=["integer", "null"], minimum=1)
    dropout: float = knob(0.0, help="Dropout on embeddings and residual branches during training.", type="number",
                          minimum=0, exclusiveMaximum=1)

    def __post_init__(self):
        knobs.check(self)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def param_count(config: GPTConfig, *, embeddings: bool = True) -> int:
    """Number of parameters, from the formula in the module docstring (tied output: no extra V d).

    `embeddings=False` leaves out the token and position embeddings (the "N" of Kaplan et al. 2020).
    """
    d, f, L = config.d_model, config.d_ff, config.n_layers
    body = L * (4 * d * d + 2 * d * f + 9 * d + f) + 2 * d
    return body + (config.vocab_size * d + config.context * d if embeddings else 0)


def _normal(std: float):
    return nnx.initializers.normal(stddev=std)


class Block(nnx.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig, *, rngs: nnx.Rngs):
        d, f = config.d_model, config.d_ff
        resid_std = INIT_STD / math.sqrt(2 * config.n_layers)  # GPT-2: residual branches add up over layers
        self.n_heads = config.n_heads
        self.ln1 = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, kernel_init=_normal(INIT_STD), rngs=rngs)
        self.out = nnx.Linear(d, d, kernel_init=_normal(resid_std), rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
        self.fc1 = nnx.Linear(d, f, kernel_init=_normal(INIT_STD), rngs=rngs)
        self.fc2 = nnx.Linear(f, d, kernel_init=_normal(resid_std), rngs=rngs)
        self.drop = nnx.Dropout(config.dropout)

    def _qkv(self, x):
        """[B, T, d] -> q, k, v each [B, H, T, hd]."""
        b, t, d = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(b, t, 3, self.n_heads, d // self.n_heads)
        q, k, v = (jnp.moveaxis(qkv[:, :, i], 1, 2) for i in range(3))
        return q, k, v

    def _finish(self, x, q, k, v, mask, deterministic, rngs):
        """Attention of q [B, H, T, hd] over k, v [B, H, S, hd] where mask [T, S] is True, then the MLP."""
        b, h, t, hd = q.shape
        # Tried for training speed on the 2-core CPU (benchmarks/lm.py, jax 0.10, interleaved rounds),
        # no robust gain, so kept simple: jax.nn.dot_product_attention(is_causal=True) on [B, T, H, hd]
        # (+2% slower), einsums on [B, T, H, hd] with q pre-scaled (2-3% faster idle, 2% slower loaded).
        scores = jnp.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(hd)
        weights = jax.nn.softmax(jnp.where(mask, scores, _MASKED), axis=-1)
        att = jnp.einsum("bhts,bhsd->bhtd", weights, v)
        att = jnp.moveaxis(att, 1, 2).reshape(b, t, h * hd)
        x = x + self.drop(self.out(att), deterministic=deterministic, rngs=rngs)
        # GPT-2's GELU is the tanh approximation.
        mlp = self.fc2(jax.nn.gelu(self.fc1(self.ln2(x)), approximate=True))
        return x + self.drop(mlp, deterministic=deterministic, rngs=rngs)

    def __call__(self, x, *, deterministic: bool = True, rngs: nnx.Rngs | None = None):
        """x [B, T, d] -> [B, T, d], causal."""
        t = x.shape[1]
        q, k, v = self._qkv(x)
        mask = jnp.tril(jnp.ones((t, t), bool))
        return self._finish(x, q, k, v, mask, deterministic, rngs)

    def decode(self, x, k_cache, v_cache, position):
        """x [B, T, d] at positions [position, position + T); caches [B, H, S, hd] -> (x, k_cache, v_cache)."""
        t, s = x.shape[1], k_cache.shape[2]
        q, k, v = self._qkv(x)
        k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, 0, position, 0))
        v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, 0, position, 0))
        # The chunk's t-th token sees cached slots 0 .. position + t; slots after hold zeros or stale rows.
        mask = jnp.arange(s)[None, :] <= position + jnp.arange(t)[:, None]  # [T, S]
        return self._finish(x, q, k_cache, v_cache, mask, True, None), k_cache, v_cache


class GPT(nnx.Module):
    """GPT decoder with tied input/output embeddings; see the module docstring."""

    def __init__(self, config: GPTConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.wte = nnx.Embed(config.vocab_size, config.d_model, embedding_init=_normal(INIT_STD), rngs=rngs)
        self.wpe = nnx.Param(_normal(INIT_STD)(rngs.params(), (config.context, config.d_model)))
        self.drop = nnx.Dropout(config.dropout)
        self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.n_layers)])
        self.ln_f = nnx.LayerNorm(config.d_model, epsilon=1e-5, rngs=rngs)

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        """tokens int32 [B, T] (T <= context) -> logits float32 [B, T, V]; position t sees tokens <= t.

        Dropout (if `config.dropout` > 0) needs deterministic=False and `rngs` with a 'dropout' stream.
        """
        t = tokens.shape[-1]
        if t > self.config.context:
            raise ValueError(f"tokens have length {t} > context {self.config.context}")
        x = self.wte(tokens) + self.wpe[...][:t]
        x = self.drop(x, deterministic=deterministic, rngs=rngs)
        for block in self.blocks:
            x = block(x, deterministic=deterministic, rngs=rngs)
        return self.wte.attend(self.ln_f(x))

    def init_cache(self, batch_size: int, max_length: int, dtype=jnp.float32) -> dict[str, jax.Array]:
        """Zero cache {"k", "v"} each [batch_size, n_layers, n_heads, max_length, head_dim]."""
        return init_cache(self, batch_size, max_length, dtype)

    def decode(self, tokens: jax.Array, cache: dict[str, jax.Array],
               position: jax.Array | int) -> tuple[jax.Array, dict[str, jax.Array]]:
        """tokens int32 [B, T] at positions [position, position + T) -> (logits [B, T, V], new cache).

        Equal (to float rounding) to the last T rows of the full forward pass over the tokens
        written so far. `position` may be traced; position + T must not exceed the cache length
        (not checked when traced: dynamic_update_slice would clamp and silently overwrite).
        """
        t, s = tokens.shape[-1], cache["k"].shape[3]
        if not isinstance(position, jax.core.Tracer) and not 0 <= int(position) <= s - t:
            raise ValueError(f"position must be in [0, {s - t}] for a chunk of {t} tokens and a cache "
                             f"of {s}, got {int(position)}")
        position = jnp.asarray(position, jnp.int32)
        x = self.wte(tokens) + jax.lax.dynamic_slice_in_dim(self.wpe[...], position, t, axis=0)
        ks, vs = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block.decode(x, cache["k"][:, i], cache["v"][:, i], position)
            ks.append(k)
            vs.append(v)
        logits = self.wte.attend(self.ln_f(x))
        return logits, {"k": jnp.stack(ks, axis=1), "v": jnp.stack(vs, axis=1)}


def init_cache(model: GPT, batch_size: int, max_length: int, dtype=jnp.float32) -> dict[str, jax.Array]:
    """Zero cache {"k", "v"} each [batch_size, n_layers, n_heads, max_length, head_dim], batch first."""
    c = model.config
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(max_length, int) or not 1 <= max_length <= c.context:
        raise ValueError(f"max_length must be an integer in [1, context={c.context}], got {max_length!r}")
    shape = (batch_size, c.n_layers, c.n_heads, max_length, c.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def model_fns(model: nnx.Module):
    """Pure functions of the model's state, for jit/scan loops without NNX objects inside; any
    decoder with `__call__(tokens)` and `decode(tokens, cache, position)` (the GPT, `lm.opt.OPT`).

    Returns (apply_full, decode_fn):
      apply_full(state, tokens [B, T]) -> logits [B, T, V]   (deterministic forward pass)
      decode_fn(state, tokens [B, T], cache, position) -> (logits [B, T, V], cache)
    where `state` is `nnx.state(model)` (or the state half of `nnx.split(model)`), so a trained state
    can be swapped in without rebuilding the functions.
    """
    graphdef = nnx.graphdef(model)

    def apply_full(state, tokens):
        return nnx.merge(graphdef, state)(tokens)

    def decode_fn(state, tokens, cache, position):
        return nnx.merge(graphdef, state).decode(tokens, cache, position)

    return apply_full, decode_fn
