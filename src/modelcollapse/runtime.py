"""Choosing JAX's platform and turning on its persistent compilation cache."""

from __future__ import annotations

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
    except RuntimeError as err:
        raise RuntimeError(f"platform {platform!r} requested but JAX cannot start it: {err}") from None
    expected = {"cuda": "gpu"}.get(wanted, wanted)
    if expected is not None and backend != expected:
        raise RuntimeError(f"platform {platform!r} requested but JAX runs on {backend!r} "
                           f"(was a computation run before configure()?)")
    return backend
