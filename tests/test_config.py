"""Config validation: shipped configs pass; bad ones fail before any job, naming the key."""

import copy
import subprocess
import sys

import pytest
import yaml

from conftest import DELETE, ROOT, set_key
from modelcollapse.config import ConfigError, check_config, load_config

SHIPPED = sorted((ROOT / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    load_config(path)


def _smoke():
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


# (key to change, bad value, the key the message must name, words the message must contain)
BAD = [
    ("seed", -1, "seed", "minimum"),
    ("seed", "zero", "seed", "integer"),
    ("platform", "cuda", "platform", "auto"),
    ("gaussian.sample_sizes", [100, 1], "gaussian.sample_sizes[1]", "minimum"),
    ("gaussian.sample_sizes", [], "gaussian.sample_sizes", "non-empty"),
    ("gaussian.sample_sizes", 100, "gaussian.sample_sizes", "array"),
    ("gaussian.generations", 0, "gaussian.generations", "minimum"),
    ("gaussian.generations", 2.5, "gaussian.generations", "integer"),
    ("gaussian.replicates", 1, "gaussian.replicates", "minimum"),
    ("gaussian.estimators", ["unbiased", "median"], "gaussian.estimators[1]", "mle"),
    ("gaussian.estimators", ["mle", "mle"], "gaussian.estimators", "unique"),
    ("gaussian.table_generations", [5, 500], "gaussian.table_generations", "at most"),
    ("gaussian.replicate", 10, "gaussian", "replicate"),  # a typo of a real key
    ("gaussian.generations", DELETE, "gaussian", "generations"),
    ("paper.build_pdf", "yes", "paper.build_pdf", "boolean"),
    ("extra_block", {}, "<top level>", "extra_block"),
    ("gaussian.regime", "resample", "gaussian.regime", "replace"),
    ("gaussian.regime", {"name": "mix"}, "gaussian.regime", "needs real_fraction"),
    ("gaussian.regime", {"name": "mix", "real_fraction": 1.5}, "gaussian.regime.real_fraction", "maximum"),
    ("gaussian.regime", {"name": "accumulate", "real_fraction": 0.5}, "gaussian.regime", "only to 'mix'"),
    ("gaussian.regimes.compare", ["replace", "replace"], "gaussian.regimes.compare[1]", "twice"),
    ("gaussian.regimes.replicates", 10**7, "gaussian.regimes.compare[2]", "GiB"),
    ("gaussian.schedules.power", 1.0, "gaussian.schedules.power", "must exceed 1"),
    ("gaussian.schedules.kinds", ["cubic"], "gaussian.schedules.kinds[0]", "superlinear"),
    ("gaussian.multivariate.sample_size", 3, "gaussian.multivariate.sample_size", "dim + 1"),
    ("gaussian.multivariate.correlation", -0.6, "gaussian.multivariate.correlation", "positive-definite"),
    ("vae.dataset", "cifar10", "vae.dataset", "mnist"),
    ("vae.latent_samples", 500, "vae.latent_samples", "at most eval_samples"),
    ("vae.regimes", ["replace", "accumulate"], "vae.regimes[1]", "needs synthetic: fixed"),
    ("vae.regimes", [{"name": "mix", "real_fraction": 0.1, "real_source": "fresh"}], "vae.regimes[0]",
     "only 'original'"),
    ("vae.table_generations", [0, 50], "vae.table_generations", "at most"),
    ("vae.channels", [64], "vae.channels", "too short"),
    ("lm.model.context", 16, "lm.model.context", "2 x block - 1"),
    ("lm.model.n_heads", 3, "lm.model.d_model", "multiple of n_heads"),
    ("lm.corpus.name", "ptb", "lm.corpus.name", "wikitext2"),
    ("lm.decoding.mode", "nucleus", "lm.decoding.mode", "beam"),
    ("lm.decoding.top_p", 1.5, "lm.decoding.top_p", "maximum"),
    ("lm.regimes", [{"label": "A", "regime": "replace", "epochs": 1}, {"label": "A", "regime": "replace",
                                                                       "epochs": 2}],
     "lm.regimes[1].label", "used twice"),
    ("lm.regimes", [{"label": "A B", "regime": "replace", "epochs": 1}], "lm.regimes[0].label", "match"),
    ("lm.histogram_generations", [50], "lm.histogram_generations", "at most lm.generations"),
]


@pytest.mark.parametrize("key,value,named,words", BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_config_error_names_key_and_expectation(key, value, named, words):
    config = set_key(_smoke(), key, value)
    with pytest.raises(ConfigError) as err:
        check_config(config)
    message = str(err.value)
    assert f"'{named}'" in message
    assert words in message


def test_load_config_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(set_key(_smoke(), "gaussian.generations", 0)))
    with pytest.raises(ConfigError, match=r"bad\.yaml: config key 'gaussian\.generations'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_cli_check_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(set_key(_smoke(), "platform", "quantum")))
    run = subprocess.run([sys.executable, "-m", "modelcollapse", "check-config", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "config key 'platform'" in run.stderr
    ok = subprocess.run([sys.executable, "-m", "modelcollapse", "check-config", str(ROOT / "config/smoke.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_snakemake_rejects_bad_config_before_any_job(workflow_copy):
    config = set_key(copy.deepcopy(_smoke()), "gaussian.sample_sizes", [20, 1])
    (workflow_copy / "config" / "bad.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "config/bad.yaml", "--cores", "1"],
                         cwd=workflow_copy, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "config key 'gaussian.sample_sizes[1]'" in run.stdout + run.stderr
    assert not (workflow_copy / "results").exists()


def test_a_step_can_be_given_only_its_block():
    config = _smoke()
    lm_only = {k: config[k] for k in ("seed", "platform", "lm")}
    check_config(lm_only, blocks=("lm",))  # what the LM rules pass: other blocks cannot rerun them
    with pytest.raises(ConfigError, match="'lm' is a required property"):
        check_config({k: config[k] for k in ("seed", "platform")}, blocks=("lm",))
    with pytest.raises(ConfigError, match="'(gaussian|discrete|gmm|vae|paper)' is a required property"):
        check_config(lm_only)
    bad = set_key(copy.deepcopy(lm_only), "lm.model.context", 16)
    with pytest.raises(ConfigError, match="lm.model.context"):
        check_config(bad, blocks=("lm",))


# -- reading files strictly (issue 15, finding 8) ---------------------------------------------------------

@pytest.mark.parametrize("text,key,lines", [
    ("seed: 0\nseed: 1\n", "seed", "lines 1 and 2"),
    ("gaussian:\n  generations: 3\n  replicates: 2\n  generations: 4\n", "gaussian.generations", "lines 2 and 4"),
    ("lm:\n  regimes:\n    - {label: A, label: B}\n", "lm.regimes[0].label", "lines 3 and 3"),
])
def test_a_key_given_twice_is_an_error_naming_key_and_lines(tmp_path, text, key, lines):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"'{key}' is given twice ({lines})" in str(err.value) and "dup.yaml" in str(err.value)


def test_a_config_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("seed: 0\nplatform: cpu\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml is not UTF-8 text \(byte 0xe9 on line 3\)"):
        load_config(path)


def test_a_missing_block_says_nothing_is_filled_in(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in _smoke().items() if k != "gmm"}))
    with pytest.raises(ConfigError, match=r"'gmm' is a required property; a config file is complete by itself"):
        load_config(path)


# -- runs (issue 15, finding 7) -----------------------------------------------------------------------------

@pytest.mark.parametrize("run,files,expected", [
    (None, [], "default"),
    (None, ["config/config.yaml"], "default"),
    (None, ["config/smoke.yaml"], "smoke"),
    (None, ["/somewhere/config/paper.yaml"], "paper"),
    (None, ["config/smoke.yaml", "extra/lr-sweep.v2.yaml"], "lr-sweep.v2"),
    ("mine", ["config/smoke.yaml"], "mine"),
])
def test_run_name(run, files, expected):
    from modelcollapse.config import run_name

    assert run_name({"run": run} if run else {}, files) == expected


def test_a_file_name_that_cannot_name_a_run_asks_for_the_run_key():
    from modelcollapse.config import run_name

    with pytest.raises(ConfigError, match=r"config key 'run'.*set run: NAME"):
        run_name({}, ["my config.yaml"])


@pytest.mark.parametrize("bad", ["../up", "a/b", "", ".hidden", "x" * 65])
def test_bad_run_names_are_rejected(bad):
    with pytest.raises(ConfigError, match="'run'"):
        check_config(_smoke() | {"run": bad})


def test_shipped_configs_are_different_runs():
    from modelcollapse.config import run_name

    names = [run_name(load_config(p), [p]) for p in SHIPPED]
    assert sorted(names) == ["brown", "default", "paper", "smoke"]
