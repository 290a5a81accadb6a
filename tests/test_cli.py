"""The CLI: same arguments give byte-identical files; bad arguments fail first and write nothing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from modelcollapse import io


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelcollapse", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


SIM = ["gaussian", "simulate", "--seed", 3, "--sample-size", 10, "--generations", 12, "--replicates", 5,
       "--estimator", "mle", "--platform", "cpu"]


def test_simulate_twice_gives_identical_bytes_and_matches_library(tmp_path):
    for name in ("a.npz", "b.npz"):
        result = run_cli(*SIM, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    from modelcollapse import gaussian

    lib = gaussian.simulate(3, sample_size=10, generations=12, replicates=5, estimator="mle")
    data = io.load_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(data["mean"], lib.mean)
    np.testing.assert_array_equal(data["std"], lib.std)
    record = json.loads((tmp_path / "a.npz.provenance.json").read_text())
    assert record["seed"] == 3 and record["config"]["estimator"] == "mle"
    assert record["jax"]["backend"] == "cpu"


def test_summarize_figure_table_chain(tmp_path):
    for est in ("unbiased", "mle"):
        args = [a if a != "mle" else est for a in SIM]
        assert run_cli(*args, "--out", tmp_path / f"{est}.npz").returncode == 0
    assert run_cli("gaussian", "summarize", "--out", tmp_path / "s.csv", tmp_path / "unbiased.npz",
                   tmp_path / "mle.npz").returncode == 0
    rows = io.read_csv(tmp_path / "s.csv")
    assert len(rows) == 2 * 13
    fig = run_cli("gaussian", "figure", "--summary", tmp_path / "s.csv", "--out", tmp_path / "f.pdf")
    assert fig.returncode == 0, fig.stderr
    assert (tmp_path / "f.png").stat().st_size > 10_000
    table = run_cli("gaussian", "table", "--summary", tmp_path / "s.csv", "--generations", 1, 12,
                    "--replicates", 5, "--table", tmp_path / "t.tex", "--numbers", tmp_path / "n.tex")
    assert table.returncode == 0, table.stderr
    assert r"\mcdef{gaussian.Gmax}{12}" in (tmp_path / "n.tex").read_text()
    late = run_cli("gaussian", "table", "--summary", tmp_path / "s.csv", "--generations", 99,
                   "--replicates", 5, "--table", tmp_path / "t2.tex", "--numbers", tmp_path / "n2.tex")
    assert late.returncode == 2 and "99" in late.stderr
    assert not (tmp_path / "t2.tex").exists()


@pytest.mark.parametrize("change,message", [
    (("--sample-size", 1), "argument --sample-size: sample_size must be an integer or a list >= 2, got '1'"),
    (("--generations", 0), "argument --generations: generations must be an integer >= 1"),
    (("--replicates", 0), "argument --replicates: replicates must be an integer >= 2"),
    (("--out", "x.csv"), "must end in .npz"),
])
def test_bad_simulate_arguments_fail_before_work(tmp_path, change, message):
    args = [str(a) for a in SIM] + ["--out", str(tmp_path / "r.npz")]
    flag, value = change
    if flag == "--out":
        args[-1] = str(tmp_path / value)
    else:
        args[args.index(flag) + 1] = str(value)
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_input_is_named(tmp_path):
    result = run_cli("gaussian", "summarize", "--out", tmp_path / "s.csv", tmp_path / "nope.npz")
    assert result.returncode == 2 and "nope.npz" in result.stderr


# -- failures: one line, no traceback, nothing left behind (issue 15, finding 4) ----------------------------

def test_a_failure_is_one_line_without_traceback_unless_debug(tmp_path):
    (tmp_path / "folder.npz").mkdir()
    result = run_cli(*SIM, "--out", tmp_path / "folder.npz")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"modelcollapse gaussian simulate: error: output {tmp_path / 'folder.npz'} is a folder; expected a file path "
        f"ending in .npz"]
    debug = run_cli("--debug", *SIM, "--out", tmp_path / "folder.npz")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_disk_full_while_writing_removes_what_was_written(tmp_path, monkeypatch, capsys):
    """The .npz is written, then the provenance record hits ENOSPC: the one-line error names the
    output, and the .npz (which would look finished) is removed with any temporary file."""
    import errno

    from modelcollapse import cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io, "write_provenance", full)
    out = tmp_path / "r.npz"
    code = cli.main([str(a) for a in SIM] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == f"modelcollapse gaussian simulate: error: no space left on the device while writing {out}; " \
                          f"free some space or write elsewhere"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_command_keeps_an_older_output_it_did_not_replace(tmp_path, capsys):
    from modelcollapse import cli

    out = tmp_path / "s.csv"
    out.write_text("older\n")
    code = cli.main(["gaussian", "summarize", "--out", str(out), str(tmp_path / "missing.npz")])
    assert code == 2 and "missing.npz" in capsys.readouterr().err
    assert out.read_text() == "older\n"


def test_memory_estimate_refuses_before_work(tmp_path, monkeypatch, capsys):
    """Issue 15, finding 5: sizes the schema allows used to die in XLA (SIGABRT, no message)."""
    from modelcollapse import cli

    monkeypatch.setenv("MODELCOLLAPSE_MEMORY_LIMIT", "1M")
    code = cli.main(["gaussian", "simulate", "--seed", "0", "--sample-size", "100", "--generations", "1000",
                     "--replicates", "1000", "--platform", "cpu", "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--replicates 1000, --generations 1000, --sample-size 100 needs about 3" in err
    assert "MiB of memory, more than the 1.0 MiB allowed here (MODELCOLLAPSE_MEMORY_LIMIT)" in err
    assert list(tmp_path.iterdir()) == []
    from modelcollapse.commands import memory_limit, parse_bytes

    assert parse_bytes("64G") == 64 * 2**30 and parse_bytes("512m") == 512 * 2**20 and parse_bytes("1000") == 1000
    monkeypatch.delenv("MODELCOLLAPSE_MEMORY_LIMIT")
    limit, source = memory_limit()
    assert limit > 2**20 and source


def test_paper_build_uses_the_runs_generated_files_and_figures(tmp_path, monkeypatch):
    """latexmk runs in paper/<run>/build/, where generated/ and figures/ are the run's own (a stand-in
    latexmk checks what LaTeX would open)."""
    from modelcollapse import paper

    src = tmp_path / "paper"
    (src / "sections").mkdir(parents=True)
    (src / "main.tex").write_text("\\input{sections/a}\\input{generated/n}\\includegraphics{fig}")
    (src / "sections" / "a.tex").write_text("a")
    (src / "refs.bib").write_text("")
    gen, fig = tmp_path / "paper" / "smoke" / "generated", tmp_path / "figures" / "smoke"
    gen.mkdir(parents=True)
    fig.mkdir(parents=True)
    (gen / "n.tex").write_text("n")
    (fig / "fig.pdf").write_text("%PDF-")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "latexmk"
    fake.write_text("#!/bin/sh\nfor f in main.tex sections/a.tex generated/n.tex figures/fig.pdf refs.bib; do\n"
                    "  test -f \"$f\" || { echo \"missing $f\" >&2; exit 1; }\ndone\n"
                    "echo '%PDF-1.5 built' > main.pdf\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    out = tmp_path / "paper" / "smoke" / "main.pdf"
    paper.build_pdf(src / "main.tex", out, generated=gen, figures=fig)
    assert out.read_text() == "%PDF-1.5 built\n"
    assert (tmp_path / "paper" / "smoke" / "build" / "generated").resolve() == gen.resolve()
    assert not (tmp_path / "paper" / "smoke" / "build" / "smoke").exists()  # a run's folder is not a source


def test_readme_says_how_to_unlock_and_switch_runs():
    """Issue 15: after `kill -9` of Snakemake the README says how to --unlock; it says how to switch runs."""
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "snakemake --configfile config/smoke.yaml --unlock" in readme and "Directory cannot\nbe locked" in readme
    assert "### Runs: configs side by side" in readme and "--config run=" in readme


# -- the rules' path: each family's config block whole (--config-json), the wildcards as selectors (issue 19) --

def _smoke_config():
    import yaml

    from conftest import ROOT

    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def _block_json(config, family):
    """What workflow/rules/common.smk's config_json(family) emits: the family's block and the shared
    top-level keys (tests/test_workflow.py checks a dry run's commands carry exactly this)."""
    return json.dumps({k: v for k, v in config.items() if k == family or not isinstance(v, dict)}, sort_keys=True)


# The smoke config with every knob of the four families away from the CLI's defaults, so that a key
# the block's parsing dropped (the job falling back to a default) shows.
VARIED = {"gaussian": {"generations": 40, "replicates": 32, "regime": {"name": "mix", "real_fraction": 0.25},
                       "table_generations": [5, 40],
                       "regimes": {"sample_size": 25, "generations": 30, "replicates": 16, "estimator": "mle",
                                   "compare": ["replace", {"name": "mix", "real_fraction": 0.5}]},
                       "schedules": {"base_sample_size": 30, "power": 1.5, "kinds": ["constant", "superlinear"],
                                     "generations": 20, "replicates": 8},
                       "multivariate": {"dims": [2, 3], "sample_size": 25, "correlation": 0.25, "generations": 10,
                                        "replicates": 4}},
          "discrete": {"num_symbols": 60, "exponent": 0.9, "generations": 20, "replicates": 16,
                       "regime": "accumulate", "absorption": {"num_symbols": 4, "sample_size": 6, "generations": 90,
                                                              "replicates": 300}},
          "gmm": {"sample_size": 150, "generations": 30, "replicates": 4, "n_components": 3, "regime": "accumulate",
                  "tol": 1.0e-4, "max_iter": 500, "reg_covar": 1.0e-5, "init": "random", "snapshots": [0, 5, 30]},
          "vae": {"architecture": "conv", "latent": 5, "hidden": [32], "channels": [8, 16], "generations": 2,
                  "epochs": 3, "batch_size": 32, "learning_rate": 2.0e-3, "weight_decay": 0.0, "synthetic": "fixed",
                  "synthetic_size": 100, "validation_fraction": 0.2, "eval_samples": 150, "latent_samples": 40,
                  "regimes": ["replace", "accumulate"]}}


def _varied_config():
    config = _smoke_config()
    for family, values in VARIED.items():
        config[family] |= values
    config["seed"] = 7
    return config


# (family, the rule's selectors, the flags the rule spelled out before issue 19 for the VARIED config)
RULE_JOBS = {
    "gaussian main": ("gaussian", ["--sample-size", "20", "--estimator", "mle"],
                      "--seed 7 --sample-size 20 --generations 40 --replicates 32 --regime mix --real-fraction 0.25 "
                      "--real-source original --estimator mle --platform cpu"),
    "gaussian regimes": ("gaussian", ["--part", "regimes", "--label", "mix0.5"],
                         "--seed 7 --sample-size 25 --generations 30 --replicates 16 --estimator mle "
                         "--regime mix --real-fraction 0.5 --real-source original --platform cpu"),
    "gaussian schedules": ("gaussian", ["--part", "schedules", "--schedule", "superlinear"],
                           "--seed 7 --sample-size 30 --schedule superlinear --power 1.5 --sampler stats "
                           "--generations 20 --replicates 8 --platform cpu"),
    "gaussian constant schedule": ("gaussian", ["--part", "schedules", "--schedule", "constant"],
                                   "--seed 7 --sample-size 30 --schedule constant --power 1.5 --sampler stats "
                                   "--generations 20 --replicates 8 --platform cpu"),
    "gaussian multivariate": ("gaussian", ["--part", "multivariate", "--dim", "3"],
                              "--seed 7 --dim 3 --sample-size 25 --correlation 0.25 --generations 10 --replicates 4 "
                              "--platform cpu"),
    "discrete main": ("discrete", ["--sample-size", "40"],
                      "--seed 7 --sample-size 40 --generations 20 --replicates 16 --num-symbols 60 --exponent 0.9 "
                      "--regime accumulate --platform cpu"),
    "discrete absorption": ("discrete", ["--part", "absorption", "--keep", "final"],
                            "--seed 7 --sample-size 6 --generations 90 --replicates 300 --num-symbols 4 "
                            "--exponent 0.9 --keep final --platform cpu"),
    "gmm": ("gmm", ["--data", "two_blobs"],
            "--seed 7 --data two_blobs --sample-size 150 --generations 30 --replicates 4 --n-components 3 "
            "--regime accumulate --tol 0.0001 --max-iter 500 --reg-covar 1e-05 --init random --snapshots 0 5 30 "
            "--platform cpu"),
    "vae": ("vae", ["--label", "accumulate", "--chain", "1"],
            "--dataset digits --seed 7 --validation-fraction 0.2 --chain 1 --regime accumulate "
            "--architecture conv --latent 5 --hidden 32 --channels 8 16 --generations 2 "
            "--epochs 3 --batch-size 32 --learning-rate 0.002 --weight-decay 0.0 --synthetic fixed "
            "--synthetic-size 100 --eval-samples 150 --latent-samples 40 --platform cpu"),
}


def _parsed_job(family, args):
    """The job a command line builds: (typed config, seed, platform, the data settings of a VAE chain)."""
    import importlib

    from modelcollapse import cli

    step = "chain" if family == "vae" else "simulate"
    parsed = cli.build_parser().parse_args([family, step, *args, "--out", "unused.npz"]
                                           + (["--classifier", "c.npz"] if family == "vae" else []))
    job = importlib.import_module(f"modelcollapse.commands.{family}")._job(parsed)
    if family == "vae":
        done, cfg, regime = job
        return (cfg, regime), done.seed, done.platform, (done.dataset, done.data_dir, done.validation_fraction,
                                                         done.chain)
    return job + (None,)


def _library_job(case, config):
    """The same job built by the library's config_from_block, from the block alone."""
    from modelcollapse import discrete, gaussian, gmm
    from modelcollapse.regimes import Regime
    from modelcollapse.vae import experiment

    family, selectors, _ = RULE_JOBS[case]
    block = config[family]
    if family == "gaussian":
        picked = dict(zip(selectors[::2], selectors[1::2]))
        return gaussian.config_from_block(
            block, part=picked.get("--part", "main"), label=picked.get("--label"), schedule=picked.get("--schedule"),
            estimator=picked.get("--estimator"), sample_size=int(picked.get("--sample-size", 0)) or None,
            dim=int(picked.get("--dim", 0)) or None)
    if family == "discrete":
        return (discrete.config_from_block(block, part="absorption") if "absorption" in selectors
                else discrete.config_from_block(block, sample_size=40))
    if family == "gmm":
        return gmm.config_from_block(block, data="two_blobs")
    return experiment.config_from_block(block), Regime.from_config(block["regimes"][1])  # the --label's regime


@pytest.mark.parametrize("case", sorted(RULE_JOBS))
def test_config_json_builds_the_job_the_flags_and_the_library_build(case):
    """A rule's command (the family block whole, the wildcards as selectors) builds the same typed config,
    seed and platform as the flags the rule used to spell out, and the same config as the library's
    config_from_block: one function turns the block into the job."""
    family, selectors, flags = RULE_JOBS[case]
    config = _varied_config()
    from_block = _parsed_job(family, ["--config-json", _block_json(config, family), *selectors])
    from_flags = _parsed_job(family, flags.split())
    assert from_block == from_flags
    assert from_block[0] == _library_job(case, config)
    assert from_block[1:3] == (7, "cpu")


def _small_block(family):
    """The smoke config with its family block cut down to a seconds-scale job."""
    config = _smoke_config()
    cuts = {"gaussian": {"generations": 6, "replicates": 3, "table_generations": [1, 6],
                         "regimes": config["gaussian"]["regimes"] | {"generations": 6, "replicates": 3}},
            "discrete": {"generations": 4, "replicates": 3, "table_generations": [1, 4],
                         "absorption": {"num_symbols": 3, "sample_size": 5, "generations": 8, "replicates": 5}},
            "gmm": {"generations": 3, "replicates": 2, "sample_size": 40, "snapshots": [0, 3]}}
    config[family] |= cuts[family]
    return config


@pytest.mark.parametrize("family,selectors,flags", [
    ("gaussian", ["--sample-size", "20", "--estimator", "mle"],
     "--seed 0 --sample-size 20 --generations 6 --replicates 3 --regime replace --estimator mle"),
    ("gaussian", ["--part", "regimes", "--label", "mix0.5"],
     "--seed 0 --sample-size 20 --generations 6 --replicates 3 --estimator unbiased --regime mix --real-fraction 0.5"),
    ("discrete", ["--part", "absorption", "--keep", "final"],
     "--seed 0 --sample-size 5 --generations 8 --replicates 5 --num-symbols 3 --exponent 1.1 --keep final"),
    ("gmm", ["--data", "blob"],
     "--seed 0 --data blob --sample-size 40 --generations 3 --replicates 2 --snapshots 0 3"),
])
def test_config_json_and_flags_write_identical_results(tmp_path, family, selectors, flags):
    from modelcollapse import cli

    block = _block_json(_small_block(family), family)
    assert cli.main([family, "simulate", "--config-json", block, *selectors, "--out", str(tmp_path / "a.npz")]) == 0
    assert cli.main([family, "simulate", *flags.split(), "--platform", "cpu", "--out", str(tmp_path / "b.npz")]) == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    record = json.loads((tmp_path / "a.npz.provenance.json").read_text())
    assert record["seed"] == 0 and record["config"]["platform"] == "cpu"


@pytest.mark.parametrize("family,args,message", [
    ("gaussian", ["--sample-size", "20", "--estimator", "mle", "--generations", "5"],
     "--generations: the config's gaussian block (and its seed, platform) sets this"),
    ("gaussian", ["--sample-size", "20", "--estimator", "mle", "--seed", "1"], "--seed: the config's gaussian block"),
    ("gaussian", ["--sample-size", "20"], "give --sample-size, --estimator"),
    ("gaussian", ["--part", "regimes", "--label", "nope"], "label 'nope' is not a regime of gaussian.regimes.compare"),
    ("gaussian", ["--part", "schedules", "--schedule", "linear", "--dim", "2"], "--dim: the config's gaussian block"),
    ("discrete", ["--sample-size", "10", "--regime", "accumulate"], "--regime: the config's discrete block"),
    ("discrete", ["--part", "absorption", "--sample-size", "10"], "--sample-size: the config's discrete block"),
    ("gmm", ["--data", "blob", "--tol", "0.1"], "--tol: the config's gmm block"),
    ("gmm", [], "give --data (which job of the gmm block)"),
    ("vae", ["--label", "replace", "--chain", "0", "--latent", "3"], "--latent: the config's vae block"),
    ("vae", ["--label", "accumulate", "--chain", "0"], "--label 'accumulate' is not a regime of config vae.regimes"),
])
def test_a_flag_beside_the_block_is_refused_not_ignored(tmp_path, capsys, family, args, message):
    from modelcollapse import cli

    step = ["chain", "--classifier", str(tmp_path / "c.npz")] if family == "vae" else ["simulate"]
    code = cli.main([family, *step, "--config-json", _block_json(_smoke_config(), family), *args,
                     "--out", str(tmp_path / "r.npz")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["gaussian", "simulate", "--sample-size", "5", "--generations", "3", "--replicates", "2"],
     "required: --seed (or the config block"),
    (["discrete", "simulate", "--seed", "0", "--generations", "3", "--replicates", "2"], "required: --sample-size"),
    (["gmm", "simulate", "--seed", "0", "--sample-size", "9"], "required: --generations, --replicates"),
    (["gaussian", "simulate", "--seed", "0", "--sample-size", "5", "--generations", "3", "--replicates", "2",
      "--part", "regimes"], "--part and --label pick a job of the config block"),
    (["discrete", "simulate", "--seed", "0", "--sample-size", "5", "--generations", "3", "--replicates", "2",
      "--part", "absorption"], "--part picks a job of the config block"),
])
def test_flags_without_the_block_still_need_their_required_ones(tmp_path, capsys, argv, message):
    from modelcollapse import cli

    assert cli.main([*argv, "--out", str(tmp_path / "r.npz")]) == 2
    assert message in capsys.readouterr().err
