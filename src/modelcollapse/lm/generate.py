"""Decoding for the small language models: ancestral sampling, greedy search and beam search.

The paper's recursive LM experiment (Shumailov et al., Nature 2024, its language-model section; the
official code calls Hugging Face's `generate(num_beams=5, repetition_penalty=3.0)`) makes each
generation's training data by prompting the previous model with every 64-token block of the original
training set and keeping the next 64 tokens. `generate` does that for a whole prompt set: chunks of
`batch_size` prompts, each chunk one jitted call (the prompt as one chunk of the model's KV cache, then
`lax.scan` over single tokens), the last chunk padded so that every chunk has the same shape and the
function compiles once. All prompts have the same length P (fixed blocks; no left padding).

Semantics follow Hugging Face transformers' `generate` (`generation/utils.py`, `logits_process.py`),
the code the paper ran. Greedy, and beam search with K = 2, 3, 5 (with and without EOS, length
penalties 0, 1, 2, repetition penalties 1 and 3) gave the same tokens as transformers 5.17.0 on
lookup-table models, 672 of 672 prompts, and beam scores within 3e-7:
- repetition penalty (CTRL, Keskar et al. 2019; HF's RepetitionPenaltyLogitsProcessor): for every
  token present in the prompt or generated so far, a score s > 0 becomes s / penalty, else s * penalty.
  In greedy and sampling it acts on the logits; in beam search HF applies its logits processors to
  the log-softmax (so a present token's log-probability is multiplied by the penalty and the scores
  are not renormalised), and so do we: this is what `num_beams=5, repetition_penalty=3.0` computed.
- sampling: penalty, then temperature (logits / T), then top-k (keep scores >= the k-th largest),
  then top-p (sort ascending, drop tokens whose cumulative probability is <= 1 - p, never the most
  likely: the smallest set with probability >= p), then a categorical draw.
- greedy: penalty, then argmax (temperature, top-k and top-p are not used, as in HF).
- beam search: `num_beams` = K beams per prompt; a beam's score is the sum of its tokens'
  (penalised) log-probabilities; each step takes the top 2K of the K x V continuations (the first
  step only continues beam 0). With `eos_token_id`, a continuation ending in EOS among the top K is
  set aside as a finished hypothesis with score sum / length**length_penalty (length = generated
  tokens, EOS included), the best K of them kept (HF's BeamHypotheses); the first K others continue.
  A prompt is done when K hypotheses are finished and the worst of them is >= the best running
  beam's sum / length**length_penalty (HF's early_stopping=False heuristic; the BeamSearchScorer of
  transformers 4.36-4.4x took the best candidate, EOS ones included, and before 4.36 lengths counted
  the prompt); then nothing more is added for it. At the end the running beams of prompts not done
  join the finished ones (length max_new_tokens) and the best is returned. With no EOS (our
  default) every beam has the same length, the best final beam is returned and length_penalty only
  rescales the returned score. The search
  path runs for K = 1 too (HF would switch to greedy; the two differ only through the penalty's
  logits-vs-log-probabilities placement).
- EOS in greedy and sampling: after a row emits EOS it gets pad tokens. Padding is `eos_token_id`
  (HF's default when no pad token is set), both there and after a finished beam hypothesis.

Keys: prompt i (its index in the whole prompt set) draws with fold_in(key, i), step t with
fold_in(that, t), so samples do not depend on `batch_size`. Beam search and greedy use no randomness.

The decoder is anything with `state`, `decode_fn(state, tokens [B, T], cache, position)` ->
(logits [B, T, V], cache) and `init_cache(batch_size, max_length)` -> a pytree whose every leaf has the
batch dimension first (`Decoder` bundles them; `lm.model.model_fns` and `init_cache` provide them for
the GPT). decode_fn and init_cache are static arguments of the jitted chunk function: build them once
per run (fresh closures for every call would recompile).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

MODES = ("sample", "greedy", "beam")
# Marks not-yet-generated slots of the token history: out of every vocabulary, so the repetition
# penalty's scatter drops it (mode="drop") and it never counts as a present token.
_EMPTY = np.iinfo(np.int32).max
# HF's score for beams 1..K-1 before the first step, so that only beam 0 is continued at first.
_NOT_STARTED = -1e9


@dataclasses.dataclass(frozen=True, eq=False)
class Decoder:
    """A model for decoding: `decode_fn(state, tokens, cache, position)` and `init_cache(B, max_length)`."""

    state: Any  # opaque pytree of parameters, the first argument of decode_fn (a jit argument)
    decode_fn: Callable  # (state, tokens int32 [B, T], cache, position int32 []) -> (logits [B, T, V], cache)
    init_cache: Callable  # (batch_size, max_length) -> cache pytree, batch dimension first in every leaf


@dataclasses.dataclass(frozen=True)
class _Settings:
    """Everything static about a chunk's computation (a jit static argument: hashable)."""

    mode: str
    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    num_beams: int
    repetition_penalty: float
    length_penalty: float
    eos_token_id: int | None


# -- logits processors, each on scores [N, V] (public for tests and reuse)


def apply_repetition_penalty(scores: jax.Array, history: jax.Array, penalty: float) -> jax.Array:
    """CTRL's repetition penalty on scores [N, V] for the tokens in history int32 [N, L].

    A present token's score s becomes s / penalty if s > 0, else s * penalty (HF's
    RepetitionPenaltyLogitsProcessor: gather, transform, scatter). History entries outside [0, V)
    mark empty slots and are ignored.
    """
    vocab = scores.shape[-1]
    present = (history >= 0) & (history < vocab)
    picked = jnp.take_along_axis(scores, jnp.where(present, history, 0), axis=-1)  # [N, L]
    picked = jnp.where(picked > 0, picked / penalty, picked * penalty)
    # Repeated tokens write the same value twice; empty slots point past V and are dropped.
    index = jnp.where(present, history, vocab)
    return jax.vmap(lambda s, i, v: s.at[i].set(v, mode="drop"))(scores, index, picked)


def top_k_filter(logits: jax.Array, k: int) -> jax.Array:
    """Keep logits [N, V] >= the k-th largest of their row (ties kept, as HF), the rest -inf."""
    k = min(k, logits.shape[-1])
    # min over the top k, not its last entry: XLA's CPU backend turns top_k(...)[..., -1:] into a full
    # sort (measured 480 ms vs 4 ms for [32, 50257] logits).
    kth = jnp.min(jax.lax.top_k(logits, k)[0], axis=-1, keepdims=True)
    return jnp.where(logits < kth, -jnp.inf, logits)


def top_p_filter(logits: jax.Array, p: float) -> jax.Array:
    """Nucleus filter on logits [N, V]: the smallest set with probability >= p, at least one token.

    HF's TopPLogitsWarper: sort ascending, drop tokens whose cumulative probability is <= 1 - p,
    always keep the most likely one. The sort is the cost: fine on a GPU, slow on the CPU (about
    0.7 s for [32, 50257] logits, a step of sampling).
    """
    order = jnp.argsort(logits, axis=-1)  # ascending
    ascending = jnp.take_along_axis(logits, order, axis=-1)
    cumulative = jnp.cumsum(jax.nn.softmax(ascending, axis=-1), axis=-1)
    drop = (cumulative <= 1.0 - p).at[..., -1].set(False)
    drop = jax.vmap(lambda o, d: jnp.zeros_like(d).at[o].set(d))(order, drop)  # back to vocabulary order
    return jnp.where(drop, -jnp.inf, logits)


def _warp(logits, s: _Settings):
    """Sampling's warpers in HF's order: temperature, top-k, top-p."""
    if s.temperature != 1.0:
        logits = logits / s.temperature
    if s.top_k is not None:
        logits = top_k_filter(logits, s.top_k)
    if s.top_p is not None and s.top_p < 1.0:
        logits = top_p_filter(logits, s.top_p)
    return logits


# -- one chunk: prompt [C, P] -> tokens [C, n], scores [C]


def _reorder(cache, rows):
    return jax.tree.map(lambda c: c[rows], cache)


def _decode_last(decoder_fns, state, tokens, cache, position):
    logits, cache = decoder_fns[0](state, tokens, cache, position)
    return logits[:, -1].astype(jnp.float32), cache


def _chunk_sample_greedy(fns, state, prompts, indices, key, s: _Settings):
    """Sampling or greedy for prompts [C, P]; row keys fold in the prompt indices [C]."""
    c, p = prompts.shape
    n = s.max_new_tokens
    eos = s.eos_token_id
    cache = fns[1](c, p + n - 1)
    logits, cache = _decode_last(fns, state, prompts, cache, jnp.int32(0))
    history = jnp.concatenate([prompts, jnp.full((c, n), _EMPTY, jnp.int32)], axis=1)  # [C, P + n]
    row_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, indices)

    def choose(logits, history, finished, score, t):
        if s.repetition_penalty != 1.0:
            logits = apply_repetition_penalty(logits, history, s.repetition_penalty)
        if s.mode == "greedy":
            token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        else:
            logits = _warp(logits, s)
            step_keys = jax.vmap(jax.random.fold_in, (0, None))(row_keys, t)
            token = jax.vmap(jax.random.categorical)(step_keys, logits).astype(jnp.int32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), token[:, None], axis=-1)[:, 0]
        if eos is not None:  # finished rows get padding and stop scoring (HF's unfinished_sequences)
            token = jnp.where(finished, eos, token)
            score = score + jnp.where(finished, 0.0, logp)
            finished = finished | (token == eos)
        else:
            score = score + logp
        history = history.at[:, p + t].set(token)
        return token, history, finished, score

    carry = choose(logits, history, jnp.zeros(c, bool), jnp.zeros(c, jnp.float32), 0)

    def step(carry, t):
        token, history, finished, score, cache = carry
        logits, cache = _decode_last(fns, state, token[:, None], cache, p + t - 1)
        return (*choose(logits, history, finished, score, t), cache), None

    (_, history, _, score, _), _ = jax.lax.scan(step, (*carry, cache), jnp.arange(1, n, dtype=jnp.int32))
    return history[:, p:], score


def _chunk_beam(fns, state, prompts, s: _Settings):
    """Beam search (HF's BeamSearchScorer semantics, module docstring) for prompts [C, P]."""
    c, p = prompts.shape
    n, k, eos, lp = s.max_new_tokens, s.num_beams, s.eos_token_id, s.length_penalty
    cache = fns[1](c, p + n - 1)
    logits, cache = _decode_last(fns, state, prompts, cache, jnp.int32(0))
    vocab = logits.shape[-1]
    if vocab < 2:
        raise ValueError(f"beam search needs a vocabulary of at least 2 tokens, got {vocab}")
    if eos is not None and eos >= vocab:
        raise ValueError(f"eos_token_id must be < vocab size {vocab}, got {eos}")
    # Each prompt's cache is computed once and shared by its K beams: rows [C*K], beam-major per prompt.
    cache = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), cache)
    logits = jnp.repeat(logits[:, None], k, axis=1)  # [C, K, V]
    prompt_rows = jnp.broadcast_to(prompts[:, None], (c, k, p))
    rows = jnp.arange(c)[:, None]

    def choose(logits, beams, t):
        seq, score, fin_seq, fin_score, done = beams  # [C,K,n], [C,K], [C,K,n], [C,K], [C]
        logp = jax.nn.log_softmax(logits, axis=-1)
        if s.repetition_penalty != 1.0:  # on log-probabilities, after log-softmax, as HF's beam search
            history = jnp.concatenate([prompt_rows, seq], axis=-1).reshape(c * k, p + n)
            logp = apply_repetition_penalty(logp.reshape(c * k, vocab), history,
                                            s.repetition_penalty).reshape(c, k, vocab)
        candidates = (score[..., None] + logp).reshape(c, k * vocab)
        top, flat = jax.lax.top_k(candidates, 2 * k)  # [C, 2K], best first
        parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        if eos is None:
            keep = jnp.broadcast_to(jnp.arange(k), (c, k))
        else:
            rank = jnp.arange(2 * k)
            is_eos = token == eos
            # EOS among the top K ends a hypothesis; later EOS candidates are dropped (HF).
            ended = is_eos & (rank < k) & ~done[:, None]
            end_seq = seq[rows, parent].at[:, :, t].set(eos)  # [C, 2K, n]
            end_score = jnp.where(ended, top / (t + 1.0) ** lp, -jnp.inf)
            fin_seq, fin_score = _best_k(fin_seq, fin_score, end_seq, end_score, k)
            # The first K non-EOS candidates continue (a stable sort puts EOS ones last).
            keep = jnp.argsort(jnp.where(is_eos, rank + 2 * k, rank), axis=-1, stable=True)[:, :k]
            full = jnp.sum(fin_score > -jnp.inf, axis=-1) >= k
            best_running = jnp.take_along_axis(top, keep[:, :1], axis=-1)[:, 0]
            done = done | (full & (jnp.min(fin_score, axis=-1) >= best_running / (t + 1.0) ** lp))
            # (best_running: the best continuing beam, the first kept non-EOS candidate)
        parent = jnp.take_along_axis(parent, keep, axis=-1)
        token = jnp.take_along_axis(token, keep, axis=-1)
        score = jnp.take_along_axis(top, keep, axis=-1)
        seq = seq[rows, parent].at[:, :, t].set(token)
        return token, parent, (seq, score, fin_seq, fin_score, done)

    empty = jnp.full((c, k, n), _EMPTY, jnp.int32)
    start = jnp.where(jnp.arange(k) == 0, 0.0, _NOT_STARTED) * jnp.ones((c, 1), jnp.float32)
    beams = (empty, start, empty, jnp.full((c, k), -jnp.inf, jnp.float32), jnp.zeros(c, bool))
    token, parent, beams = choose(logits, beams, 0)
    cache = _reorder(cache, (rows * k + parent).reshape(-1))

    def step(carry, t):
        token, cache, beams = carry
        logits, cache = _decode_last(fns, state, token.reshape(c * k, 1), cache, p + t - 1)
        token, parent, beams = choose(logits.reshape(c, k, vocab), beams, t)
        return (token, _reorder(cache, (rows * k + parent).reshape(-1)), beams), None

    (_, _, beams), _ = jax.lax.scan(step, (token, cache, beams), jnp.arange(1, n, dtype=jnp.int32))
    seq, score, fin_seq, fin_score, done = beams
    final = jnp.where(done[:, None], -jnp.inf, score / float(n) ** lp)  # done prompts add nothing (HF)
    if eos is not None:
        seq, final = _best_k(fin_seq, fin_score, seq, final, k)
    best = jnp.argmax(final, axis=-1)
    tokens = seq[jnp.arange(c), best]
    if eos is not None:
        tokens = jnp.where(tokens == _EMPTY, eos, tokens)
    return tokens, final[jnp.arange(c), best]


def _best_k(seq, score, new_seq, new_score, k):
    """The K best of kept [C, K] and new [C, M] hypotheses; on ties the kept ones first (HF's heap)."""
    top, index = jax.lax.top_k(jnp.concatenate([score, new_score], axis=-1), k)
    seq = jnp.take_along_axis(jnp.concatenate([seq, new_seq], axis=1), index[..., None], axis=1)
    return seq, top


def _chunk(state, prompts, indices, key, *, decode_fn, init_cache, settings):
    fns = (decode_fn, init_cache)
    if settings.mode == "beam":
        return _chunk_beam(fns, state, prompts, settings)
    return _chunk_sample_greedy(fns, state, prompts, indices, key, settings)


_chunk_jit = jax.jit(_chunk, static_argnames=("decode_fn", "init_cache", "settings"))


# -- the public entry point


def _check(name, value, ok, what):
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _is_int(value, low):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def generate(decoder: Decoder, prompts, *, max_new_tokens: int, key: jax.Array | None = None,
             mode: str = "sample", temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, num_beams: int = 5, repetition_penalty: float = 1.0,
             length_penalty: float = 1.0, eos_token_id: int | None = None, batch_size: int | None = None,
             return_scores: bool = False, progress: bool | None = None):
    """Continue each prompt by `max_new_tokens` tokens (module docstring: semantics, keys).

    prompts: int [B, P], all of length P >= 1; the cache is made for P + max_new_tokens - 1 positions
    (127 for the paper's 64 + 64: a context of 128 suffices). Returns the new tokens only, numpy
    int32 [B, max_new_tokens]; with `return_scores`, also float32 [B]: for sampling and greedy the sum of the
    chosen tokens' log-probabilities under the distribution they were chosen from (after penalty and
    warpers, up to and including EOS); for beam search the returned hypothesis' score
    sum / length**length_penalty (HF's sequences_scores).
    key: required for mode="sample", ignored otherwise. temperature, top_k, top_p: sampling only.
    num_beams, length_penalty: beam search only. batch_size: prompts per jitted call (None: all at
    once); the last chunk is padded, so every call has the same shape and compiles once.
    progress: a tqdm bar over chunks; None shows it only when stderr is a terminal.
    """
    _check("mode", mode, mode in MODES, f"one of {list(MODES)}")
    _check("max_new_tokens", max_new_tokens, _is_int(max_new_tokens, 1), "an integer >= 1")
    _check("temperature", temperature, _is_real(temperature) and temperature > 0, "a finite number > 0")
    _check("top_k", top_k, top_k is None or _is_int(top_k, 1), "None or an integer >= 1")
    _check("top_p", top_p, top_p is None or (_is_real(top_p) and 0 < top_p <= 1), "None or a number in (0, 1]")
    _check("num_beams", num_beams, _is_int(num_beams, 1), "an integer >= 1")
    _check("repetition_penalty", repetition_penalty, _is_real(repetition_penalty) and repetition_penalty > 0,
           "a finite number > 0")
    _check("length_penalty", length_penalty, _is_real(length_penalty), "a finite number")
    _check("eos_token_id", eos_token_id, eos_token_id is None or _is_int(eos_token_id, 0),
           "None or an integer >= 0")
    _check("batch_size", batch_size, batch_size is None or _is_int(batch_size, 1), "None or an integer >= 1")
    if mode == "sample" and key is None:
        raise ValueError("key must be a PRNG key for mode='sample', got None")
    prompts = np.asarray(prompts)
    _check("prompts", f"array of shape {prompts.shape} and dtype {prompts.dtype}",
           prompts.ndim == 2 and prompts.shape[0] >= 1 and prompts.shape[1] >= 1
           and np.issubdtype(prompts.dtype, np.integer), "an integer array [B, P] with B, P >= 1")
    _check("prompts", "an array with negative entries", prompts.min() >= 0, "token ids >= 0")
    settings = _Settings(mode, int(max_new_tokens), float(temperature), None if top_k is None else int(top_k),
                         None if top_p is None else float(top_p), int(num_beams), float(repetition_penalty),
                         float(length_penalty), None if eos_token_id is None else int(eos_token_id))
    if key is None:
        key = jax.random.key(0)  # unused outside sampling; a fixed value keeps the call signature uniform

    total = prompts.shape[0]
    size = total if batch_size is None else min(int(batch_size), total)
    chunks = -(-total // size)
    padded = np.concatenate([prompts, np.repeat(prompts[-1:], chunks * size - total, axis=0)]).astype(np.int32)
    indices = np.arange(chunks * size, dtype=np.int32)
    tokens, scores = [], []
    pending = None
    with tqdm(total=chunks, desc="generate", unit="chunk", disable=None if progress is None else not progress) \
            as bar:
        for i in range(chunks + 1):
            # Dispatch chunk i before waiting for chunk i - 1, so the host copy overlaps the next call.
            current = None
            if i < chunks:
                rows = slice(i * size, (i + 1) * size)
                current = _chunk_jit(decoder.state, padded[rows], indices[rows], key, decode_fn=decoder.decode_fn,
                                     init_cache=decoder.init_cache, settings=settings)
            if pending is not None:
                tokens.append(np.asarray(pending[0]))
                scores.append(np.asarray(pending[1]))
                bar.update(1)
            pending = current
    tokens = np.concatenate(tokens)[:total].astype(np.int32)
    scores = np.concatenate(scores)[:total].astype(np.float32)
    return (tokens, scores) if return_scores else tokens
