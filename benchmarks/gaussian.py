"""Benchmark: recursive fit-and-sample of a 1-D Gaussian, four ways (a report, not a test).

    .venv/bin/python benchmarks/gaussian.py [--replicates 1000 --generations 2000 --sample-size 100
                                             --repeats 3 --loop-replicates 5] [--no-variants]

Times the same work (R chains x G generations x M draws, unbiased estimator) as (1) the library's
jitted points sampler, (2) vectorised NumPy, (3) a pure-Python loop and (4) the random-draw floor:
the same jit+vmap+scan, fold_in keys and (classic) threefry draws, but the draws only summed. Then
checks the speed targets, times the d-dimensional chains against a NumPy loop and, unless
--no-variants, alternative chain steps (how the library's design was chosen). Always exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random

import jax
import jax.numpy as jnp
import numpy as np

from timing import best_of  # benchmarks/timing.py (the script's own folder is on sys.path)
from modelcollapse import gaussian
from modelcollapse.gaussian import fit, replicate_keys
from modelcollapse.regimes import Regime

DDOF = 1  # the 'unbiased' estimator


def library_points(keys, m, g):
    """The library's jitted points chain, stds [R, G]."""
    return gaussian._simulate_points(keys, m=m, generations=g, regime=Regime(), ddof=DDOF)[1]


def library_stats(keys, m, g):
    """The library's sufficient-statistics sampler (same distribution, no points drawn)."""
    return gaussian._simulate_stats(keys, jnp.full(g, m, jnp.float32), regime=Regime(), ddof=DDOF)[1]


def numpy_multivariate(r, m, g, d):
    """d-dimensional chains in NumPy: loop over generations, batched over chains."""
    rng = np.random.default_rng(0)
    mean, chol = np.zeros((r, d)), np.broadcast_to(np.eye(d), (r, d, d)).copy()
    for _ in range(g):
        z = rng.standard_normal((r, m, d))
        z_mean = z.mean(axis=1)
        centred = z - z_mean[:, None]
        z_chol = np.linalg.cholesky(np.einsum("rmi,rmj->rij", centred, centred) / (m - DDOF))
        mean, chol = mean + np.einsum("rij,rj->ri", chol, z_mean), chol @ z_chol
    return mean, chol


def time_jax(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # warm-up: compile once, outside the timing
    return best_of(fn, repeats)


def normal(key, m):
    """jax.random.normal under the global threefry mode (partitionable by default)."""
    return jax.random.normal(key, (m,))


def normal_classic(key, m):
    # Partitionable threefry (the default since JAX 0.5) runs one threefry2x32 hash per 32-bit word
    # and XORs its two outputs; classic threefry keeps both outputs: half the hashing. Read at trace time.
    with jax.threefry_partitionable(False):
        return jax.random.normal(key, (m,))


def fit_one_pass(z, ddof):
    """Sum and sum of squares in one pass (z ~ N(0, 1), so cancellation is harmless here)."""
    s, q = jnp.sum(z, -1), jnp.sum(z * z, -1)
    return s / z.shape[-1], jnp.sqrt(jnp.maximum(q - s * s / z.shape[-1], 0.0) / (z.shape[-1] - ddof))


def chain_sim(draw, fit_fn, *, m, g):
    """jit(vmap(scan)) over replicate keys, the library's structure with a pluggable draw and fit."""
    def chain(key):
        def step(carry, gen):
            z_mean, z_std = fit_fn(draw(jax.random.fold_in(key, gen), m), DDOF)
            new = (carry[0] + carry[1] * z_mean, carry[1] * z_std)
            return new, new
        return jax.lax.scan(step, (jnp.float32(0.0), jnp.float32(1.0)), jnp.arange(g))[1][1]
    return jax.jit(jax.vmap(chain))


def floor_sim(draw, *, m, g):
    """Same keys, scan and draws as a chain, but only a running sum of the draws (XLA must make them)."""
    def chain(key):
        def step(total, gen):
            return total + jnp.sum(draw(jax.random.fold_in(key, gen), m)), None
        return jax.lax.scan(step, jnp.float32(0.0), jnp.arange(g))[0]
    return jax.jit(jax.vmap(chain))


def batched_sim(key, *, r, m, g):
    """One key per generation and one [R, M] draw for all chains (a chain then depends on R)."""
    def step(carry, gen):
        z_mean, z_std = fit(normal_classic(jax.random.fold_in(key, gen), r * m).reshape(r, m), DDOF)
        new = (carry[0] + carry[1] * z_mean, carry[1] * z_std)
        return new, new
    return jax.lax.scan(step, (jnp.zeros(r), jnp.ones(r)), jnp.arange(g))[1][1]


def numpy_chains(r, m, g, dtype):
    """Python loop over generations; each generation vectorised over chains and samples."""
    rng = np.random.default_rng(0)
    mean, std = np.zeros(r, dtype), np.ones(r, dtype)
    for _ in range(g):
        z = rng.standard_normal((r, m), dtype=dtype)
        mean, std = mean + std * z.mean(axis=1), std * z.std(axis=1, ddof=DDOF)
    return mean, std


def loop_chains(r, m, g):
    """Plain Python: lists and random.gauss, no numpy."""
    rnd, out = random.Random(0), []
    for _ in range(r):
        mean, std = 0.0, 1.0
        for _ in range(g):
            z = [rnd.gauss(0.0, 1.0) for _ in range(m)]
            zbar = sum(z) / m
            zstd = math.sqrt(sum((x - zbar) ** 2 for x in z) / (m - DDOF))
            mean, std = mean + std * zbar, std * zstd
        out.append((mean, std))
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("replicates", 1000), ("generations", 2000), ("sample-size", 100),
                          ("repeats", 3), ("loop-replicates", 5)):
        p.add_argument(f"--{flag}", type=int, default=default)
    p.add_argument("--no-variants", action="store_true", help="skip the alternative JAX chain steps")
    a = p.parse_args()
    r, g, m, n = a.replicates, a.generations, a.sample_size, a.repeats
    print(f"jax {jax.__version__} (backend {jax.default_backend()}, devices {jax.devices()}), numpy "
          f"{np.__version__}, python {platform.python_version()}, CPU cores {os.cpu_count()} "
          f"(usable {len(os.sched_getaffinity(0))}), threefry_partitionable={jax.config.jax_threefry_partitionable}")
    print(f"work: R={r} chains x G={g} generations x M={m} draws = {r * g * m:.3g} normals, ddof={DDOF}; "
          f"best of {n} after a warm-up call\n")

    keys = replicate_keys(0, r)
    t_jax = time_jax(lambda: library_points(keys, m, g), n)
    floor = floor_sim(normal_classic, m=m, g=g)  # the library draws in classic threefry; build once
    t_floor = time_jax(lambda: floor(keys), n)
    t_np64 = best_of(lambda: numpy_chains(r, m, g, np.float64), n)
    t_np32 = best_of(lambda: numpy_chains(r, m, g, np.float32), n)
    k = min(a.loop_replicates, r)
    t_loop = best_of(lambda: loop_chains(k, m, g), 1) * r / k  # cost is linear in chains

    t_stats = time_jax(lambda: library_stats(keys, m, g), n)
    rows = [("JAX library points sampler (float32)", t_jax),
            ("JAX library stats sampler [info]", t_stats),
            ("random-draw floor (JAX, sum of draws)", t_floor),
            ("NumPy vectorised (float64) [target]", t_np64),
            ("NumPy vectorised (float32) [info]", t_np32),
            (f"pure Python loop ({k} chains, x{r / k:g})", t_loop)]
    print(f"{'method':<42}{'seconds':>10}{'ratio vs JAX':>14}")
    for name, t in rows:
        print(f"{name:<42}{t:>10.3f}{t / t_jax:>14.2f}")
    print(f"\ntarget JAX >= 1.80x faster than NumPy:  {t_np64 / t_jax:6.2f}x  {verdict(t_np64 / t_jax >= 1.8)}")
    print(f"target JAX >= 40x faster than loop:     {t_loop / t_jax:6.1f}x  {verdict(t_loop / t_jax >= 40)}")
    print(f"target JAX within 1.15x of draw floor:  {t_jax / t_floor:6.2f}x  {verdict(t_jax / t_floor <= 1.15)}")

    d, gm = 10, max(g // 10, 1)
    sizes = jnp.full(gm, m, jnp.float32)
    chol0 = jnp.eye(d, dtype=jnp.float32)
    t_mv = time_jax(lambda: gaussian._simulate_mv(keys, sizes, chol0, m=m, ddof=DDOF), n)
    t_mv_np = best_of(lambda: numpy_multivariate(r, m, gm, d), n)
    print(f"\nd = {d}, G = {gm}: JAX {t_mv:.3f} s, NumPy loop {t_mv_np:.3f} s, NumPy/JAX {t_mv_np / t_mv:.2f}x")
    if a.no_variants:
        return

    # Variants of the chain step (not in the library): which would meet the targets, at what cost.
    t_floor_classic = t_floor
    floor_default = floor_sim(normal, m=m, g=g)
    t_floor = time_jax(lambda: floor_default(keys), n)
    rbg_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(0, impl="unsafe_rbg"),
                                                                 jnp.arange(r))
    batched = jax.jit(batched_sim, static_argnames=("r", "m", "g"))
    classic = chain_sim(normal_classic, fit, m=m, g=g)
    variants = [  # name, its draw floor, function, argument
        ("A default threefry, plain 2-field carry", t_floor, chain_sim(normal, fit, m=m, g=g), keys),
        ("B A + one-pass sum/sum-of-squares fit", t_floor, chain_sim(normal, fit_one_pass, m=m, g=g), keys),
        ("C A with classic threefry (the library's)", t_floor_classic, classic, keys),
        ("D C + one-pass fit", t_floor_classic, chain_sim(normal_classic, fit_one_pass, m=m, g=g), keys),
        ("E C, one key/gen, [R,M] draw (R-dependent)", t_floor_classic,
         lambda key: batched(key, r=r, m=m, g=g), jax.random.key(0)),
        ("F A with unsafe_rbg keys", t_floor, chain_sim(normal, fit, m=m, g=g), rbg_keys),
    ]
    print(f"\nvariants of the JAX chain step; x/floor is against the floor with the same threefry mode "
          f"(default-threefry floor: {t_floor:.3f} s)")
    print(f"{'variant':<44}{'seconds':>9}{'NumPy/x':>9}{'loop/x':>8}{'x/floor':>9}")
    for name, floor_t, fn, arg in variants:
        t = time_jax(lambda: fn(arg), n)
        print(f"{name:<44}{t:>9.3f}{t_np64 / t:>9.2f}{t_loop / t:>8.1f}{t / floor_t:>9.2f}")


if __name__ == "__main__":
    main()
