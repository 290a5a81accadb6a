"""Timing helpers shared by the benchmark scripts (run from the repository root)."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
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


# An instruction of XLA's compiled HLO text: `%name = <shape> opcode(...)`, with `calls=%computation`
# when it is a fusion (or another op with a body).
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?\s([\w\-]+)\((.*)$", re.M)
_COMPUTATION = re.compile(r"^(%[\w.\-]+) [^\n]*\{\n(.*?)\n\}", re.M | re.S)
# Ops whose trace event encloses the events of their bodies: counting them would count twice.
_ENCLOSING = {"while", "conditional", "call"}
# Arithmetic in a fusion's body makes it more than a layout copy.
_ARITHMETIC = re.compile(r"\s(add|multiply|subtract|divide|exponential|tanh|reduce)\(")


def op_classes(hlo_text: str) -> dict[str, str]:
    """{instruction name: 'matmul' | 'layout copy' | 'other'} for the compiled HLO `hlo_text`: 'matmul'
    a dot or a fusion whose computation holds one (XLA's CPU backend fuses dots with elementwise work
    into YNNPACK or oneDNN calls); 'layout copy' a copy or transpose; enclosing ops are left out."""
    bodies = dict(_COMPUTATION.findall(hlo_text))
    classes = {}
    for name, opcode, rest in _INSTRUCTION.findall(hlo_text):
        if opcode in _ENCLOSING:
            continue
        called = re.search(r"calls=(%[\w.\-]+)", rest)
        body = bodies.get(called.group(1), "") if called else ""
        if opcode == "dot" or re.search(r"\sdot\(", body):
            classes[name] = "matmul"
        elif opcode in ("copy", "transpose") or (re.search(r"\s(copy|transpose)\(", body)
                                                  and not _ARITHMETIC.search(body)):
            classes[name] = "layout copy"
        else:
            classes[name] = "other"
    return classes


def op_times(call, hlo_text: str, calls: int) -> dict[str, float]:
    """Seconds per call of `call` (a compiled JAX program, run `calls` times under jax.profiler) spent
    in each class of `op_classes(hlo_text)`, from XLA's own trace. An op's event lies on the thread that
    launched it, even when the op runs on every core, so on a CPU the classes add up to about the
    wall time of the call."""
    classes = op_classes(hlo_text)
    totals = dict.fromkeys(("matmul", "layout copy", "other"), 0.0)
    with tempfile.TemporaryDirectory() as folder:
        jax.block_until_ready(call())  # outside the trace: no first-call work in it
        jax.profiler.start_trace(folder)
        try:
            for _ in range(calls):
                jax.block_until_ready(call())
        finally:
            jax.profiler.stop_trace()
        (trace,) = glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)
        profile = jax.profiler.ProfileData.from_file(trace)
    for plane in profile.planes:
        for line in plane.lines:
            for event in line.events:
                kind = classes.get(event.name)
                if kind is not None:
                    totals[kind] += event.duration_ns * 1e-9 / calls
    return totals
