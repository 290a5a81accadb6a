"""Benchmark: recursive EM fitting of a 2-component Gaussian mixture, JAX against scikit-learn
(a report, not a test).

    .venv/bin/python benchmarks/gmm.py [--generations 2000 --sample-size 1000 --replicates 64
                                        --sklearn-generations 2000 --default-threads-generations 200
                                        --data blob] [--lockstep]

One chain = G generations of: draw N points from the previous fit, fit a fresh GaussianMixture by
EM (tol 1e-5, at most 2000 iterations, reg_covar 1e-6, both sides). Times, side by side in one run:
  - JAX, one chain alone (replicates=1, mean over --chains seeds), and 64 chains vmapped (per
    chain = total / 64), the library's default async engine; with --lockstep also the lockstep
    engine (a scan over generations with a while loop inside, vmapped);
  - scikit-learn refitting in a Python loop (mean over --chains chains): the paper's default init
    ('kmeans') and 'k-means++', with one BLAS/OpenMP thread (on this shared 2-core machine more
    threads made KMeans ~30x slower; the default-thread number is printed too, timed on fewer
    generations and scaled).
JAX timings are the second call (the first compiles). Chains differ in how many EM iterations
they need (some sit on a flat ridge for hundreds), so the table also gives EM iterations per fit
and the time per EM iteration. Always exits 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import jax
import numpy as np

from modelcollapse import gmm
from modelcollapse.gmm import engines
from modelcollapse.gmm.spec import GMMConfig
from modelcollapse.runtime import replicate_keys


def one_chain(seed: int, *, sample_size: int, generations: int, data: str) -> np.ndarray:
    """A single chain alone through the library's async engine; EM iterations per fit [1, G+1].
    `gmm.simulate` asks for at least 2 replicates (the workflow's standard errors need them), so this
    calls the engine it runs, with one key; the config's replicates is not read there."""
    cfg = GMMConfig(sample_size=sample_size, generations=generations, replicates=2, data=data, snapshots=(0,))
    fits, _ = engines.run_engine(replicate_keys(seed, 1), cfg, engine="async", slots=1)
    return fits.n_iter


def time_jax(replicates: int, args, engine: str = "async", runs: int = 1) -> tuple[float, float, np.ndarray]:
    """(first-call seconds, mean seconds of `runs` more calls with new seeds, EM iterations per fit)."""
    if replicates == 1:
        def call(seed):
            return one_chain(seed, sample_size=args.sample_size, generations=args.generations, data=args.data)
    else:
        def call(seed):
            return gmm.simulate(seed, sample_size=args.sample_size, generations=args.generations,
                                replicates=replicates, data=args.data, engine=engine, snapshots=(0,)).n_iter
    start = time.perf_counter()
    call(0)
    first = time.perf_counter() - start
    seconds, iters = [], []
    for seed in range(1, runs + 1):
        start = time.perf_counter()
        n_iter = call(seed)
        seconds.append(time.perf_counter() - start)
        iters.append(n_iter[:, 1:])
    return first, float(np.mean(seconds)), np.concatenate(iters)


def sklearn_chain(args, init: str, single_thread: bool = True, seed: int = 0,
                  generations: int | None = None) -> tuple[float, np.ndarray]:
    """(seconds per chain of --generations, EM iterations per fit), timing `generations` fits
    (default --sklearn-generations) and scaling linearly if fewer."""
    generations = generations or args.sklearn_generations
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    x = np.asarray(gmm.sample(jax.random.key(seed), gmm.truth(args.data), args.sample_size), np.float64)
    iters = []
    with warnings.catch_warnings(), threadpool_limits(1 if single_thread else None):
        warnings.simplefilter("ignore")  # ConvergenceWarning from the rare capped fit
        start = time.perf_counter()
        for g in range(generations):
            model = GaussianMixture(2, covariance_type="full", tol=1e-5, max_iter=2000, reg_covar=1e-6,
                                    init_params=init, random_state=seed * 100_003 + g).fit(x)
            iters.append(model.n_iter_)
            x = model.sample(args.sample_size)[0]
        seconds = time.perf_counter() - start
    return seconds * args.generations / generations, np.array(iters)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", type=int, default=2000)
    p.add_argument("--sample-size", type=int, default=1000)
    p.add_argument("--replicates", type=int, default=64)
    p.add_argument("--sklearn-generations", type=int, default=2000,
                   help="fits timed per scikit-learn chain (scaled to --generations if fewer)")
    p.add_argument("--data", choices=gmm.DATASETS, default="blob")
    p.add_argument("--chains", type=int, default=3,
                   help="single chains timed per method (JAX alone, scikit-learn), averaged: chains differ")
    p.add_argument("--lockstep", action="store_true", help="also time the lockstep engine (slow)")
    p.add_argument("--default-threads-generations", type=int, default=200,
                   help="fits timed for scikit-learn with default threads (0: skip; slow on a busy machine)")
    a = p.parse_args()
    g, r = a.generations, a.replicates
    import sklearn

    print(f"jax {jax.__version__} (backend {jax.default_backend()}), scikit-learn {sklearn.__version__}, numpy "
          f"{np.__version__}, python {platform.python_version()}, CPU cores {os.cpu_count()} "
          f"(usable {len(os.sched_getaffinity(0))}), load average {os.getloadavg()[0]:.2f}")
    print(f"work: one chain = {g} generations x N = {a.sample_size} points, K = 2 full covariances, "
          f"tol 1e-5, max_iter 2000, data {a.data}\n")

    rows = []
    first, t1, iters = time_jax(1, a, runs=a.chains)
    rows.append((f"JAX async, 1 chain alone (mean of {a.chains})", t1, iters))
    first_r, tr, iters = time_jax(r, a)
    rows.append((f"JAX async, {r} chains vmapped (per chain)", tr / r, iters))
    if a.lockstep:
        _, tl, iters = time_jax(r, a, engine="lockstep")
        rows.append((f"JAX lockstep, {r} chains vmapped (per chain)", tl / r, iters))
    sk = {}
    for init in ("kmeans", "k-means++"):
        runs = [sklearn_chain(a, init, seed=seed) for seed in range(a.chains)]
        sk[init] = float(np.mean([t for t, _ in runs]))
        rows.append((f"scikit-learn '{init}', 1 thread (mean of {a.chains})", sk[init],
                     np.concatenate([i for _, i in runs])))
    if a.default_threads_generations:
        seconds, iters = sklearn_chain(a, "kmeans", single_thread=False, generations=a.default_threads_generations)
        rows.append((f"scikit-learn 'kmeans', default threads [x{g / a.default_threads_generations:g}]",
                     seconds, iters))
    print(f"first JAX calls (incl. compilation): 1 chain {first:.1f} s, {r} chains {first_r:.1f} s")
    if a.sklearn_generations < g:
        print(f"scikit-learn timed on {a.sklearn_generations} generations, scaled x{g / a.sklearn_generations:g}")
    best_sk = min(sk.values())
    print(f"\n{'method':<46}{'s/chain':>9}{'ms/gen':>8}{'EM it/fit':>10}{'us/EM it':>9}{'sklearn/x':>10}")
    for name, seconds, iters in rows:
        per_iter = seconds / (g * iters.mean()) * 1e6
        print(f"{name:<46}{seconds:>9.2f}{seconds / g * 1e3:>8.2f}{iters.mean():>10.1f}{per_iter:>9.1f}"
              f"{best_sk / seconds:>10.1f}")
    ratio = best_sk / (tr / r)
    sk_iter = min(t / (g * i.mean()) for name, t, i in rows if "1 thread" in name)
    per_iter = sk_iter / (tr / r / (g * rows[1][2].mean()))
    print(f"\ntarget JAX per chain (vmapped) >= 30x the faster scikit-learn loop: {ratio:.1f}x  "
          f"{'PASS' if ratio >= 30 else 'MISS'}  (per EM iteration: {per_iter:.1f}x)")


if __name__ == "__main__":
    main()
