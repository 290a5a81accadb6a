"""Benchmark: recursive resampling of a discrete distribution, JAX against NumPy (a report, not a test).

    .venv/bin/python benchmarks/discrete.py [--replicates 200 --generations 100 --num-symbols 1000
                                             --sample-sizes 100 1000 10000 --repeats 3] [--no-samplers]

Times the same work (R chains x G generations of Multinomial(M, p) over K Zipf symbols, with the
surviving-symbol count and homozygosity of every generation) as (1) the library's jitted, vmapped
`simulate_metrics`, on one CPU device and on one forced host device per core
(XLA_FLAGS=--xla_force_host_platform_device_count=N, each layout in its own process, as
benchmarks/devices.py: the library lays the chains over every device, so N devices use N cores),
and (2) a NumPy loop over generations, each generation one vectorised `rng.multinomial` over all
chains (conditional binomials, BTPE; one core); then the exact theory that the default run's
`discrete_summarize` job computes (issue 17: that job within 5 s). Then, unless --no-samplers, the
per-draw cost of the exact multinomial samplers considered for the library, inside the same
jit(vmap(scan)) from counts to counts on one device, to show why it draws uniform indices into the
training multiset (the library's replace chains also skip the owner table: their state is the M
symbols). Always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np

from timing import best_of, on_devices  # benchmarks/timing.py (the script's own folder is on sys.path)
from modelcollapse import discrete
from modelcollapse.discrete import count_symbols, draw_symbols, exact_indices, replicate_keys


def numpy_chains(q, m, r, g, seed=0):
    """NumPy: a Python loop over generations, each one rng.multinomial over all R chains at once."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(m, q, size=r)
    survivors, homozygosity = np.empty((r, g)), np.empty((r, g))
    for n in range(g):
        p = counts / m
        survivors[:, n], homozygosity[:, n] = (counts > 0).sum(1), (p * p).sum(1)
        if n < g - 1:
            counts = rng.multinomial(m, p)
    return survivors, homozygosity


# -- alternative exact samplers for one generation of one chain: counts [K] -> counts [K]


def draw_uniform_index(key, counts, m):
    """64-bit uniform index (2 words) into the owner table: the library's sampler before issue 17."""
    return count_symbols(draw_symbols(key, counts, m, total=m), counts.shape[0])


def draw_lemire(key, counts, m):
    """32-bit Lemire index (1 word, exact rejection) into the owner table."""
    owner = jnp.repeat(jnp.arange(counts.shape[0], dtype=jnp.int32), counts, total_repeat_length=m)
    return count_symbols(owner[exact_indices(key[None], m)[0]], counts.shape[0])


def draw_jax_multinomial(key, counts, m):
    """jax.random.multinomial: a scan over the K symbols of float binomials (inversion + BTRS loops)."""
    return jax.random.multinomial(key, jnp.float32(m), counts / m).astype(jnp.int32)


def draw_randint_search(key, counts, m):
    """jax.random.randint positions, binary search of the cumulative counts, bincount."""
    cum = jnp.cumsum(counts)
    pos = jax.random.randint(key, (m,), 0, cum[-1])
    return count_symbols(jnp.searchsorted(cum, pos, side="right", method="scan").astype(jnp.int32),
                         counts.shape[0])


def draw_binomial_tree(key, counts, m):
    """A binary tree of conditional binomials, one vectorised level at a time (log2 K levels)."""
    k = counts.shape[0]
    depth = int(np.ceil(np.log2(k)))
    weights = [jnp.zeros(2**depth, jnp.float32).at[:k].set(counts.astype(jnp.float32))]
    for _ in range(depth):
        weights.append(weights[-1].reshape(-1, 2).sum(-1))
    n = jnp.full((1,), jnp.float32(m))
    for level in range(depth - 1, -1, -1):
        pair = weights[level].reshape(-1, 2)
        total = pair.sum(-1)
        ratio = jnp.where(total > 0, pair[:, 0] / jnp.where(total > 0, total, 1.0), 0.0)
        left = jnp.where(total > 0, jax.random.binomial(jax.random.fold_in(key, level), n, ratio), 0.0)
        n = jnp.stack([left, n - left], -1).reshape(-1)
    return n[:k].astype(jnp.int32)


SAMPLERS = {"Lemire 32-bit index + owner table": draw_lemire,
            "64-bit uniform index + owner table": draw_uniform_index,
            "randint + binary search + bincount": draw_randint_search,
            "binary tree of jax.random.binomial": draw_binomial_tree,
            "jax.random.multinomial": draw_jax_multinomial}


def sampler_chains(draw, q, m, g):
    start = np.random.default_rng(0).multinomial(m, q).astype(np.int32)

    def chain(key):
        def step(counts, n):
            counts = draw(jax.random.fold_in(key, n), counts, m)
            return counts, jnp.sum(counts > 0)
        return jax.lax.scan(step, jnp.asarray(start), jnp.arange(g))[1]
    return jax.jit(jax.vmap(chain))


def summarize_row(repeats: int) -> None:
    """Issue 17's `discrete_summarize` row: the exact replace-regime theory that job computes for the
    default run (config/config.yaml's discrete block: one survival recursion over its generations and
    one at its table generations, per M); goal: the job within 5 s (it also starts Python, imports
    JAX and reads the chains' files)."""
    from pathlib import Path

    from modelcollapse.config import read_yaml
    from modelcollapse.theory import discrete as theory

    block = read_yaml(Path(__file__).resolve().parents[1] / "config" / "config.yaml")["discrete"]
    q, at = discrete.zipf(block["num_symbols"], block["exponent"]), block["table_generations"]

    def run():
        for m in block["sample_sizes"]:
            theory.survival_theory(q, sample_size=m, generations=block["generations"])
            theory.survival_theory(q, sample_size=m, generations=max(at), at=at)
    run()
    t = best_of(run, repeats)
    print(f"\ndiscrete_summarize's exact theory (the default run: K={q.size}, G={block['generations']}, M = "
          f"{', '.join(map(str, block['sample_sizes']))}): {t:.2f} s (goal: the whole job <= 5 s; the default "
          f"run's timings/discrete_summarize.tsv has the job's time)")


# One layout's timings of the library (timing.on_devices runs it in a process of its own).
CHILD = r"""
import json, sys
from timing import best_of
from modelcollapse import discrete
r, g, k, repeats = map(int, sys.argv[1:5])
q = discrete.zipf(k, float(sys.argv[5]))
seconds, digest = {}, {}
for m in map(int, sys.argv[6:]):
    run = lambda: discrete.simulate_metrics(0, probs=q, sample_size=m, generations=g, replicates=r).survivors
    digest[m] = int(run().sum())  # compile outside the timing
    seconds[m] = best_of(run, repeats)
print(json.dumps({"seconds": seconds, "digest": digest}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("replicates", 200), ("generations", 100), ("num-symbols", 1000), ("repeats", 3)):
        p.add_argument(f"--{flag}", type=int, default=default)
    p.add_argument("--exponent", type=float, default=1.1)
    p.add_argument("--sample-sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--no-samplers", action="store_true", help="skip the comparison of JAX samplers")
    a = p.parse_args()
    r, g, k, n = a.replicates, a.generations, a.num_symbols, a.repeats
    q = discrete.zipf(k, a.exponent)
    print(f"jax {jax.__version__} (backend {jax.default_backend()}), numpy {np.__version__}, python "
          f"{platform.python_version()}, CPU cores {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"work per M: R={r} chains x G={g} generations of Multinomial(M, p) over K={k} Zipf({a.exponent:g}) "
          f"symbols; best of {n} after a warm-up call\n")
    layouts = sorted({1, os.cpu_count() or 1})
    jax_times = {d: on_devices(d, CHILD, r, g, k, n, a.exponent, *a.sample_sizes) for d in layouts}
    same = len({json.dumps(t["digest"]) for t in jax_times.values()}) == 1
    print(f"JAX: the library on 1 device and on {layouts[-1]} forced host devices (one per core; "
          f"same chains: {same}); NumPy: one core")
    print(f"{'M':>7}" + "".join(f"{f'JAX {d} dev (s)':>16}" for d in layouts) + f"{'NumPy (s)':>11}"
          + "".join(f"{f'NumPy / JAX {d} dev':>19}" for d in layouts) + f"{'JAX us/chain-gen':>18}")
    for m in a.sample_sizes:
        t_np = best_of(lambda: numpy_chains(q, m, r, g), n)
        t_jax = [jax_times[d]["seconds"][str(m)] for d in layouts]
        print(f"{m:>7}" + "".join(f"{t:>16.3f}" for t in t_jax) + f"{t_np:>11.3f}"
              + "".join(f"{t_np / t:>19.2f}" for t in t_jax) + f"{min(t_jax) / r / g * 1e6:>18.1f}")
    summarize_row(n)
    if a.no_samplers:
        return

    g_s = max(g // 10, 5)  # the slow samplers need far longer; fewer generations suffice for a per-draw cost
    print(f"\nexact samplers inside jit(vmap(scan)), R={r}, G={g_s}: microseconds per chain and generation")
    print(f"{'sampler':<40}" + "".join(f"{'M=' + str(m):>11}" for m in a.sample_sizes))
    keys = replicate_keys(0, r)
    for name, draw in SAMPLERS.items():
        cells = []
        for m in a.sample_sizes:
            fn = sampler_chains(draw, q, m, g_s)
            jax.block_until_ready(fn(keys))
            cells.append(best_of(lambda: fn(keys), n) / r / g_s * 1e6)
        print(f"{name:<40}" + "".join(f"{c:>11.1f}" for c in cells))


if __name__ == "__main__":
    main()
