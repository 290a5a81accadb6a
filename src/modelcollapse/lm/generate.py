"""Decoding for the small language models: ancestral sampling, greedy search and beam search.

The paper's recursive LM experiment (Shumailov et al., Nature 2024, its language-model section; the
official code calls Hugging Face's `generate(num_beams=5, repetition_penalty=3.0)`) makes each
generation's training data by prompting the previous model with every 64-token block of the original
training set and keeping the next 64 tokens. `generate` does that for a whole prompt set: chunks of
`batch_size` prompts, each chunk one jitted call (the prompt as one chunk of the model's KV cache, then
`lax.scan` over single tokens), the last chunk padded so that every chunk has the same shape and the
function compiles once. All prompts have the same length P (fixed blocks; no left padding).

Speed on the CPU (the LM experiment's GPT: d 64, 1 layer, 250 prompts x 5 beams = 1,250 rows per
call): a decoding step is memory-bound, not FLOP-bound. Every step the model rewrites its KV cache
(XLA's CPU backend copies it rather than updating in place) and beam search gathers it into the new
beam order: at 1,250 rows that is 80 MB per pass, far beyond the CPU caches; the model step and the
reorder took over 90% of a 40-76 ms step (the machine was loaded), the beam bookkeeping about 3 ms.
So after the prefill of the whole chunk, a chunk decodes in groups of about 8 MB of cache
(`GROUP_CACHE_BYTES`; 125 rows there) one after the other (`lax.map`), which made beam search
1.8-2.1x, greedy 1.6x and sampling 1.5x faster with bit-identical tokens and scores. The repetition penalty uses
each row's presence mask over the vocabulary (carried and reordered with the beams) instead of a
gather and scatter over the whole history: the same values (no measurable gain on its own).

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
    verified: bool = False  # a verifier's rejected transitions are vetoed (`veto_rejected`)


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


def _present(tokens: jax.Array, vocab: int) -> jax.Array:
    """bool [..., V]: which tokens of the vocabulary occur in tokens int [..., L] (others ignored)."""
    return jnp.any(tokens[..., None] == jnp.arange(vocab, dtype=tokens.dtype), axis=-2)


def veto_rejected(logits: jax.Array, last: jax.Array, rejected: jax.Array) -> jax.Array:
    """A verifier's veto: token j after token i gets logit -inf where rejected[i, j] (bool [V, V]);
    logits [..., V], last int [...] each row's previous token. Applied before every other processor,
    so the next token is drawn from the model's law conditioned on the verifier accepting it (what
    proposing from the model and redrawing every rejected token would give), and beam search ranks
    the same renormalised log-probabilities."""
    return jnp.where(rejected[last], -jnp.inf, logits)


def _penalize_present(scores: jax.Array, present: jax.Array, penalty: float) -> jax.Array:
    """`apply_repetition_penalty` with the history given as its presence mask [..., V]: the same
    elementwise values (s / penalty if s > 0, else s * penalty, where present), without the gather
    and scatter over the whole history at every step."""
    return jnp.where(present, jnp.where(scores > 0, scores / penalty, scores * penalty), scores)


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


def _chunk_sample_greedy(fns, state, prompts, logits, cache, indices, key, rejected, s: _Settings):
    """Sampling or greedy for prompts [C, P] after their prefill (next-token logits [C, V], cache);
    row keys fold in the prompt indices [C]."""
    c, p = prompts.shape
    n = s.max_new_tokens
    eos = s.eos_token_id
    penalise = s.repetition_penalty != 1.0
    vocab = logits.shape[-1]
    tokens = jnp.zeros((c, n), jnp.int32)
    # The history as a presence mask [C, V] (prompt and generated tokens; the penalty needs no more).
    present = _present(prompts, vocab) if penalise else jnp.zeros((c, 0), bool)
    row_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, indices)

    def choose(logits, last, tokens, present, finished, score, t):
        if s.verified:
            logits = veto_rejected(logits, last, rejected)
        if penalise:
            logits = _penalize_present(logits, present, s.repetition_penalty)
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
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[:, None], t, axis=1)
        if penalise:
            present = present | (token[:, None] == jnp.arange(vocab, dtype=jnp.int32))
        return token, tokens, present, finished, score

    carry = choose(logits, prompts[:, -1], tokens, present, jnp.zeros(c, bool), jnp.zeros(c, jnp.float32), 0)

    def step(carry, t):
        token, tokens, present, finished, score, cache = carry
        logits, cache = _decode_last(fns, state, token[:, None], cache, p + t - 1)
        return (*choose(logits, token, tokens, present, finished, score, t), cache), None

    (_, tokens, _, _, score, _), _ = jax.lax.scan(step, (*carry, cache), jnp.arange(1, n, dtype=jnp.int32))
    return tokens, score


def _chunk_beam(fns, state, prompts, logits, cache, rejected, s: _Settings):
    """Beam search (HF's BeamSearchScorer semantics, module docstring) for prompts [C, P] after their
    prefill (next-token logits [C, V], cache)."""
    c, p = prompts.shape
    n, k, eos, lp = s.max_new_tokens, s.num_beams, s.eos_token_id, s.length_penalty
    vocab = logits.shape[-1]
    if vocab < 2:
        raise ValueError(f"beam search needs a vocabulary of at least 2 tokens, got {vocab}")
    if eos is not None and eos >= vocab:
        raise ValueError(f"eos_token_id must be < vocab size {vocab}, got {eos}")
    # Each prompt's cache is computed once and shared by its K beams: rows [C*K], beam-major per prompt.
    cache = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), cache)
    logits = jnp.repeat(logits[:, None], k, axis=1)  # [C, K, V]
    rows = jnp.arange(c)[:, None]
    penalise = s.repetition_penalty != 1.0
    # Each beam's history (prompt and tokens so far) as a presence mask [C, K, V]: the penalty needs
    # no more, and reordering it with the beams is cheap.
    present = jnp.repeat(_present(prompts, vocab)[:, None], k, axis=1) if penalise else jnp.zeros((c, k, 0), bool)

    def choose(logits, last, present, beams, t):
        seq, score, fin_seq, fin_score, done = beams  # [C,K,n], [C,K], [C,K,n], [C,K], [C]
        if s.verified:
            logits = veto_rejected(logits, last, rejected)
        logp = jax.nn.log_softmax(logits, axis=-1)
        if penalise:  # on log-probabilities, after log-softmax, as HF's beam search
            logp = _penalize_present(logp, present, s.repetition_penalty)
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
        if penalise:
            present = present[rows, parent] | (token[..., None] == jnp.arange(vocab, dtype=jnp.int32))
        return token, parent, present, (seq, score, fin_seq, fin_score, done)

    empty = jnp.full((c, k, n), _EMPTY, jnp.int32)
    start = jnp.where(jnp.arange(k) == 0, 0.0, _NOT_STARTED) * jnp.ones((c, 1), jnp.float32)
    beams = (empty, start, empty, jnp.full((c, k), -jnp.inf, jnp.float32), jnp.zeros(c, bool))
    token, parent, present, beams = choose(logits, jnp.repeat(prompts[:, -1:], k, axis=1), present, beams, 0)
    cache = _reorder(cache, (rows * k + parent).reshape(-1))

    def step(carry, t):
        token, cache, present, beams = carry
        logits, cache = _decode_last(fns, state, token.reshape(c * k, 1), cache, p + t - 1)
        token, parent, present, beams = choose(logits.reshape(c, k, vocab), token, present, beams, t)
        return (token, _reorder(cache, (rows * k + parent).reshape(-1)), present, beams), None

    (_, _, _, beams), _ = jax.lax.scan(step, (token, cache, present, beams), jnp.arange(1, n, dtype=jnp.int32))
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


def _chunk(state, prompts, indices, key, rejected, *, decode_fn, init_cache, settings, group):
    """One jitted call: the prefill of prompts [C, P] at once, then decoding in groups of `group`
    prompts, one group after the other (lax.map).

    Rows are independent (a prompt's beams only ever mix with each other; sampling keys come from the
    prompt indices), so grouping changes no result; it keeps a group's KV cache (rows x 2 x L x S x d
    floats, rewritten and reordered every step) small enough to stay in the CPU's caches: at the LM
    experiment's sizes 1,250 rows make 80 MB and a step costs about 2x more per row than 125 rows do.
    (The float results of XLA's CPU kernels may depend on the batch size below some size, measured 64
    rows at d 64: groups keep at least MIN_GROUP_ROWS rows, and the prefill runs on the whole chunk.)
    The chunk is padded to whole groups with copies of its last prompt.
    """
    fns = (decode_fn, init_cache)
    c, p = prompts.shape
    m = -(-c // group)
    pad = m * group - c
    if pad:
        prompts = jnp.concatenate([prompts, jnp.repeat(prompts[-1:], pad, axis=0)])
        indices = jnp.concatenate([indices, jnp.repeat(indices[-1:], pad, axis=0)])
    cache = init_cache(m * group, p + settings.max_new_tokens - 1)
    logits, cache = _decode_last(fns, state, prompts, cache, jnp.int32(0))
    if settings.verified and rejected.shape != (logits.shape[-1],) * 2:
        raise ValueError(f"rejected must be the model's [V, V] = {(logits.shape[-1],) * 2} verifier table, "
                         f"got shape {rejected.shape}")

    def run(x):
        prompts, indices, logits, cache = x
        if settings.mode == "beam":
            return _chunk_beam(fns, state, prompts, logits, cache, rejected, settings)
        return _chunk_sample_greedy(fns, state, prompts, logits, cache, indices, key, rejected, settings)

    if m == 1:
        return run((prompts, indices, logits, cache))
    split = lambda x: x.reshape(m, group, *x.shape[1:])
    tokens, scores = jax.lax.map(run, jax.tree.map(split, (prompts, indices, logits, cache)))
    return tokens.reshape(m * group, -1)[:c], scores.reshape(m * group)[:c]


_chunk_jit = jax.jit(_chunk, static_argnames=("decode_fn", "init_cache", "settings", "group"))

# Grouping (`_chunk`): a group's KV cache is kept near GROUP_CACHE_BYTES (measured at the LM
# experiment's sizes, GPT d 64, 1 layer, cache 127 positions, 5 beams, 250 prompts per call: groups of
# 70 to 125 rows, 4.5 to 8 MB, ran a step 2.1x faster than the whole chunk's 1,250 rows, 250 rows 1.3x),
# with at least MIN_GROUP_ROWS rows (below 64 rows XLA's CPU kernels rounded the GPT's logits
# differently from larger batches, at d 64); no grouping when the weights, which every group reads
# again each step, are more than a tenth of a group's cache. GROUP_ROWS, if set, overrides (tests).
GROUP_CACHE_BYTES = 8 * 2 ** 20
MIN_GROUP_ROWS = 64
GROUP_ROWS: int | None = None


def _group_rows(decoder: Decoder, cache_length: int) -> int | None:
    """Rows per group for this decoder (see GROUP_CACHE_BYTES), or None: the whole chunk at once."""
    if GROUP_ROWS is not None:
        return GROUP_ROWS
    cache = jax.eval_shape(lambda: decoder.init_cache(1, cache_length))
    per_row = sum(math.prod(x.shape[1:]) * x.dtype.itemsize for x in jax.tree.leaves(cache))
    weights = sum(math.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(decoder.state))
    rows = max(MIN_GROUP_ROWS, GROUP_CACHE_BYTES // max(per_row, 1))
    return None if 10 * weights > rows * per_row else rows


def _group_size(chunk: int, rows_per_prompt: int, group_rows: int | None) -> int:
    """Prompts per group: about group_rows rows, groups of equal size that pad the chunk least."""
    if group_rows is None:
        return chunk
    target = max(1, group_rows // rows_per_prompt)
    groups = -(-chunk // target)
    return -(-chunk // groups)


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
             rejected=None, return_scores: bool = False, progress: bool | None = None):
    """Continue each prompt by `max_new_tokens` tokens (module docstring: semantics, keys).

    prompts: int [B, P], all of length P >= 1; the cache is made for P + max_new_tokens - 1 positions
    (127 for the paper's 64 + 64: a context of 128 suffices). Returns the new tokens only, numpy
    int32 [B, max_new_tokens]; with `return_scores`, also float32 [B]: for sampling and greedy the sum of the
    chosen tokens' log-probabilities under the distribution they were chosen from (after penalty and
    warpers, up to and including EOS); for beam search the returned hypothesis' score
    sum / length**length_penalty (HF's sequences_scores).
    key: required for mode="sample", ignored otherwise. temperature, top_k, top_p: sampling only.
    num_beams, length_penalty: beam search only. rejected: None, or a verifier's bool [V, V] table
    (token j may not follow token i where rejected[i, j]; `veto_rejected`), every row accepting
    some token; the first new token follows the prompt's last. batch_size: prompts per jitted call (None: all at
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
    if rejected is not None:
        rejected = np.asarray(rejected)
        _check("rejected", f"array of shape {rejected.shape} and dtype {rejected.dtype}",
               rejected.ndim == 2 and rejected.shape[0] == rejected.shape[1] and rejected.dtype == bool,
               "a bool array [V, V]")
        _check("rejected", f"a table rejecting every token after token(s) {np.flatnonzero(rejected.all(1))[:5]}",
               not rejected.all(1).any(), "a table that accepts some token after every token")
        _check("prompts", f"token id {prompts.max()}", prompts.max() < len(rejected),
               f"ids below the verifier table's {len(rejected)} tokens")
    settings = _Settings(mode, int(max_new_tokens), float(temperature), None if top_k is None else int(top_k),
                         None if top_p is None else float(top_p), int(num_beams), float(repetition_penalty),
                         float(length_penalty), None if eos_token_id is None else int(eos_token_id),
                         rejected is not None)
    table = jnp.zeros((1, 1), bool) if rejected is None else jnp.asarray(rejected)
    if key is None:
        key = jax.random.key(0)  # unused outside sampling; a fixed value keeps the call signature uniform

    total = prompts.shape[0]
    size = total if batch_size is None else min(int(batch_size), total)
    chunks = -(-total // size)
    padded = np.concatenate([prompts, np.repeat(prompts[-1:], chunks * size - total, axis=0)]).astype(np.int32)
    indices = np.arange(chunks * size, dtype=np.int32)
    group = _group_size(size, settings.num_beams if mode == "beam" else 1,
                        _group_rows(decoder, prompts.shape[1] + settings.max_new_tokens - 1))
    tokens, scores = [], []
    pending = None
    with tqdm(total=chunks, desc="generate", unit="chunk", disable=None if progress is None else not progress) \
            as bar:
        for i in range(chunks + 1):
            # Dispatch chunk i before waiting for chunk i - 1, so the host copy overlaps the next call.
            current = None
            if i < chunks:
                rows = slice(i * size, (i + 1) * size)
                current = _chunk_jit(decoder.state, padded[rows], indices[rows], key, table, decode_fn=decoder.decode_fn,
                                     init_cache=decoder.init_cache, settings=settings, group=group)
            if pending is not None:
                tokens.append(np.asarray(pending[0]))
                scores.append(np.asarray(pending[1]))
                bar.update(1)
            pending = current
    tokens = np.concatenate(tokens)[:total].astype(np.int32)
    scores = np.concatenate(scores)[:total].astype(np.float32)
    return (tokens, scores) if return_scores else tokens
