"""Replicates over 1 vs 2 devices: the same Gaussian chains with their replicate axis laid over one
device or over two (`runtime.replicate_keys`), side by side in one run.

On a CPU the devices are forced (XLA_FLAGS=--xla_force_host_platform_device_count=N) and share the
machine's cores; the point is that the same code fills a multi-GPU node with identical results.
Measured on the 2-core machine (quiet, defaults below): 2.29 s on one device, 1.38 s on two
(1.66x; 1.85x in a second run): one CPU device runs this chain on about one core, two devices
use both. Each layout runs in its own process (JAX fixes its device count at
start-up); the first call compiles, the best of the timed repeats is reported.

    python benchmarks/devices.py [--replicates 4096] [--generations 1000] [--sample-size 100]
"""

from __future__ import annotations

import argparse
import os

from timing import on_devices  # benchmarks/timing.py (the script's own folder is on sys.path)

CHILD = r"""
import json, sys, time
import jax, numpy as np
from modelcollapse import gaussian
r, g, m, repeats = map(int, sys.argv[1:5])
run = lambda: gaussian.simulate(0, sample_size=m, generations=g, replicates=r)
first = run()
times = []
for _ in range(repeats):
    t = time.perf_counter(); chains = run(); times.append(time.perf_counter() - t)
print(json.dumps({"devices": jax.local_device_count(), "seconds": min(times),
                  "digest": float(np.asarray(chains.std, np.float64).sum())}))
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=4096)
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--sample-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    one, two = (on_devices(n, CHILD, args.replicates, args.generations, args.sample_size, args.repeats)
                for n in (1, 2))
    draws = args.replicates * args.generations * args.sample_size
    print(f"Gaussian chains, R = {args.replicates}, G = {args.generations}, M = {args.sample_size} "
          f"({draws / 1e6:.0f}M draws), {os.cpu_count()} CPU cores")
    print(f"{'devices':>8} {'seconds':>9} {'Mdraws/s':>9}")
    for row in (one, two):
        print(f"{row['devices']:>8} {row['seconds']:>9.3f} {draws / row['seconds'] / 1e6:>9.1f}")
    print(f"2 devices / 1 device: {one['seconds'] / two['seconds']:.2f}x; "
          f"same chains: {one['digest'] == two['digest']}")


if __name__ == "__main__":
    main()
