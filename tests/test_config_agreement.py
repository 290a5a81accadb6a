"""`check-config` and the jobs refuse the same configs (issue 19: checks stated twice had drifted).

Each fact is checked once, in the family's library; config.check_config calls that check and names
the config key, the job's command calls it through the family's config class (built from the
block by the family's config_from_block, or from the flags). So for every case below the job, given
the arguments its rule passes (the block whole) or the flags of a run by hand, fails with the very
sentence check-config printed after the key.
"""

import json

import pytest
import yaml

from conftest import ROOT, set_key
from modelcollapse import cli
from modelcollapse.config import ConfigError, check_config


def _smoke():
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def _discrete_job(config, out):
    d = config["discrete"]
    regime = d["regime"] if isinstance(d["regime"], str) else d["regime"]["name"]
    return ["discrete", "simulate", "--seed", "0", "--sample-size", str(max(d["sample_sizes"])),
            "--generations", str(d["generations"]), "--replicates", str(d["replicates"]),
            "--num-symbols", str(d["num_symbols"]), "--exponent", str(d["exponent"]), "--regime", regime,
            "--platform", "cpu", "--out", str(out)]


def _gaussian_mv_job(config, out):
    mv = config["gaussian"]["multivariate"]
    return ["gaussian", "simulate", "--seed", "0", "--dim", str(max(mv["dims"])),
            "--sample-size", str(mv["sample_size"]), "--correlation", str(mv["correlation"]),
            "--generations", str(mv["generations"]), "--replicates", str(mv["replicates"]),
            "--platform", "cpu", "--out", str(out)]


def _gmm_job(config, out):
    g = config["gmm"]
    return ["gmm", "simulate", "--seed", "0", "--data", "blob", "--sample-size", str(g["sample_size"]),
            "--generations", str(g["generations"]), "--replicates", str(g["replicates"]),
            "--n-components", str(g["n_components"]), "--regime", g["regime"], "--tol", str(g["tol"]),
            "--max-iter", str(g["max_iter"]), "--reg-covar", str(g["reg_covar"]), "--init", g["init"],
            "--snapshots", *map(str, g["snapshots"]), "--platform", "cpu", "--out", str(out)]


def _lm_corpus_job(config, out):
    block = {k: config[k] for k in ("seed", "platform", "lm")}
    return ["lm", "corpus", "--config-json", json.dumps(block), "--out", str(out)]


def _vae_job(config, out):
    v = config["vae"]
    regime = v["regimes"][-1]
    regime = {"name": regime} if isinstance(regime, str) else regime
    flags = ["--regime", regime["name"]] + (["--real-fraction", str(regime["real_fraction"])]
                                            if regime["name"] == "mix" else [])
    return ["vae", "chain", "--dataset", v["dataset"], "--seed", "0", "--chain", "0", *flags,
            "--architecture", v["architecture"], "--latent", str(v["latent"]), "--hidden", *map(str, v["hidden"]),
            "--channels", *map(str, v["channels"]), "--generations", str(v["generations"]),
            "--epochs", str(v["epochs"]), "--batch-size", str(v["batch_size"]), "--synthetic", v["synthetic"],
            "--eval-samples", str(v["eval_samples"]), "--latent-samples", str(v["latent_samples"]),
            "--classifier", str(out.with_name("classifier.npz")), "--platform", "cpu", "--out", str(out)]


def _block(config, family):
    """The family's block and the shared keys, as the rules pass them (config_json in common.smk)."""
    return json.dumps({k: v for k, v in config.items() if k == family or not isinstance(v, dict)}, sort_keys=True)


def _rule_job(config, out, family):
    """The job as its rule runs it since issue 19: the block whole and the wildcards."""
    from modelcollapse.regimes import Regime

    selectors = {"discrete": ["simulate", "--sample-size", str(max(config["discrete"]["sample_sizes"]))],
                 "gaussian": ["simulate", "--part", "multivariate", "--dim",
                              str(max(config["gaussian"]["multivariate"]["dims"]))],
                 "gmm": ["simulate", "--data", "blob"],
                 "vae": ["chain", "--label", Regime.from_config(config["vae"]["regimes"][-1]).label, "--chain", "0",
                         "--classifier", str(out.with_name("classifier.npz"))]}
    step, *picked = selectors[family]
    return [family, step, "--config-json", _block(config, family), *picked, "--out", str(out)]


# (edits to the smoke config, the key check-config must name, the job as it runs by hand with flags)
REFUSED = {
    # M (G + 1) = 2^16 (2^15 + 1) >= 2^31: past the int32 positions of the pool (was 2^24 in the job only)
    "discrete pool past int32": ([("discrete.regime", "accumulate_subsample"), ("discrete.sample_sizes", [2**16]),
                                  ("discrete.generations", 2**15)], "discrete.regime", _discrete_job),
    "discrete rarest symbol below 2^-30": ([("discrete.num_symbols", 10**6), ("discrete.exponent", 10.0)],
                                           "discrete.num_symbols", _discrete_job),
    "gaussian covariance needs dim + 1 points": ([("gaussian.multivariate.dims", [2, 4]),
                                                  ("gaussian.multivariate.sample_size", 4)],
                                                 "gaussian.multivariate.sample_size", _gaussian_mv_job),
    "gaussian Sigma_0 not positive definite": ([("gaussian.multivariate.dims", [2, 5]),
                                                ("gaussian.multivariate.correlation", -0.3)],
                                               "gaussian.multivariate.correlation", _gaussian_mv_job),
    "gmm fewer points than components": ([("gmm.sample_size", 4), ("gmm.n_components", 5)], "gmm.sample_size",
                                         _gmm_job),
    # each share is in (0, 1), as the schema says, but together they leave no training documents
    "lm corpus shares sum past 1": ([("lm.corpus.validation_fraction", 0.4), ("lm.corpus.test_fraction", 0.4),
                                     ("lm.corpus.pretrain_fraction", 0.4)], "lm.corpus", _lm_corpus_job),
    "vae latent_samples above eval_samples": ([("vae.latent_samples", 500)], "vae.latent_samples", _vae_job),
    "vae accumulate needs fixed synthetic sets": ([("vae.regimes", ["replace", "accumulate"])], "vae.regimes[1]",
                                                  _vae_job),
    "lm n_successors above vocab_size": ([("lm.corpus.n_successors", 61)], "lm.corpus.n_successors",
                                         _lm_corpus_job),
}


@pytest.mark.parametrize("path", ["flags", "rule"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_config_and_the_job_refuse_alike(case, path, tmp_path, capsys):
    edits, key, job = REFUSED[case]
    family = edits[0][0].split(".")[0]
    if path == "rule" and family != "lm":  # an lm job's only arguments are the block already
        job = lambda config, out: _rule_job(config, out, family)  # noqa: E731
    config = _smoke()
    for name, value in edits:
        config = set_key(config, name, value)
    with pytest.raises(ConfigError) as err:
        check_config(config)
    message = str(err.value)
    prefix = f"config key '{key}': "
    assert message.startswith(prefix), message
    out = tmp_path / "job.npz"
    assert cli.main(job(config, out)) == 2
    stderr = capsys.readouterr().err
    assert message[len(prefix):] in stderr, stderr
    assert not out.exists()


def test_discrete_pools_past_2_24_points_are_accepted_by_both():
    """The old 2^24 limit (float32 positions) is gone: positions are int32 integer draws."""
    from modelcollapse import discrete
    from modelcollapse.regimes import Regime

    config = _smoke()
    for name, value in [("discrete.regime", "accumulate_subsample"), ("discrete.sample_sizes", [2**12]),
                        ("discrete.generations", 2**13)]:
        config = set_key(config, name, value)
    check_config(config)  # 2^12 (2^13 + 1) > 2^24
    discrete.DiscreteConfig(sample_size=2**12, generations=2**13, replicates=2, num_symbols=50,
                            regime=Regime(name="accumulate_subsample"))
    # the largest pool allowed, M (G + 1) = 2^31 - 1, and one point more
    discrete.check_pool(Regime(name="accumulate"), sample_size=2**31 - 1, generations=0)
    with pytest.raises(ValueError, match="2\\^31 - 1"):
        discrete.check_pool(Regime(name="accumulate"), sample_size=2**30, generations=1)


def test_subsets_of_pools_near_2_31_points_are_exact():
    """What the limit rests on: uniform_subset and subsample_counts address a pool of 2^31 - 1 points."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from modelcollapse import regimes

    n = 2**31 - 1
    idx = np.asarray(regimes.uniform_subset(jax.random.key(0), n, 2000))
    assert idx.min() >= 0 and idx.max() < n and len(set(idx.tolist())) == 2000
    assert np.mean(idx > 2**30) == pytest.approx(0.5, abs=0.05)  # positions past 2^24 reached evenly
    counts = jnp.array([2**30, 2**30 - 1, 0], jnp.int32)
    sub = np.asarray(regimes.subsample_counts(jax.random.key(1), counts, 2000))
    assert sub.sum() == 2000 and sub[2] == 0 and abs(int(sub[0]) - 1000) < 5 * np.sqrt(500)


def test_shipped_configs_build_every_job():
    """The check runs the library's own config classes for every job the rules start."""
    for path in sorted((ROOT / "config").glob("*.yaml")):
        check_config(yaml.safe_load(path.read_text()))
