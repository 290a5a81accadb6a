"""Training a VAE: the ELBO, PyTorch's Adam with coupled weight decay, jitted steps, sampling.

The paper (Shumailov et al., Nature 2024, the MNIST VAE) minimises, per batch, the sum over
examples of the Bernoulli cross-entropy (summed over pixels) plus KL(q(z|x) || N(0, I)), with
`torch.optim.Adam(lr=1e-3, weight_decay=1e-5)` at batch 256. Here the loss is the per-example
MEAN of the same quantity, so the learning rate means the same at every batch size. Adam divides
each update by the root mean square of its gradients, so scaling the loss by 1/batch leaves the
updates unchanged (up to eps = 1e-8 against gradients of order 1e-3 and up): the only part that
changes is the coupled weight decay, which torch adds to the gradient before Adam. Adding
wd * theta to the mean gradient equals adding (batch * wd) * theta to the summed one, so the paper's
decay on our loss is weight_decay = 1e-5 / batch_size (~3.9e-8 at batch 256); `make_optimizer`
takes whatever the caller decides.

Steps: `make_train_step(graphdef, optimizer, batch_fn)` returns a jitted pure function of
(state, opt_state, key, step_index), `state = nnx.state(model)`. Step i uses
`fold_in(key, i)`, so the same key gives the same run however many steps each call does.
`train` runs `steps` of them: for dense models 50 steps per jitted call in a rolled `lax.scan`;
for convolutional models 4 per call in an UNROLLED scan, since on the CPU a convolution gradient
inside a rolled scan ran ~85x slower (measured choices: the constants below, benchmarks/vae.py).
Compiled steps are cached on (graphdef, optimizer, batch_fn), so a chain that reuses one
batch_fn and one optimizer compiles once per process, not once per generation.

`batch_fn(key, step_index, *batch_args) -> x [B, H, W, C]` is the caller's pure function; the
`batch_args` (a data set, the previous generation's decoder state) are passed as jit arguments,
not captured as constants, so one compiled step serves every generation. `data_batches` and
`decoder_batches` build the two the paper needs: shuffled epochs of a data set, and the paper's
"fresh" synthetic batches (decoder means of z ~ N(0, I) from a frozen model).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from modelcollapse.runtime import jit_with_cpu_options, map_in_batches
from modelcollapse.vae.models import ConvVAE

METRICS = ("loss", "recon", "kl")
# Steps per jitted call. Measured with benchmarks/vae.py on the 2-core machine (jax 0.10.2, YNNPACK
# off), batch 256: MLP VAE 202k examples/s with a rolled scan of 50 against 154k with single steps;
# conv VAE 2,189 examples/s with an unrolled scan of 4 against 1,871 with single steps (8 or 12 per
# call: no faster; a rolled scan of convolution gradients ran ~85x slower on the CPU: never roll it).
DENSE_STEPS_PER_CALL = 50
CONV_STEPS_PER_CALL = 4  # unrolled


def elbo_loss(model: nnx.Module, x: jax.Array, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative ELBO per example, averaged over the batch (module docstring: relation to the paper's sum).

    x: [B, H, W, C] in [0, 1]. recon = Bernoulli cross-entropy of x under sigmoid(decode(z)) summed
    over pixels, written with logits (log(1 + e^l) - x l, stable for any logit; torch's
    `binary_cross_entropy` of sigmoid outputs clamps each log at -100 instead). kl = KL(N(mean,
    exp(logvar)) || N(0, I)) = -1/2 sum(1 + logvar - mean^2 - exp(logvar)) (Kingma & Welling 2014,
    appendix B). One reparameterised z per example. Returns (loss [], dict(recon [], kl [])).
    """
    mean, logvar = model.encode(x)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * logvar) * eps
    logits = model.decode(z)
    recon = jnp.sum(jax.nn.softplus(logits) - x * logits, axis=(1, 2, 3))  # [B]
    kl = -0.5 * jnp.sum(1.0 + logvar - mean**2 - jnp.exp(logvar), axis=1)  # [B]
    return jnp.mean(recon + kl), dict(recon=jnp.mean(recon), kl=jnp.mean(kl))


@functools.lru_cache(maxsize=None)
def make_optimizer(*, learning_rate: float = 1e-3, weight_decay: float = 1e-5) -> optax.GradientTransformation:
    """`torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay)`: L2 coupled into the gradient
    (g + wd * theta before the moments, applied to every parameter, biases included), unlike AdamW.

    Cached: the same hyperparameters give the same object, so compiled steps (keyed on it) are reused.
    """
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
                       optax.scale(-learning_rate))


def _step_body(graphdef, optimizer, batch_fn, state, opt_state, key, step_index, batch_args):
    kb, kz = jax.random.split(jax.random.fold_in(key, step_index))
    x = batch_fn(kb, step_index, *batch_args)

    def loss_of(params):
        return elbo_loss(nnx.merge(graphdef, params), x, kz)

    (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(state)
    updates, opt_state = optimizer.update(grads, opt_state, state)
    return optax.apply_updates(state, updates), opt_state, dict(loss=loss, **aux)


# graphdef, optimizer and batch_fn are static: one compilation per (architecture, optimizer object,
# batch_fn object), reused by every later call with the same three, e.g. every generation of a chain.
_jit_step = jit_with_cpu_options(_step_body, static_argnums=(0, 1, 2))


@partial(jit_with_cpu_options, static_argnums=(0, 1, 2, 3, 4))
def _jit_chunk(graphdef, optimizer, batch_fn, length, unroll, state, opt_state, key, start, batch_args):
    def body(carry, i):
        s, o = carry
        s, o, metrics = _step_body(graphdef, optimizer, batch_fn, s, o, key, i, batch_args)
        return (s, o), metrics
    (state, opt_state), metrics = jax.lax.scan(body, (state, opt_state), start + jnp.arange(length), unroll=unroll)
    return state, opt_state, metrics


def make_train_step(graphdef, optimizer: optax.GradientTransformation, batch_fn: Callable) -> Callable:
    """Jitted `step(state, opt_state, key, step_index, batch_args=()) -> (state, opt_state, metrics)`.

    state: `nnx.state(model)` of a model split into `graphdef`; metrics: dict of [] arrays
    (METRICS). The batch is `batch_fn(k, step_index, *batch_args)` with k from fold_in(key, step_index).
    Compilations are shared by calls with the same graphdef, optimizer and batch_fn objects.
    """
    def step(state, opt_state, key, step_index, batch_args=()):
        return _jit_step(graphdef, optimizer, batch_fn, state, opt_state, key, step_index, tuple(batch_args))
    return step


def make_train_chunk(graphdef, optimizer: optax.GradientTransformation, batch_fn: Callable, *, length: int,
                     unroll: bool | int = 1) -> Callable:
    """Jitted `chunk(state, opt_state, key, start, batch_args=())`: steps start .. start + length - 1 in one
    `lax.scan` (the same steps as `make_train_step`); metrics come back stacked, [length] each.
    `unroll=True` unrolls the scan (what convolutions need on the CPU, at a longer compile)."""
    if not (isinstance(length, int) and length >= 1):
        raise ValueError(f"length must be an integer >= 1, got {length!r}")

    def chunk(state, opt_state, key, start, batch_args=()):
        return _jit_chunk(graphdef, optimizer, batch_fn, length, unroll, state, opt_state, key, start,
                          tuple(batch_args))
    return chunk


def default_steps_per_call(model: nnx.Module) -> int:
    """CONV_STEPS_PER_CALL (an unrolled scan) for convolutional models, DENSE_STEPS_PER_CALL (rolled) otherwise."""
    return CONV_STEPS_PER_CALL if isinstance(model, ConvVAE) else DENSE_STEPS_PER_CALL


def train(model: nnx.Module, *, batch_fn: Callable, steps: int, optimizer: optax.GradientTransformation | None = None,
          key: jax.Array, batch_args: tuple = (), steps_per_call: int | None = None, opt_state: Any = None,
          log_every: int = 0, log: Callable[[str], None] = print) -> tuple[nnx.Module, dict[str, Any]]:
    """Train `steps` Adam steps from `model`; returns (trained model, history). The input model is not changed.

    steps = epochs * ceil(N / batch_size) for the paper's epochs. history: 'loss', 'recon', 'kl'
    as float32 numpy arrays [steps] (each step's batch mean, before its update) and 'opt_state'
    (the optimizer state after the last step, for checkpoints; pass it back as `opt_state` to
    continue). steps_per_call: steps per jitted call (default `default_steps_per_call`); values
    > 1 on convolutional models unroll the scan; a last partial call compiles once more.
    Same key and settings -> bitwise the same result; other steps_per_call -> the same steps,
    equal up to float32 rounding (different compilations).
    log_every > 0 calls `log` with the mean metrics of each window of that many steps.
    """
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if steps_per_call is None:
        steps_per_call = default_steps_per_call(model)
    if not (isinstance(steps_per_call, int) and steps_per_call >= 1):
        raise ValueError(f"steps_per_call must be an integer >= 1, got {steps_per_call!r}")
    if not (isinstance(log_every, int) and log_every >= 0):
        raise ValueError(f"log_every must be an integer >= 0, got {log_every!r}")
    optimizer = make_optimizer() if optimizer is None else optimizer
    graphdef, state = nnx.split(model)
    state = jax.tree.map(jnp.array, state)  # a copy: the caller's model keeps its parameters
    opt_state = optimizer.init(state) if opt_state is None else opt_state
    conv = isinstance(model, ConvVAE)
    chunks = {}  # length -> compiled call; at most two lengths (full and the tail)
    collected, done, last_log, last_index = [], 0, 0, 0
    while done < steps:
        n = min(steps_per_call, steps - done)
        if n not in chunks:
            # one step is a plain jitted step: a scan of length 1 "unrolled" is still a loop, the slow
            # case for convolution gradients
            chunks[n] = (make_train_step(graphdef, optimizer, batch_fn) if n == 1 else
                         make_train_chunk(graphdef, optimizer, batch_fn, length=n, unroll=True if conv else 1))
        state, opt_state, metrics = chunks[n](state, opt_state, key, done, batch_args)
        collected.append(metrics)
        done += n
        if log_every and done - last_log >= log_every:
            window = _stack(collected[last_index:], METRICS)
            text = ", ".join(f"{m} {window[m].mean():.3f}" for m in METRICS)
            log(f"step {done}/{steps}: {text}")
            last_log, last_index = done, len(collected)
    history = _stack(collected, METRICS) if collected else {m: np.zeros(0, np.float32) for m in METRICS}
    history["opt_state"] = opt_state
    return nnx.merge(graphdef, state), history


def _stack(collected: list[dict], names) -> dict[str, np.ndarray]:
    """Per-call metric dicts ([] or [n] arrays) -> one float32 array [steps] per metric."""
    return {m: np.concatenate([np.atleast_1d(np.asarray(c[m], np.float32)) for c in collected]) for m in names}


# -- batch functions


def epoch_permutations(key: jax.Array, n: int, per_step: int, steps: int) -> jax.Array:
    """The shuffles of `steps` batches of `per_step` rows of range(n): [epochs, n] int32, row e a
    permutation drawn from fold_in(key, e), for as many epochs (of E = ceil(n / per_step) steps) as
    the steps reach. Drawn once per generation, outside the training steps: on 54,000 images one
    permutation (a sort) took 28 ms, two thirds of an MLP VAE's step when every step drew its own."""
    for name, value in (("n", n), ("per_step", per_step)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    epochs = max(1, -(-steps // -(-n // per_step)))
    keys = jax.vmap(lambda e: jax.random.fold_in(key, e))(jnp.arange(epochs))
    return _permutations(keys, n)


@partial(jit_with_cpu_options, static_argnums=1)
def _permutations(keys, n):
    return jax.vmap(lambda k: jax.random.permutation(k, n))(keys).astype(jnp.int32)


def epoch_rows(perms: jax.Array, step, per_step: int) -> jax.Array:
    """Rows [per_step] (int32) of range(n) for `step`: batch step mod E of epoch step // E
    (E = ceil(n / per_step)) of `perms` [epochs, n] (`epoch_permutations`), so every row comes
    once per epoch; the last batch is filled up from the start of the same permutation (PyTorch's
    DataLoader would give a smaller one)."""
    n = perms.shape[1]
    epoch, within = jnp.divmod(step, -(-n // per_step))
    return perms[epoch][(within * per_step + jnp.arange(per_step)) % n]


def decoder_means(graphdef, state, key: jax.Array, n: int) -> jax.Array:
    """The paper's synthetic images: sigmoid(decode(z)) for z ~ N(0, I) [n, L] from a frozen model
    (stop_gradient: the previous generation is data, not a parameter)."""
    model = nnx.merge(graphdef, state)
    z = jax.random.normal(key, (n, model.latent))
    return jax.lax.stop_gradient(jax.nn.sigmoid(model.decode(z)))


# Batch functions are built once per setting (cached), so that compiled steps (keyed on the
# function object) are reused by every call with the same setting.

@functools.lru_cache(maxsize=None)
def shuffled_batches(batch_size: int) -> Callable:
    """batch_fn(key, step, data, perms): the rows `epoch_rows(perms, step, batch_size)` of data."""
    def batch_fn(_, step, data, perms):
        return data[epoch_rows(perms, step, batch_size)]
    return batch_fn


@functools.lru_cache(maxsize=None)
def _decoded_batches(graphdef, batch_size: int) -> Callable:
    def batch_fn(key, _, state):
        return decoder_means(graphdef, state, key, batch_size)
    return batch_fn


def data_batches(data: jax.Array, *, batch_size: int, key: jax.Array, steps: int) -> tuple[Callable, tuple]:
    """Shuffled epochs of `data` [N, H, W, C] for `steps` batches (`epoch_permutations` from `key`):
    (batch_fn, batch_args) for `train`."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if data.ndim != 4 or data.shape[0] < 1:
        raise ValueError(f"data must be [N, H, W, C] with N >= 1, got shape {data.shape}")
    return shuffled_batches(batch_size), (jnp.asarray(data), epoch_permutations(key, data.shape[0], batch_size, steps))


def decoder_batches(model: nnx.Module, *, batch_size: int) -> tuple[Callable, tuple]:
    """The paper's 'fresh' synthetic data: each batch is `decoder_means` of a frozen copy of `model`
    (the previous generation) with the step's key. Returns (batch_fn, batch_args)."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    graphdef, state = nnx.split(model)
    return _decoded_batches(graphdef, batch_size), (state,)


# -- sampling and encoding, in fixed-size chunks (one compilation, bounded memory)


@partial(jit_with_cpu_options, static_argnums=0)
def _decode_probs(graphdef, state, z):
    return jax.nn.sigmoid(nnx.merge(graphdef, state).decode(z))


@partial(jit_with_cpu_options, static_argnums=0)
def _encode_mean(graphdef, state, x):
    return nnx.merge(graphdef, state).encode(x)[0]


def sample_images(model: nnx.Module, key: jax.Array, n: int, *, batch_size: int = 1000) -> np.ndarray:
    """The paper's synthetic images: decoder means sigmoid(decode(z)) of z ~ N(0, I); -> [n, H, W, C] in [0, 1].

    All n latents are drawn at once from `key`, so the images do not depend on `batch_size`.
    """
    if not (isinstance(n, int) and n >= 0):
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    graphdef, state = nnx.split(model)
    z = jax.random.normal(key, (n, model.latent))
    if n == 0:
        return np.zeros((0,) + tuple(model.image_shape), np.float32)
    return map_in_batches(lambda part: _decode_probs(graphdef, state, part), z, min(batch_size, n))


def encode_means(model: nnx.Module, x, *, batch_size: int = 1000) -> np.ndarray:
    """Posterior means of q(z | x) for x [N, H, W, C]; -> [N, L] (the paper's latent metric), in chunks."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    x = jnp.asarray(x, jnp.float32)
    if x.shape[0] == 0:
        return np.zeros((0, model.latent), np.float32)
    graphdef, state = nnx.split(model)
    return map_in_batches(lambda part: _encode_mean(graphdef, state, part), x, min(batch_size, x.shape[0]))
