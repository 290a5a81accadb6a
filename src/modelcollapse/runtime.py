"""Choosing JAX's platform, turning on its persistent compilation cache, and XLA options per compiled function."""

from __future__ import annotations

import functools
import os
from pathlib import Path

# config `platform` -> jax_platforms; 'auto' lets JAX take the best backend it finds.
PLATFORMS = {"auto": None, "cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}


def cache_dir() -> Path:
    return Path(os.environ.get("MODELCOLLAPSE_CACHE_DIR", Path.home() / ".cache" / "modelcollapse"))


def configure(platform: str = "auto") -> str:
    """Select the JAX backend, enable the compilation cache, and return the backend in use.

    Call before the first computation: JAX fixes its backend when it first runs something.
    Raises ValueError for an unknown platform and RuntimeError if the platform is unavailable.
    """
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {sorted(PLATFORMS)}, got {platform!r}")
    import jax

    wanted = PLATFORMS[platform]
    if wanted is not None:
        jax.config.update("jax_platforms", wanted)
    # Every Snakemake job is a new process; the cache compiles each scan once per machine, not per job.
    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    try:
        backend = jax.default_backend()
    except (RuntimeError, AssertionError) as err:  # jax asserts when no backend of jax_platforms exists
        detail = str(err).splitlines()[0] if str(err) else "no such device found"
        raise RuntimeError(f"platform {platform!r} requested but JAX cannot start it ({detail}); expected a "
                           f"{platform.upper()} with its jaxlib plugin installed (e.g. pip install -e '.[cuda]'), "
                           f"or use platform 'cpu' or 'auto'") from None
    expected = {"cuda": "gpu"}.get(wanted, wanted)
    if expected is not None and backend != expected:
        raise RuntimeError(f"platform {platform!r} requested but JAX runs on {backend!r} "
                           f"(was a computation run before configure()?)")
    return backend


# XLA's CPU backend (jax 0.10) hands convolutions, dots, elementwise ops and reductions to YNNPACK by
# default. Measured on 2 cores at batch 256 (benchmarks/vae.py): the paper's conv VAE trains 1.5x
# faster without it (a step 148 ms against 220: the stride-2 convolutions and weight gradients ran at
# about half the speed of XLA's own kernels) and the MLP VAE 1.1x faster; the GPT of `lm` is faster
# WITH it (MFU 43% against 35%), so only the VAE family opts out, per compiled function.
CPU_WITHOUT_YNNPACK = {"xla_cpu_experimental_ynn_fusion_type": ""}


class _BackendJit:
    """`jax.jit(fn, **jit_kwargs)` compiled with `cpu_options` when JAX runs on the CPU; attributes
    (`lower`, `_cache_size`, ...) are those of the jitted function in use."""

    def __init__(self, fn, cpu_options: dict, jit_kwargs: dict):
        import jax

        self._cpu = jax.jit(fn, compiler_options=cpu_options, **jit_kwargs)
        self._other = jax.jit(fn, **jit_kwargs)  # other backends may reject options of the CPU compiler
        functools.update_wrapper(self, fn)

    def _pick(self):
        import jax

        return self._cpu if jax.default_backend() == "cpu" else self._other

    def __call__(self, *args, **kwargs):
        return self._pick()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._pick(), name)


def jit_with_cpu_options(fn=None, *, cpu_options: dict = CPU_WITHOUT_YNNPACK, **jit_kwargs):
    """`jax.jit` whose XLA `compiler_options` apply on the CPU backend only; usable as a decorator
    (`@partial(jit_with_cpu_options, static_argnums=0)`). The default options turn YNNPACK off."""
    if fn is None:
        return functools.partial(jit_with_cpu_options, cpu_options=cpu_options, **jit_kwargs)
    return _BackendJit(fn, cpu_options, jit_kwargs)


def map_in_batches(fn, inputs, batch_size: int):
    """fn(batch) over inputs [N, ...] (N >= 1) in batches of exactly `batch_size` rows, the last
    padded with copies of the first row (their outputs dropped), so that a jitted `fn` compiles
    once for any N; calls are dispatched before any result is read. Returns the outputs
    concatenated along axis 0 as a numpy array [N, ...]."""
    import numpy as np

    n = len(inputs)
    if n < 1 or batch_size < 1:
        raise ValueError(f"map_in_batches needs N >= 1 inputs and batch_size >= 1, got {n} and {batch_size}")
    total = -(-n // batch_size) * batch_size
    inputs = np.asarray(inputs)
    padded = np.concatenate([inputs, np.repeat(inputs[:1], total - n, axis=0)])
    out = [fn(padded[start:start + batch_size]) for start in range(0, total, batch_size)]
    return np.concatenate([np.asarray(part) for part in out])[:n]


REPLICATE_AXIS = "replicates"


def replicate_devices(replicates: int) -> int:
    """How many local devices the replicate axis is spread over: the most that divide `replicates`
    evenly (so no chain is padded or dropped), at most jax.local_device_count()."""
    import math

    import jax

    return math.gcd(int(replicates), jax.local_device_count())


def shard_replicates(x):
    """`x` [R, ...] laid over the local devices along axis 0 (a one-axis `Mesh` named 'replicates').

    A jitted chain function wrapped in `per_device` that receives its replicate keys this way runs each
    device's share of the chains there, and the chains never talk to each other, so nothing is
    exchanged until the results are read. On one device this returns `x` unchanged. Results equal
    those of one device (tests/test_devices.py)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = replicate_mesh(x.shape[0])
    if mesh is None:
        return x
    return jax.device_put(x, NamedSharding(mesh, PartitionSpec(REPLICATE_AXIS)))


def replicate_mesh(replicates: int):
    """The one-axis `Mesh` that `shard_replicates` lays `replicates` chains over; None for one device."""
    import jax
    import numpy as np
    from jax.sharding import Mesh

    n = replicate_devices(replicates)
    return None if n == 1 else Mesh(np.array(jax.local_devices()[:n]), (REPLICATE_AXIS,))


def per_device(fn):
    """`fn(keys, *shared)` run as one program per device on that device's share of the replicate keys
    (laid out by `replicate_keys`), with `shared` replicated and every output stacked along axis 0.

    For chains that never talk to each other this is what the partitioner of a plain jitted, vmapped
    `fn` should find, but it does not always: on two forced CPU devices the discrete replace chains
    (benchmarks/discrete.py, M = 10,000) took 27 microseconds per chain and generation through the
    partitioner and 17-19 through `jax.shard_map` (37 on one device); their blocks of chains, a
    redraw loop whose test spans a block and a bincount over a flattened block are what it had to
    partition. The Gaussian chains gain the same either way (benchmarks/devices.py: 1.5x). `fn` must
    give each chain's results from its own key alone, so that the layout does not change them."""
    import jax
    from jax.sharding import PartitionSpec

    @functools.wraps(fn)
    def wrapped(keys, *shared):
        mesh = replicate_mesh(keys.shape[0])
        if mesh is None:
            return fn(keys, *shared)
        specs = (PartitionSpec(REPLICATE_AXIS),) + (PartitionSpec(),) * len(shared)
        return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(REPLICATE_AXIS),
                             check_vma=False)(keys, *shared)  # nothing is replicated across devices to check

    return wrapped


def replicate_keys(seed: int, replicates: int):
    """One key per replicate chain, fold_in(key(seed), r), [replicates] typed keys laid over the local
    devices (`shard_replicates`): a chain's draws depend on its seed and index only, not on how many
    chains run or where."""
    import jax
    import jax.numpy as jnp

    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), jnp.arange(replicates))
    return shard_replicates(keys)
