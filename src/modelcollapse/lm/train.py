"""Training the GPT of `lm.model` on blocks of tokens, with validation-based model selection.

Data: `train_blocks` is an int32 array [n_blocks, block_size] (the corpus cut into blocks, as the
paper's 64-token blocks of wikitext-2). A block is one training example: the model reads
block[:-1] and predicts block[1:] (block_size - 1 predictions, as a causal-LM loss on shifted
labels), so block_size - 1 must not exceed the model's context. Batches are `batch_size` rows drawn
by the pure `batch_fn(key, step)`: the rows are reshuffled every epoch (a fresh permutation from
fold_in(key, epoch)), so every block is seen once per epoch, as in the paper's fine-tuning.

Optimizer (`OptimizerConfig`): AdamW (Loshchilov & Hutter 2019) after global-norm gradient
clipping; the learning rate rises linearly over `warmup_steps` (peak * (s + 1) / warmup, so step 0
already learns) and then follows a cosine from `learning_rate` down to
`final_lr_fraction * learning_rate` at the last step. Weight decay acts on the Linear kernels only:
not on biases and LayerNorm (they set offsets and scales, not capacities), not on the position
embeddings, and not on the (tied) token embedding, as in minGPT: decay pulls every row toward zero
at the same rate while rare tokens' rows get few gradient updates, so it would shrink exactly the
tail probabilities whose loss this project measures.

Model selection: the validation loss (mean next-token negative log-likelihood over all validation
blocks, in nats) is computed every `eval_every` steps and after the last; the parameters with the
lowest one are returned (the paper keeps the best checkpoint by validation loss). A NaN/inf training
loss raises FloatingPointError naming the first bad step; a training whose loss on its own training
batches ends more than DIVERGED_MARGIN nats above log V (a uniform guess over the vocabulary, about
where a fresh model starts) has diverged and raises TrainingDiverged (a FloatingPointError): a
collapsing chain still fits its own, ever narrower, training data, so this never stops a collapse.

Speed: `steps_per_call` optimizer steps run in one jitted `lax.scan` (parameters and optimizer state
donated), so Python and dispatch overhead are paid once per call: at the default model size and
batch 32 on the 2-core CPU, 10 steps per call gave 1.2-1.3x the tokens/s of single steps
(benchmarks/lm.py --sweep, measured side by side on a loaded machine). The compiled loop depends
only on the architecture and the data shapes (optimizer numbers and step counts are traced), so
the generations of a collapse chain reuse it.
"""

from __future__ import annotations

import dataclasses
import math
import types
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from modelcollapse import knobs
from modelcollapse.knobs import knob
from modelcollapse.lm.model import GPT
from modelcollapse.lm.opt import OPT


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = knob(1e-3, help="Peak learning rate, reached at the end of the warm-up.", type="number",
                                exclusiveMinimum=0)
    warmup_steps: int = knob(100, help="Linear warm-up steps (0: start at the peak).", type="integer", minimum=0)
    final_lr_fraction: float = knob(0.1, help="Learning rate at the last step as a share of the peak.",
                                    type="number", minimum=0, maximum=1)
    weight_decay: float = knob(0.1, help="AdamW decay on Linear kernels (see the module docstring).", type="number",
                               minimum=0, maximum=10)
    b1: float = knob(0.9, block=False, help="Adam first-moment decay.", type="number", minimum=0, exclusiveMaximum=1)
    b2: float = knob(0.95, block=False, help="Adam second-moment decay (GPT-style, steadier than 0.999 on small "
                     "batches).", type="number", minimum=0, exclusiveMaximum=1)
    eps: float = knob(1e-8, block=False, help="Adam denominator guard.", type="number", exclusiveMinimum=0)
    clip_norm: float = knob(1.0, help="Global gradient-norm clip (.inf: no clipping).", type="number",
                            exclusiveMinimum=0)

    def __post_init__(self):
        knobs.check(self)


class HistoryRow(NamedTuple):
    step: int  # optimizer steps taken when evaluated
    train_loss: float  # mean training-batch loss over the steps since the previous row (nats/token)
    val_loss: float  # mean validation negative log-likelihood (nats/token)
    val_ppl: float  # exp(val_loss)
    lr: float  # learning rate of the last step taken


# nats/token above log V at which the last evaluation interval's mean training loss means "diverged".
DIVERGED_MARGIN = 1.0


class TrainingDiverged(FloatingPointError):
    """Training ended far worse than a uniform guess on its own data: the learning rate is too high."""


class TrainResult(NamedTuple):
    best_state: nnx.State  # parameters with the lowest validation loss; nnx.update(model, best_state)
    best_step: int  # optimizer steps taken at that evaluation (>= 1: the start is not a candidate)
    best_val_loss: float  # its validation loss (nats/token)
    history: list[HistoryRow]  # one row per evaluation, in order


def lr_schedule(config: OptimizerConfig, total_steps):
    """Step s (0-based) -> learning rate: linear warm-up to the peak, then cosine to the final fraction.

    `total_steps` may be traced (so one compiled training loop serves any number of steps).
    """
    peak, final = config.learning_rate, config.final_lr_fraction * config.learning_rate
    total = jnp.asarray(total_steps, jnp.float32)
    warmup = jnp.minimum(config.warmup_steps, total)
    decay = jnp.maximum(total - warmup - 1, 1.0)

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = peak * (step + 1) / jnp.maximum(warmup, 1.0)
        progress = jnp.clip((step - warmup) / decay, 0.0, 1.0)
        cosine = final + 0.5 * (peak - final) * (1 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warmup, warm, cosine)

    return schedule


def decay_mask(params: nnx.State) -> Any:
    """True for the parameters AdamW decays: Linear kernels (2-D arrays named 'kernel')."""
    def is_kernel(path, x):
        # A leaf's path ends in the Variable's attribute (.value); its name is the last dict key.
        names = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
        return bool(names) and names[-1] == "kernel" and x.ndim == 2

    return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_optimizer(config: OptimizerConfig, total_steps) -> optax.GradientTransformation:
    """Gradient clipping then AdamW with the warm-up/cosine schedule and the decay mask.

    Any object with OptimizerConfig's attributes will do (inside jit they are traced scalars).
    """
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(lr_schedule(config, total_steps), b1=config.b1, b2=config.b2, eps=config.eps,
                     weight_decay=config.weight_decay, mask=decay_mask))


def steps_for_epochs(epochs: float, *, n_blocks: int, batch_size: int) -> int:
    """ceil(epochs * n_blocks / batch_size): optimizer steps for `epochs` passes over the blocks."""
    if not epochs > 0:
        raise ValueError(f"epochs must be > 0, got {epochs!r}")
    return max(1, math.ceil(epochs * n_blocks / batch_size))


def make_batch_fn(blocks: jax.Array, batch_size: int):
    """Pure batch_fn(key, step) -> int32 [batch_size, block_size]: rows reshuffled every epoch.

    Global row index i = step * batch_size + j lies in epoch i // n; it takes row perm_e[i % n] with
    perm_e = permutation(fold_in(key, e)). A batch spans at most two epochs (batch_size <= n).
    """
    n = blocks.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the number of blocks ({n})")

    def batch_fn(key, step):
        index = step * batch_size + jnp.arange(batch_size)
        first = index[0] // n
        perms = jnp.stack([jax.random.permutation(jax.random.fold_in(key, first + e), n) for e in (0, 1)])
        return blocks[perms[index // n - first, index % n]]

    return batch_fn


def token_nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """[..., V] float, [...] int -> [...] negative log-likelihood of each target (nats).

    Tried for training speed (benchmarks/lm.py, 2-core CPU): the tied head computed vocabulary-first
    (logits [V, N] = E h^T, so XLA needs no [V, N] transpose for E's gradient) with a one-pass
    custom-VJP cross-entropy (softmax - onehot): -3% to +8% per step across runs, i.e. noise; the
    same with an N-major one-hot pick instead of this gather: slower. Not worth the special case.
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def _check_blocks(name, blocks, context):
    blocks = jnp.asarray(blocks)
    if blocks.ndim != 2 or not jnp.issubdtype(blocks.dtype, jnp.integer):
        raise ValueError(f"{name} must be an integer array [n_blocks, block_size], got {blocks.dtype}{blocks.shape}")
    if not 2 <= blocks.shape[1] <= context + 1:
        raise ValueError(f"{name} block_size must be in [2, context + 1 = {context + 1}], got {blocks.shape[1]}")
    return blocks.astype(jnp.int32)


def _eval_batches(blocks: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Blocks padded to whole batches: ([n_batches, batch_size, block], weights [n_batches, batch_size])."""
    n = blocks.shape[0]
    n_batches = -(-n // batch_size)
    pad = n_batches * batch_size - n
    padded = jnp.concatenate([blocks, jnp.zeros((pad, blocks.shape[1]), blocks.dtype)])
    weights = (jnp.arange(n_batches * batch_size) < n).astype(jnp.float32)
    return padded.reshape(n_batches, batch_size, -1), weights.reshape(n_batches, batch_size)


def _loss(graphdef, params, rest, batch, dropout_key):
    """Mean next-token NLL of batch [B, block] (dropout active iff a key is given)."""
    model = nnx.merge(graphdef, params, rest)
    rngs = None if dropout_key is None else nnx.Rngs(dropout=dropout_key)
    logits = model(batch[:, :-1], deterministic=dropout_key is None, rngs=rngs)
    return token_nll(logits, batch[:, 1:]).mean()


# Module-level jits with only the architecture and shapes static; the optimizer's numbers and the
# step count are traced, so every train() call with the same model and data shapes reuses one
# compilation (a collapse chain trains the same model once per generation; sweeps change the lr). The data are arguments, not closed-over constants: XLA would
# otherwise embed (and try to constant-fold) the whole corpus in the program and the cache.
@partial(jax.jit, static_argnames=("graphdef", "batch_size", "n", "dropout"), donate_argnums=(0, 1))
def _run(params, opt_state, rest, blocks, first_step, total_steps, key, hyper, *, graphdef, batch_size, n,
         dropout):
    """n optimizer steps from `first_step` -> (params, opt_state, losses [n]); hyper: the
    OptimizerConfig's fields as float32 scalars."""
    tx = make_optimizer(types.SimpleNamespace(**hyper), total_steps)
    batch_fn = make_batch_fn(blocks, batch_size)
    batch_key, dropout_key = jax.random.split(key)

    def one_step(carry, step):
        params, opt_state = carry
        step_key = jax.random.fold_in(dropout_key, step) if dropout else None
        loss, grads = jax.value_and_grad(_loss, argnums=1)(graphdef, params, rest, batch_fn(batch_key, step),
                                                            step_key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), first_step + jnp.arange(n))
    return params, opt_state, losses


@partial(jax.jit, static_argnames="graphdef")
def _evaluate(params, rest, batches, weights, *, graphdef):
    """Sum over batches [n_batches, B, block] of weights [n_batches, B] x per-block NLL sums."""
    model = nnx.merge(graphdef, params, rest)

    def body(total, xs):
        batch, w = xs
        nll = token_nll(model(batch[:, :-1]), batch[:, 1:]).sum(-1)  # [B]
        return total + jnp.sum(w * nll), None

    return jax.lax.scan(body, jnp.float32(0), (batches, weights))[0]


def train(model: GPT | OPT, *, train_blocks, validation_blocks, key: jax.Array, batch_size: int = 32,
          steps: int | None = None, epochs: float | None = None,
          optimizer: OptimizerConfig = OptimizerConfig(), eval_every: int = 200, steps_per_call: int = 10,
          eval_batch_size: int | None = None, progress: bool | None = True) -> TrainResult:
    """Train from the model's current parameters; return the best parameters by validation loss.

    train_blocks [n_train, block], validation_blocks [n_val, block']: int token ids (see module
    docstring). Exactly one of `steps` and `epochs` (steps = ceil(epochs * n_train / batch_size)).
    `key` drives batch order and dropout: the same key gives bitwise the same result. The model
    itself is not modified. Raises FloatingPointError naming the step if a training loss is NaN/inf.
    progress: True or None shows a tqdm bar only when stderr is a terminal (never in Snakemake
    logs); False never.
    """
    context = model.config.context
    train_blocks = _check_blocks("train_blocks", train_blocks, context)
    validation_blocks = _check_blocks("validation_blocks", validation_blocks, context)
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps and epochs")
    if not isinstance(batch_size, int) or not 1 <= batch_size <= train_blocks.shape[0]:
        raise ValueError(f"batch_size must be an integer in [1, n_blocks={train_blocks.shape[0]}], got {batch_size!r}")
    if epochs is not None:
        steps = steps_for_epochs(epochs, n_blocks=train_blocks.shape[0], batch_size=batch_size)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    for name, value in (("eval_every", eval_every), ("steps_per_call", steps_per_call)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
    if not isinstance(eval_batch_size, int) or eval_batch_size < 1:
        raise ValueError(f"eval_batch_size must be a positive integer or None, got {eval_batch_size!r}")

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    static = dict(graphdef=graphdef, batch_size=batch_size, dropout=model.config.dropout > 0)
    hyper = {k: jnp.float32(v) for k, v in dataclasses.asdict(optimizer).items()}
    schedule = lr_schedule(optimizer, steps)
    val_batches, val_weights = _eval_batches(validation_blocks, eval_batch_size)
    n_val_tokens = validation_blocks.shape[0] * (validation_blocks.shape[1] - 1)

    def evaluate(params):
        return float(_evaluate(params, rest, val_batches, val_weights, graphdef=graphdef)) / n_val_tokens

    opt_state = make_optimizer(optimizer, steps).init(params)
    # Our own copies: `_run` donates (reuses) its inputs' buffers, and the model's must stay valid.
    params = jax.tree.map(jnp.copy, params)
    # The starting parameters are not a candidate: in a collapse chain that fine-tunes a fixed
    # pretrained model, choosing them whenever training hurts validation would hide the collapse.
    best_state, best_step, best_loss = None, 0, math.inf
    history, done, train_losses = [], 0, []
    bar = tqdm(total=steps, disable=None if progress in (True, None) else True, desc="train", unit="step", leave=False)
    try:
        while done < steps:
            stop = min(steps, (done // eval_every + 1) * eval_every)
            while done < stop:
                n = steps_per_call if stop - done >= steps_per_call else 1
                params, opt_state, losses = _run(params, opt_state, rest, train_blocks, jnp.int32(done),
                                                 jnp.int32(steps), key, hyper, n=n, **static)
                losses = np.asarray(losses)
                if not np.all(np.isfinite(losses)):
                    bad = int(np.flatnonzero(~np.isfinite(losses))[0])
                    raise FloatingPointError(f"training loss is {losses[bad]} at step {done + bad} "
                                             f"(0-based); lower the learning rate or check the data")
                train_losses.append(losses)
                done += n
                bar.update(n)
            val_loss = evaluate(params)
            history.append(HistoryRow(done, float(np.concatenate(train_losses).mean()), val_loss,
                                      math.exp(min(val_loss, 700.0)), float(schedule(done - 1))))
            train_losses = []
            bar.set_postfix(val_loss=f"{val_loss:.3f}")
            if best_state is None or val_loss < best_loss:
                best_loss, best_step = val_loss, done
                best_state = nnx.merge_state(jax.tree.map(jnp.copy, params), rest)
    finally:
        bar.close()
    uniform = math.log(model.config.vocab_size)
    if history[-1].train_loss > uniform + DIVERGED_MARGIN:
        raise TrainingDiverged(f"training diverged: the mean training loss over its last steps "
                               f"(after step {history[-2].step if len(history) > 1 else 0}) is {history[-1].train_loss:.3g} nats/token, worse than a uniform guess (log V = "
                               f"{uniform:.3g}) by more than {DIVERGED_MARGIN}; lower the learning rate (now "
                               f"{optimizer.learning_rate:g})")
    return TrainResult(best_state, best_step, best_loss, history)
