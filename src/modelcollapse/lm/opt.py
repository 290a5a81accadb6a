"""OPT (Zhang et al. 2022, "OPT: Open Pre-trained Transformer Language Models") in flax.nnx.

The model the paper fine-tuned (Shumailov et al., Nature 2024, its language-model section:
facebook/opt-125m), written to match Hugging Face's `OPTForCausalLM` (transformers'
`models/opt/modeling_opt.py`) so that its checkpoints load unchanged (`lm.hf_checkpoint`):
- token embedding `embed_tokens` [V, e] (e = word_embed_proj_dim; V padded to 50,272 for OPT-125m,
  the tokenizer uses 50,265 of the rows); when e != hidden size d (OPT-350m), `project_in` [e -> d]
  after the embedding and `project_out` [d -> e] before the head, both Linear without bias;
- learned positions `embed_positions` [max_position_embeddings + 2, d]: OPT's offset of 2 (fairseq
  reserved rows 0 and 1), so the token at position p reads row p + 2. With an attention mask the
  position of a token is the number of real tokens before it (cumsum(mask) - 1), so left padding
  does not shift positions (HF's OPTLearnedPositionalEmbedding; pad tokens read row 1);
- `num_hidden_layers` blocks. Pre-LN (`do_layer_norm_before`, every OPT but 350m):
  x + attn(ln_a(x)), then x + fc2(relu(fc1(ln_f(x)))); post-LN (350m): ln_a(x + attn(x)), then
  ln_f(x + mlp(x)). Attention: q, k, v, out projections with bias, q scaled by head_dim**-0.5;
- `final_layer_norm` after the blocks only for pre-LN models;
- the head TIED to the token embedding: logits = project_out(h) @ E^T, no bias.
LayerNorm eps 1e-5. Dropout as HF places it (no dropout on the embeddings): `dropout` on both
residual branches, `activation_dropout` after the ReLU, `attention_dropout` on attention weights,
only with deterministic=False and a 'dropout' key. Parameters start as HF's `_init_weights`:
normal(init_std = 0.02) for every matrix and embedding, biases 0, LayerNorm 1/0, the padding row of
the token embedding 0.

Decoding interface: the same as `lm.model`'s GPT, so `lm.generate` runs it unchanged:
`init_cache(model, batch, max_length)` -> {"k", "v"} zeros [B, L, H, S, hd] (batch first, so beam
search reorders rows with one gather), `decode(tokens [B, T], cache, position)` writes the chunk at
[position, position + T) and masks over S (position may be traced), and `model_fns(model)` (the
GPT's, which fits any module with that interface) gives the pure (apply_full, decode_fn). decode assumes UNPADDED rows, each token at position
`position + t` (embedding row position + t + 2): what our experiments feed (fixed 64-token blocks).
Left-padded batches are for the full forward pass only (`attention_mask`); their pad positions'
logits are meaningless (a row that sees no real token gets uniform attention).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from modelcollapse.lm.model import model_fns  # noqa: F401  (re-exported: one for every decoder)

# OPT (fairseq) keeps rows 0 and 1 of the position table for padding; positions start at row 2.
POSITION_OFFSET = 2
LN_EPS = 1e-5
# As lm.model: a large negative instead of -inf, so a fully masked row gives no NaN.
_MASKED = -1e30


@dataclasses.dataclass(frozen=True, kw_only=True)
class OPTConfig:
    """The fields of a Hugging Face OPT `config.json`; defaults are facebook/opt-125m's."""

    vocab_size: int = 50272  # rows of the token embedding (padded past the tokenizer's 50,265)
    hidden_size: int = 768  # residual width, d
    num_hidden_layers: int = 12  # blocks, L
    ffn_dim: int = 3072  # MLP hidden width
    num_attention_heads: int = 12  # H; hidden_size must be a multiple
    max_position_embeddings: int = 2048  # positions (the table has 2 more rows: the offset)
    word_embed_proj_dim: int | None = None  # token-embedding width e; None means hidden_size
    do_layer_norm_before: bool = True  # pre-LN; False (OPT-350m) is post-LN without final LayerNorm
    remove_final_layer_norm: bool = False  # config.json's `_remove_final_layer_norm`
    activation_function: str = "relu"
    layer_norm_elementwise_affine: bool = True  # LayerNorms have scale and bias
    enable_bias: bool = True
    dropout: float = 0.1  # on residual branches during training (HF fine-tuning uses it)
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    pad_token_id: int = 1
    bos_token_id: int = 2
    eos_token_id: int = 2

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "ffn_dim", "num_attention_heads",
                     "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.word_embed_proj_dim is None:
            object.__setattr__(self, "word_embed_proj_dim", self.hidden_size)
        if not isinstance(self.word_embed_proj_dim, int) or self.word_embed_proj_dim < 1:
            raise ValueError(f"word_embed_proj_dim must be a positive integer, got {self.word_embed_proj_dim!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of "
                             f"num_attention_heads ({self.num_attention_heads})")
        if self.activation_function != "relu":
            raise ValueError(f"activation_function must be 'relu' (every OPT model), got {self.activation_function!r}")
        if self.enable_bias is not True:
            raise ValueError("enable_bias must be true (every released OPT model); bias-free OPT is not supported")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def context(self) -> int:
        """Longest sequence (GPTConfig's name for it, which the experiment code reads)."""
        return self.max_position_embeddings

    @property
    def final_norm(self) -> bool:
        return self.do_layer_norm_before and not self.remove_final_layer_norm

    @classmethod
    def from_hf_dict(cls, d: dict, *, source: str = "config") -> OPTConfig:
        """From a parsed config.json; HF's bookkeeping keys are ignored, a non-OPT model is refused."""
        if d.get("model_type", "opt") != "opt":
            raise ValueError(f"{source}: model_type is {d.get('model_type')!r}, expected 'opt'")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "_remove_final_layer_norm" in d:
            kwargs["remove_final_layer_norm"] = bool(d["_remove_final_layer_norm"])
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_hf_json(cls, path: str | os.PathLike) -> OPTConfig:
        path = Path(path)
        with open(path, encoding="utf-8") as fh:
            return cls.from_hf_dict(json.load(fh), source=str(path))


def param_count(config: OPTConfig) -> int:
    """Parameters (tied head: no extra V e): 125,239,296 for OPT-125m."""
    d, f, e, L = config.hidden_size, config.ffn_dim, config.word_embed_proj_dim, config.num_hidden_layers
    ln = 2 * d if config.layer_norm_elementwise_affine else 0
    block = 4 * d * d + 4 * d + 2 * d * f + f + d + 2 * ln
    proj = 2 * d * e if e != d else 0
    return config.vocab_size * e + (config.max_position_embeddings + POSITION_OFFSET) * d + L * block \
        + proj + (ln if config.final_norm else 0)


def _layer_norm(config: OPTConfig, rngs):
    affine = config.layer_norm_elementwise_affine
    return nnx.LayerNorm(config.hidden_size, epsilon=LN_EPS, use_scale=affine, use_bias=affine, rngs=rngs)


def _linear(n_in, n_out, config: OPTConfig, rngs, *, bias=True):
    return nnx.Linear(n_in, n_out, use_bias=bias, kernel_init=nnx.initializers.normal(config.init_std), rngs=rngs)


class Attention(nnx.Module):
    def __init__(self, config: OPTConfig, *, rngs: nnx.Rngs):
        d = config.hidden_size
        self.n_heads = config.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (_linear(d, d, config, rngs) for _ in range(4))
        self.drop = nnx.Dropout(config.attention_dropout)

    def qkv(self, x):
        """[B, T, d] -> q (already scaled by hd**-0.5, as HF), k, v each [B, H, T, hd]."""
        b, t, d = x.shape
        hd = d // self.n_heads
        split = lambda y: jnp.moveaxis(y.reshape(b, t, self.n_heads, hd), 1, 2)
        return split(self.q_proj(x) * hd ** -0.5), split(self.k_proj(x)), split(self.v_proj(x))

    def attend(self, q, k, v, mask, deterministic, rngs):
        """q [B, H, T, hd] over k, v [B, H, S, hd] where mask [B or 1, T, S] is True -> [B, T, d]."""
        b, h, t, hd = q.shape
        scores = jnp.einsum("bhtd,bhsd->bhts", q, k)
        weights = jax.nn.softmax(jnp.where(mask[:, None], scores, _MASKED), axis=-1)
        weights = self.drop(weights, deterministic=deterministic, rngs=rngs)
        att = jnp.einsum("bhts,bhsd->bhtd", weights, v)
        return self.out_proj(jnp.moveaxis(att, 1, 2).reshape(b, t, h * hd))


class DecoderLayer(nnx.Module):
    """One OPT block, pre- or post-LN (module docstring); names as HF's OPTDecoderLayer."""

    def __init__(self, config: OPTConfig, *, rngs: nnx.Rngs):
        self.pre_ln = config.do_layer_norm_before
        self.self_attn = Attention(config, rngs=rngs)
        self.self_attn_layer_norm = _layer_norm(config, rngs)
        self.fc1 = _linear(config.hidden_size, config.ffn_dim, config, rngs)
        self.fc2 = _linear(config.ffn_dim, config.hidden_size, config, rngs)
        self.final_layer_norm = _layer_norm(config, rngs)
        self.drop = nnx.Dropout(config.dropout)
        self.act_drop = nnx.Dropout(config.activation_dropout)

    def __call__(self, x, mask, *, kv=None, deterministic=True, rngs=None):
        """x [B, T, d]; mask [B or 1, T, S]. kv: None (attend within x) or (k_cache, v_cache, position):
        write this chunk's keys/values there and attend over the cache. Returns (x, k, v)."""
        h = self.self_attn_layer_norm(x) if self.pre_ln else x
        q, k, v = self.self_attn.qkv(h)
        if kv is not None:
            k_cache, v_cache, position = kv
            k = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, 0, position, 0))
            v = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, 0, position, 0))
        x = x + self.drop(self.self_attn.attend(q, k, v, mask, deterministic, rngs), deterministic=deterministic,
                          rngs=rngs)
        if not self.pre_ln:
            x = self.self_attn_layer_norm(x)
        h = self.final_layer_norm(x) if self.pre_ln else x
        h = self.act_drop(jax.nn.relu(self.fc1(h)), deterministic=deterministic, rngs=rngs)
        x = x + self.drop(self.fc2(h), deterministic=deterministic, rngs=rngs)
        if not self.pre_ln:
            x = self.final_layer_norm(x)
        return x, k, v


class OPT(nnx.Module):
    """OPTForCausalLM with the head tied to the token embedding; see the module docstring."""

    def __init__(self, config: OPTConfig, *, rngs: nnx.Rngs):
        self.config = config
        d, e = config.hidden_size, config.word_embed_proj_dim
        init = nnx.initializers.normal(config.init_std)
        self.embed_tokens = nnx.Embed(config.vocab_size, e, embedding_init=init, rngs=rngs)
        # HF zeroes the padding row at init (nn.Embedding's padding_idx).
        if 0 <= config.pad_token_id < config.vocab_size:
            self.embed_tokens.embedding[...] = self.embed_tokens.embedding[...].at[config.pad_token_id].set(0.0)
        self.embed_positions = nnx.Param(init(rngs.params(), (config.max_position_embeddings + POSITION_OFFSET, d)))
        self.project_in = _linear(e, d, config, rngs, bias=False) if e != d else None
        self.project_out = _linear(d, e, config, rngs, bias=False) if e != d else None
        self.layers = nnx.List([DecoderLayer(config, rngs=rngs) for _ in range(config.num_hidden_layers)])
        self.final_layer_norm = _layer_norm(config, rngs) if config.final_norm else None

    def _embed(self, tokens, positions):
        """tokens [B, T], positions [B or 1, T] (0-based, before the offset) -> [B, T, d]."""
        x = self.embed_tokens(tokens)
        if self.project_in is not None:
            x = self.project_in(x)
        return x + self.embed_positions[...][positions + POSITION_OFFSET]

    def _head(self, x):
        if self.final_layer_norm is not None:
            x = self.final_layer_norm(x)
        if self.project_out is not None:
            x = self.project_out(x)
        return self.embed_tokens.attend(x)

    def __call__(self, tokens: jax.Array, *, attention_mask: jax.Array | None = None, deterministic: bool = True,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        """tokens int32 [B, T] -> logits float32 [B, T, V]; token t sees tokens <= t.

        attention_mask [B, T] (1 = real token, 0 = padding; HF's argument): padded keys are not
        attended to and positions count real tokens only, so a left-padded row gives its real
        tokens the logits of the unpadded row. None means all ones.
        """
        t = tokens.shape[-1]
        if t > self.config.max_position_embeddings:
            raise ValueError(f"tokens have length {t} > max_position_embeddings {self.config.max_position_embeddings}")
        causal = jnp.tril(jnp.ones((t, t), bool))[None]  # [1, T, T]
        if attention_mask is None:
            positions, mask = jnp.arange(t)[None], causal
        else:
            real = jnp.asarray(attention_mask).astype(jnp.int32)
            # HF: (cumsum(mask) * mask - 1), so pads read position -1 (row 1 after the offset).
            positions = jnp.cumsum(real, axis=1) * real - 1
            mask = causal & (real[:, None, :] > 0)
        x = self._embed(tokens, positions)
        for layer in self.layers:
            x, _, _ = layer(x, mask, deterministic=deterministic, rngs=rngs)
        return self._head(x)

    def init_cache(self, batch_size: int, max_length: int, dtype=jnp.float32) -> dict[str, jax.Array]:
        return init_cache(self, batch_size, max_length, dtype)

    def decode(self, tokens: jax.Array, cache: dict[str, jax.Array],
               position: jax.Array | int) -> tuple[jax.Array, dict[str, jax.Array]]:
        """tokens int32 [B, T] at positions [position, position + T) of UNPADDED rows -> (logits
        [B, T, V], new cache); equal to the last T rows of the full forward pass over the tokens so far.
        `position` may be traced; position + T must fit the cache (only checked when concrete)."""
        t, s = tokens.shape[-1], cache["k"].shape[3]
        if not isinstance(position, jax.core.Tracer) and not 0 <= int(position) <= s - t:
            raise ValueError(f"position must be in [0, {s - t}] for a chunk of {t} tokens and a cache "
                             f"of {s}, got {int(position)}")
        position = jnp.asarray(position, jnp.int32)
        x = self._embed(tokens, (position + jnp.arange(t))[None])
        # The chunk's t-th token sees cached slots 0 .. position + t; later slots are zeros or stale.
        mask = (jnp.arange(s)[None, :] <= position + jnp.arange(t)[:, None])[None]  # [1, T, S]
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, mask, kv=(cache["k"][:, i], cache["v"][:, i], position))
            ks.append(k)
            vs.append(v)
        return self._head(x), {"k": jnp.stack(ks, axis=1), "v": jnp.stack(vs, axis=1)}


def init_cache(model: OPT, batch_size: int, max_length: int, dtype=jnp.float32) -> dict[str, jax.Array]:
    """Zero cache {"k", "v"} each [batch_size, layers, heads, max_length, head_dim], batch first."""
    c = model.config
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(max_length, int) or not 1 <= max_length <= c.max_position_embeddings:
        raise ValueError(f"max_length must be an integer in [1, max_position_embeddings="
                         f"{c.max_position_embeddings}], got {max_length!r}")
    shape = (batch_size, c.num_hidden_layers, c.num_attention_heads, max_length, c.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
