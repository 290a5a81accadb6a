"""Replicates spread over several devices give the same chains as one device.

JAX fixes its device count when it starts, so each layout runs in its own process, with
XLA_FLAGS=--xla_force_host_platform_device_count=N making N CPU devices of this machine: the same
code path a multi-GPU node takes.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from modelcollapse import runtime

# Runs every vmapped chain family on small sizes and saves what it returns, plus the layout of the
# replicate keys it was given.
SCRIPT = r"""
import json, sys
import numpy as np
import jax
from modelcollapse import discrete, gaussian, gmm, regression, runtime
from modelcollapse.regimes import Regime

out = {}
def put(name, value):
    for i, v in enumerate(value if isinstance(value, tuple) else (value,)):
        out[f"{name}.{i}"] = np.asarray(v)

g = gaussian.simulate(3, sample_size=20, generations=30, replicates=8)
put("gaussian_points", (g.mean, g.std))
g = gaussian.simulate(3, sample_size=[20] * 30, generations=30, replicates=8, sampler="stats",
                      regime=Regime(name="accumulate"))
put("gaussian_stats_accumulate", (g.mean, g.std))
g = gaussian.simulate_multivariate(3, sample_size=12, generations=10, replicates=4, dim=2)
put("gaussian_multivariate", (g.mean, g.cov, g.log_det))
put("discrete", discrete.simulate(3, probs=np.full(10, 0.1), sample_size=30, generations=20, replicates=8))
put("discrete_metrics", discrete.simulate_metrics(3, probs=np.full(10, 0.1), sample_size=30, generations=20,
                                                  replicates=8))
put("discrete_accumulate", discrete.simulate(3, probs=np.full(10, 0.1), sample_size=30, generations=20,
                                             replicates=8, regime=Regime(name="accumulate")))
put("family_regression", regression.simulate(regression.RegressionConfig(dim=2, sample_size=10, generations=10,
                                                                         replicates=8), 3))
c = gmm.simulate(3, sample_size=100, generations=4, replicates=4, snapshots=(0, 4), max_iter=50)
put("gmm_async", (c.weights, c.means, c.covs, c.log_likelihood))
np.savez(sys.argv[1], **out)
keys = runtime.replicate_keys(0, 8)
print(json.dumps({"devices": jax.local_device_count(),
                  "key_devices": len(keys.sharding.device_set),
                  "odd_key_devices": len(runtime.replicate_keys(0, 7).sharding.device_set)}))
"""


def _run(devices: int, out):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), dict(np.load(out))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("devices")
    return {n: _run(n, folder / f"{n}.npz") for n in (1, 2)}


def test_keys_are_laid_over_every_device_that_divides_the_replicates(layouts):
    assert layouts[1][0] == {"devices": 1, "key_devices": 1, "odd_key_devices": 1}
    # 8 chains over 2 devices; 7 chains do not split evenly, so they stay on one device
    assert layouts[2][0] == {"devices": 2, "key_devices": 2, "odd_key_devices": 1}


def test_two_devices_give_bit_identical_chains(layouts):
    one, two = layouts[1][1], layouts[2][1]
    assert one.keys() == two.keys()
    differ = [name for name in one if not np.array_equal(one[name], two[name])]
    assert differ == []


def test_replicate_devices_is_the_largest_even_split(monkeypatch):
    import jax

    monkeypatch.setattr(jax, "local_device_count", lambda: 8)
    assert [runtime.replicate_devices(r) for r in (1, 2, 6, 8, 12, 64, 100)] == [1, 2, 2, 8, 4, 8, 4]
