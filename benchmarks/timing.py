"""Timing helpers shared by the benchmark scripts (run from the repository root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax


def best_of(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls; best-of, since noise (other processes) only adds time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def on_devices(devices: int, child: str, *args) -> dict:
    """Run the Python source `child` with `args` (as strings, in sys.argv[1:]) in a process of its own with
    `devices` forced CPU devices (JAX fixes its device count at start-up), and return the JSON object on
    its last line of output; this folder is on the child's sys.path (for `from timing import best_of`)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)),
                                                         os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", child, *map(str, args)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
