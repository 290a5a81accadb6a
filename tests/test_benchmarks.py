"""`make benchmark`'s scripts run to the end on tiny sizes and print their comparison lines.

The benchmarks are reports, not tests (no timing is asserted here), but a script that stops with a
traceback takes `make benchmark` down with it: benchmarks/gmm.py did, unnoticed, once the GMM config
began to ask for at least 2 replicates and its single-chain row still asked for 1. PyTorch is
skipped (--no-torch) where the script has the flag: it is not a dependency.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# run: (script, tiny arguments, lines its report must print: the rows issue 17's table reads).
# gaussian: its d = 10 chains need M > 10.
RUNS = {
    "gaussian": ("gaussian", ["--replicates", "8", "--generations", "6", "--sample-size", "20", "--repeats", "1",
                              "--loop-replicates", "2", "--no-variants"],
                 ["target JAX >= 1.80x faster than NumPy", "NumPy/JAX"]),
    "discrete": ("discrete", ["--replicates", "4", "--generations", "5", "--num-symbols", "20",
                              "--sample-sizes", "10", "50", "--repeats", "1"],
                 ["NumPy / JAX", "same chains: True", "discrete_summarize's exact theory"]),
    "gmm": ("gmm", ["--generations", "4", "--sample-size", "50", "--replicates", "4", "--sklearn-generations", "4",
                    "--default-threads-generations", "0", "--chains", "1"],
            ["JAX async, 1 chain alone", "JAX async, 4 chains vmapped", "target JAX per chain (vmapped) >= 30x"]),
    "vae": ("vae", ["--batch", "8", "--steps", "2", "--mlp-steps", "2", "--repeats", "1", "--no-torch"],
            ["examples/s"]),
    "lm": ("lm", ["--batch-size", "2", "--steps-per-call", "2", "--vocab", "50", "--context", "16", "--layers", "1",
                  "--d-model", "16", "--heads", "2", "--repeats", "1", "--no-torch"], ["tokens/s", "MFU"]),
    "lm-profile": ("lm", ["--batch-size", "2", "--steps-per-call", "2", "--vocab", "50", "--context", "16",
                          "--layers", "1", "--d-model", "16", "--heads", "2", "--repeats", "1", "--no-torch",
                          "--profile"], ["XLA trace of the training step", "matmuls (dots", "fp32 peak take"]),
    "lm-generate": ("lm", ["--generate", "--gen-prompts", "10", "--gen-batch", "5", "--repeats", "1"], ["tokens/s"]),
    "devices": ("devices", ["--replicates", "8", "--generations", "5", "--sample-size", "10", "--repeats", "1"],
                ["Gaussian chains"]),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_script_runs(name):
    stem, args, expected = RUNS[name]
    script = ROOT / "benchmarks" / f"{stem}.py"
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600)
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"{script.name} {' '.join(args)} failed:\n{report[-3000:]}"
    for line in expected:
        assert line in report, f"{script.name} printed no {line!r}:\n{report[-3000:]}"


def test_op_times_classes_a_programs_ops_and_adds_up_to_its_time():
    """benchmarks/timing.op_times on a program of one large matmul, a transpose and an exp: the matmul
    class holds the dot, which takes most of the time, and the classes add up to about the wall time."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import jax
        import jax.numpy as jnp
        from timing import best_of, op_classes, op_times
    finally:
        sys.path.pop(0)
    a = jax.random.normal(jax.random.key(0), (1024, 1024))
    program = jax.jit(lambda a: (jnp.exp(a @ a), a.T))
    call = lambda: program(a)
    text = program.lower(a).compile().as_text()
    classes = op_classes(text)
    assert {"matmul", "layout copy", "other"} <= set(classes.values()), classes
    times = op_times(call, text, calls=3)
    wall = best_of(call, 3)
    assert times["matmul"] > times["other"], times
    assert 0.5 * wall < sum(times.values()) < 2 * wall, (times, wall)
