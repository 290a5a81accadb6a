"""A hostile but fair user: malformed configs, CLI arguments, data files and checkpoints, a full
disk, a read-only folder, a missing GPU, a diverging training.

Every case must end with a non-zero exit status, one message on stderr naming the key, argument,
file or device at fault, no Python traceback, and nothing left behind: no output, no provenance
record, no temporary file. Most cases run in-process through `modelcollapse.cli.main` (fast: one
interpreter, JAX imported once); the ones that need a process of their own (a missing device, a
private mount for the full disk and the read-only folder, a real training) run as subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import DELETE, ROOT, set_key
from modelcollapse import cli, io

SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
SIM = ["gaussian", "simulate", "--seed", "0", "--sample-size", "10", "--generations", "5", "--replicates", "4",
       "--platform", "cpu"]


# -- inputs every case may read, made once ------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of good and bad input files (made with the library, so no JAX platform is fixed)."""
    from modelcollapse import gaussian

    d = tmp_path_factory.mktemp("inputs")
    chains = gaussian.simulate(0, sample_size=10, generations=5, replicates=4, estimator="unbiased")
    meta = {"sizes": np.full(5, 10.0), "estimator": "unbiased", "regime": "replace", "real_fraction": 0.0,
            "real_source": "original", "schedule": "constant", "dim": 1}
    io.save_npz(d / "good.npz", {"mean": chains.mean, "std": chains.std} | meta)
    data = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(data[: len(data) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("this is not an archive\n")
    np.save(d / "single.npy", np.arange(3))
    shutil.copy(d / "single.npy", d / "single.npz")
    io.save_npz(d / "foreign.npz", {"weights": np.ones(3)})  # no array a Gaussian summary reads
    assert cli.main(["gaussian", "summarize", "--out", str(d / "summary.csv"), str(d / "good.npz")]) == 0
    (d / "empty.csv").write_text("")
    (d / "columns.csv").write_text("a,b\n1,2\n")
    (d / "latin1.csv").write_bytes("estimator,caf\xe9\nx,1\n".encode("latin-1"))
    (d / "a_folder.npz").mkdir()
    (d / "not_a_folder").write_text("a file\n")
    (d / "timing.tsv").write_text("foo\tbar\n1\t2\n")
    # configs
    (d / "smoke.yaml").write_text(yaml.safe_dump(SMOKE))
    return d


def _config_file(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _changed(dotted: str, value) -> dict:
    """A copy of the smoke config with one key set, or removed when value is None."""
    return set_key(json.loads(json.dumps(SMOKE)), dotted, DELETE if value is None else value)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_in_process(argv, capsys, workdir: Path, inputs_dir: Path):
    """cli.main(argv) -> (exit status, stderr); asserts nothing was left in `workdir` or `inputs_dir`."""
    before_work, before_inputs = _files(workdir), _files(inputs_dir)
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert _files(workdir) == before_work, f"left behind: {_files(workdir) - before_work}"
    assert _files(inputs_dir) == before_inputs, f"left behind: {_files(inputs_dir) - before_inputs}"
    return code, err


def check_failure(code, err: str, names: tuple[str, ...]) -> None:
    assert code not in (0, None), err
    assert "Traceback" not in err, err
    message = err.strip().splitlines()
    assert message, "no message on stderr"
    assert message[-1].startswith(("modelcollapse", "usage:")) or "error:" in message[-1], err
    for name in names:
        assert name in err, f"{name!r} not named in: {err}"


# -- the in-process cases: (id, argv builder, words the message must contain) -----------------------------
# In an argv, "{in}" is the inputs folder and "{out}" the case's empty output folder.

CONFIG_TEXTS = {
    "dup_top.yaml": "seed: 0\nseed: 1\n",
    "dup_nested.yaml": yaml.safe_dump(SMOKE, sort_keys=False).replace("gaussian:\n", "gaussian:\n  generations: 7\n", 1),
    "latin1.yaml": "seed: 0\nrun: caf\xe9\n".encode("latin-1"),
    "tabs.yaml": "seed: 0\ngaussian:\n\t generations: 3\n",
    "list.yaml": "- 1\n- 2\n",
    "empty.yaml": "",
    "no_vae.yaml": yaml.safe_dump({k: v for k, v in SMOKE.items() if k != "vae"}),
    "extra_block.yaml": yaml.safe_dump(SMOKE | {"vea": {}}),
    "bad_run.yaml": yaml.safe_dump(SMOKE | {"run": "../escape"}),
    "my config.yaml": yaml.safe_dump(SMOKE),
}
# (key, bad value or None to delete it, what the message must name)
CONFIG_CHANGES = [
    ("seed", -1, "'seed'"),
    ("platform", "cuda", "'platform'"),
    ("gaussian.generations", 0, "'gaussian.generations'"),
    ("gaussian.sample_sizes", [1], "'gaussian.sample_sizes[0]'"),
    ("gaussian.replicates", "many", "'gaussian.replicates'"),
    ("discrete.exponent", 50.0, "'discrete.exponent'"),
    ("gmm.snapshots", [999], "'gmm.snapshots'"),
    ("vae.latent_samples", 10_000, "'vae.latent_samples'"),
    ("lm.optimizer.learning_rate", 0, "'lm.optimizer.learning_rate'"),
    ("lm.model.context", 4, "'lm.model.context'"),
    ("lm.regimes", [], "'lm.regimes'"),
    ("paper.build_pdf", "yes", "'paper.build_pdf'"),
    ("gaussian.estimators", None, "'estimators'"),
]

CASES = [
    # configs: check-config
    ("config dup top-level key", ["check-config", "{in}/dup_top.yaml"], ("dup_top.yaml", "'seed'", "twice", "lines 1 and 2")),
    ("config dup nested key", ["check-config", "{in}/dup_nested.yaml"], ("'gaussian.generations'", "twice")),
    ("config not UTF-8", ["check-config", "{in}/latin1.yaml"], ("latin1.yaml", "UTF-8", "line 2")),
    ("config tab indentation", ["check-config", "{in}/tabs.yaml"], ("tabs.yaml", "not valid YAML")),
    ("config top level a list", ["check-config", "{in}/list.yaml"], ("list.yaml", "mapping")),
    ("config empty", ["check-config", "{in}/empty.yaml"], ("empty.yaml", "mapping")),
    ("config missing block", ["check-config", "{in}/no_vae.yaml"], ("no_vae.yaml", "'vae'", "config/config.yaml")),
    ("config unknown block", ["check-config", "{in}/extra_block.yaml"], ("'vea'",)),
    ("config bad run name", ["check-config", "{in}/bad_run.yaml"], ("'run'",)),
    ("config file name cannot name a run", ["check-config", "{in}/my config.yaml"], ("'run'", "my config")),
    ("config missing file", ["check-config", "{in}/nope.yaml"], ("nope.yaml", "does not exist")),
    ("config is a folder", ["check-config", "{in}/a_folder.npz"], ("a_folder.npz", "folder")),
    *[(f"config {key}={value!r}", ["check-config", f"{{in}}/changed_{i}.yaml"], (f"changed_{i}.yaml", named))
      for i, (key, value, named) in enumerate(CONFIG_CHANGES)],
    # CLI arguments
    ("--out with the wrong suffix", [*SIM, "--out", "{out}/r.csv"], ("r.csv", ".npz")),
    ("--out is a folder", [*SIM, "--out", "{in}/a_folder.npz"], ("a_folder.npz", "is a folder")),
    ("--out below a file", [*SIM, "--out", "{in}/not_a_folder/r.npz"], ("not_a_folder", "not a folder")),
    ("--sample-size 1", [*SIM[:4], "--sample-size", "1", *SIM[6:], "--out", "{out}/r.npz"], ("sample_size",)),
    ("--generations 0", [*SIM[:6], "--generations", "0", *SIM[8:], "--out", "{out}/r.npz"], ("generations",)),
    ("--replicates 0", [*SIM[:8], "--replicates", "0", *SIM[10:], "--out", "{out}/r.npz"], ("replicates",)),
    ("--replicates -3", [*SIM[:8], "--replicates", "-3", *SIM[10:], "--out", "{out}/r.npz"], ("--replicates",)),
    ("--seed not a number", [*SIM[:2], "--seed", "abc", *SIM[4:], "--out", "{out}/r.npz"], ("--seed", "abc")),
    ("--estimator unknown", [*SIM, "--estimator", "median", "--out", "{out}/r.npz"], ("--estimator", "median")),
    ("--platform unknown", [*SIM, "--platform", "quantum", "--out", "{out}/r.npz"], ("--platform", "quantum")),
    ("--real-fraction without mix", [*SIM, "--real-fraction", "0.5", "--out", "{out}/r.npz"], ("--real-fraction",)),
    ("--real-fraction above 1", [*SIM, "--regime", "mix", "--real-fraction", "1.5", "--out", "{out}/r.npz"],
     ("real_fraction",)),
    ("--dim 3 with M = 3", [*SIM[:4], "--sample-size", "3", *SIM[6:], "--dim", "3", "--out", "{out}/r.npz"],
     ("sample_size", "dim + 1")),
    ("--correlation below -1/(d-1)", [*SIM, "--dim", "3", "--correlation", "-0.9", "--out", "{out}/r.npz"],
     ("correlation",)),
    ("--dim 2 with accumulate", [*SIM, "--dim", "2", "--regime", "accumulate", "--out", "{out}/r.npz"], ("dim",)),
    ("--schedule superlinear --power 1", [*SIM, "--schedule", "superlinear", "--power", "1", "--out", "{out}/r.npz"],
     ("power",)),
    ("gaussian too large for memory", ["gaussian", "simulate", "--seed", "0", "--sample-size", "20", "--generations",
                                       "100000", "--replicates", "10000000", "--out", "{out}/r.npz"],
     ("--replicates 10000000", "--generations 100000", "TiB", "memory")),
    ("gaussian d = 50 too large", ["gaussian", "simulate", "--seed", "0", "--sample-size", "60", "--dim", "50",
                                   "--generations", "10000", "--replicates", "100000", "--out", "{out}/r.npz"],
     ("--dim 50", "memory")),
    ("discrete too large for memory", ["discrete", "simulate", "--seed", "0", "--sample-size", "10", "--generations",
                                       "1000000", "--replicates", "10000000", "--num-symbols", "10",
                                       "--out", "{out}/r.npz"], ("--replicates 10000000", "memory")),
    ("gmm accumulate too large", ["gmm", "simulate", "--seed", "0", "--sample-size", "1000", "--generations", "20000",
                                  "--replicates", "10000", "--regime", "accumulate", "--out", "{out}/r.npz"],
     ("--sample-size 1000", "memory")),
    ("discrete one symbol", ["discrete", "simulate", "--seed", "0", "--sample-size", "10", "--generations", "5",
                             "--replicates", "4", "--num-symbols", "1", "--out", "{out}/r.npz"], ("num_symbols",)),
    ("discrete exponent 11", ["discrete", "simulate", "--seed", "0", "--sample-size", "10", "--generations", "5",
                              "--replicates", "4", "--exponent", "11", "--out", "{out}/r.npz"], ("exponent",)),
    ("gmm --slots above replicates", ["gmm", "simulate", "--seed", "0", "--sample-size", "50", "--generations", "2",
                                      "--replicates", "2", "--slots", "5", "--out", "{out}/r.npz"], ("--slots",)),
    ("gmm fewer points than components", ["gmm", "simulate", "--seed", "0", "--sample-size", "1", "--generations",
                                          "2", "--replicates", "2", "--out", "{out}/r.npz"], ("sample_size",)),
    ("table generation beyond the run", ["gaussian", "table", "--summary", "{in}/summary.csv", "--generations", "99",
                                         "--replicates", "4", "--table", "{out}/t.tex", "--numbers", "{out}/n.tex"],
     ("99",)),
    ("numbers --table for a kind without one", ["gaussian", "numbers", "--summary", "{in}/summary.csv", "--kind",
                                                "schedules", "--table", "{out}/t.tex", "--out", "{out}/n.tex"],
     ("--table", "schedules")),
    ("figure from the wrong source", ["vae", "figure", "--kind", "metrics", "--results", "{in}/good.npz", "--out",
                                      "{out}/f.pdf"], ("--summary",)),
    ("vae --validation-fraction 1.5", ["vae", "chain", "--seed", "0", "--chain", "0", "--generations", "1",
                                       "--validation-fraction", "1.5", "--classifier", "{in}/good.npz",
                                       "--platform", "cpu", "--out", "{out}/c.npz"], ("--validation-fraction",)),
    ("vae missing classifier", ["vae", "chain", "--seed", "0", "--chain", "0", "--generations", "1", "--classifier",
                                "{in}/nope.npz", "--out", "{out}/c.npz"], ("nope.npz", "not found")),
    ("lm unknown regime label", ["lm", "chain", "--config", "{in}/smoke.yaml", "--corpus", "{in}/good.npz",
                                 "--regime", "Z", "--chain", "0", "--out", "{out}/c.npz"], ("--regime", "'Z'")),
    ("--config-json not JSON", ["paper", "provenance", "--config-json", "{seed: 0", "--out", "{out}/p.tex"],
     ("--config-json", "JSON")),
    ("--config-json a list", ["paper", "provenance", "--config-json", "[1, 2]", "--out", "{out}/p.tex"],
     ("--config-json", "object")),
    ("--config-json without the lm block", ["lm", "corpus", "--config-json", json.dumps({"seed": 0, "platform": "cpu"}),
                                            "--out", "{out}/c.npz"], ("'lm'",)),
    ("paper timings from a non-benchmark file", ["paper", "timings", "--out", "{out}/t.tex", "{in}/timing.tsv"],
     ("timing.tsv",)),
    ("paper build --tex missing", ["paper", "build", "--tex", "{in}/nope.tex", "--out", "{out}/main.pdf"],
     ("nope.tex",)),
    ("unknown subcommand", ["gaussian", "simulat"], ("simulat",)),
    # data files
    ("summarize a truncated .npz", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/truncated.npz"],
     ("truncated.npz", "not a readable .npz")),
    ("summarize an empty .npz", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/empty.npz"],
     ("empty.npz", "not a readable .npz")),
    ("summarize a text file", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/text.npz"],
     ("text.npz", "not a readable .npz")),
    ("summarize an .npy", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/single.npz"],
     ("single.npz", "not an .npz archive")),
    ("summarize another family's .npz", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/foreign.npz"],
     ("foreign.npz", "no array")),
    ("summarize a missing input", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/good.npz", "{in}/gone.npz"],
     ("gone.npz", "not found")),
    ("summarize a folder", ["gaussian", "summarize", "--out", "{out}/s.csv", "{in}/a_folder.npz"],
     ("a_folder.npz", "folder")),
    ("summarize into a folder", ["gaussian", "summarize", "--out", "{in}/a_folder.npz", "{in}/good.npz"],
     ("a_folder.npz", ".csv")),
    ("figure from an empty CSV", ["gaussian", "figure", "--summary", "{in}/empty.csv", "--out", "{out}/f.pdf"],
     ("empty.csv",)),
    ("figure from a CSV without its columns", ["gaussian", "figure", "--summary", "{in}/columns.csv", "--out",
                                               "{out}/f.pdf"], ("columns.csv",)),
    ("figure from a non-UTF-8 CSV", ["gaussian", "figure", "--summary", "{in}/latin1.csv", "--out", "{out}/f.pdf"],
     ("latin1.csv",)),
    ("snapshots figure from a Gaussian result", ["gmm", "figure", "--kind", "snapshots", "--results", "{in}/good.npz",
                                                 "--out", "{out}/f.pdf"], ("good.npz", "no array")),
    ("lm perplexity figure from a truncated .npz", ["lm", "figure", "--kind", "perplexity", "--results",
                                                    "{in}/truncated.npz", "--out", "{out}/f.pdf"], ("truncated.npz",)),
    ("discrete absorption of a truncated .npz", ["discrete", "absorption", "--out", "{out}/a.csv",
                                                 "{in}/truncated.npz"], ("truncated.npz",)),
    ("lm chain with a truncated corpus", ["lm", "chain", "--config", "{in}/smoke.yaml", "--corpus",
                                          "{in}/truncated.npz", "--regime", "A", "--chain", "0", "--out",
                                          "{out}/c.npz"], ("truncated.npz",)),
    ("lm pretrain on a non-corpus .npz", ["lm", "pretrain", "--config", "{in}/smoke.yaml", "--corpus",
                                          "{in}/good.npz", "--out", "{out}/b.npz"], ("vocab_size", "good.npz")),
    # checkpoints
    ("vae chain with a truncated classifier", ["vae", "chain", "--seed", "0", "--chain", "0", "--generations", "1",
                                               "--classifier", "{in}/truncated.npz", "--platform", "cpu", "--out",
                                               "{out}/c.npz"], ("truncated.npz",)),
    ("vae chain with a result as classifier", ["vae", "chain", "--seed", "0", "--chain", "0", "--generations", "1",
                                               "--classifier", "{in}/good.npz", "--platform", "cpu", "--out",
                                               "{out}/c.npz"], ("good.npz",)),
]


def test_there_are_at_least_60_cases():
    assert len(CASES) + len(SUBPROCESS_CASES) >= 60, len(CASES) + len(SUBPROCESS_CASES)


@pytest.mark.parametrize("argv,names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(argv, names, inputs, tmp_path, capsys):
    for i, (key, value, _) in enumerate(CONFIG_CHANGES):
        path = inputs / f"changed_{i}.yaml"
        if not path.exists():
            path.write_text(yaml.safe_dump(_changed(key, value)))
    for name, text in CONFIG_TEXTS.items():
        if not (inputs / name).exists():
            _config_file(inputs, name, text)
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in argv]
    code, err = run_in_process(argv, capsys, out, inputs)
    check_failure(code, err, names)


# -- cases that need a process of their own -----------------------------------------------------------------


def _run(args, *, env=None, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "modelcollapse", *map(str, args)], capture_output=True, text=True,
                          env=None if env is None else dict(os.environ, **env), cwd=cwd, timeout=timeout)


def _private_mount(size: str, read_only: bool, argv: list[str], folder: Path):
    """Run the CLI with a fresh tmpfs of `size` mounted on `folder` in a private mount namespace
    (unshare: nothing outside sees it, and it vanishes with the process); the listing of `folder`
    after the command goes to stdout. Skips where namespaces are not allowed."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("unshare/mount not available")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user/mount namespaces not permitted here (unshare -rm failed)")
    options = f"size={size}" + (",ro" if read_only else "")
    command = " ".join(f"'{a}'" for a in [sys.executable, "-m", "modelcollapse", *argv])
    script = (f"mount -t tmpfs -o {options} tmpfs '{folder}' || exit 99; {command}; rc=$?; "
              f"ls -A '{folder}'; exit $rc")
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    if run.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs: {run.stderr.strip()}")
    return run


def case_disk_full(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    run = _private_mount("16k", False, [*SIM[:8], "--replicates", "2000", *SIM[10:], "--out", folder / "r.npz"],
                         folder)
    assert run.stdout.strip() == "", f"left behind on the full disk: {run.stdout}"
    return run, ("no space left", "r.npz")


def case_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    run = _private_mount("1m", True, [*SIM, "--out", folder / "r.npz"], folder)
    assert run.stdout.strip() == ""
    return run, ("r.npz", "not writable", str(folder))


def case_no_gpu(tmp_path):
    import jax

    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU")
    run = _run([*SIM[:-2], "--platform", "gpu", "--out", tmp_path / "r.npz"])
    return run, ("platform 'gpu'", "GPU", "cpu")


def case_lm_diverges(tmp_path):
    """Learning rate 1.0 on the smoke LM: test perplexity ~1e240 with exit 0 before; now a failure that
    names the regime, chain, generation and config key."""
    config = _changed("lm.optimizer.learning_rate", 1.0)
    config["lm"]["init"] = "scratch"  # no base model to pretrain: the failure is the chain's own
    path = tmp_path / "lr1.yaml"
    path.write_text(yaml.safe_dump(config))
    corpus = tmp_path / "corpus.npz"
    made = _run(["lm", "corpus", "--config", path, "--out", corpus])
    assert made.returncode == 0, made.stderr
    run = _run(["lm", "chain", "--config", path, "--corpus", corpus, "--regime", "A", "--chain", "1", "--out",
                tmp_path / "chain.npz"])
    for leftover in ("chain.npz", "chain.npz.provenance.json"):
        assert not (tmp_path / leftover).exists()
    return run, ("diverged", "regime A", "chain 1", "generation 0", "lm.optimizer.learning_rate")


def case_debug_shows_traceback(tmp_path):
    """--debug is the one way to see a traceback (the suite's other cases check it is absent)."""
    run = _run(["--debug", *SIM, "--out", tmp_path / "r.csv"])
    assert "Traceback" in run.stderr
    return None, ()


SUBPROCESS_CASES = {"disk full": case_disk_full, "read-only folder": case_read_only_folder,
                    "--platform gpu without a GPU": case_no_gpu, "LM training diverges": case_lm_diverges,
                    "--debug": case_debug_shows_traceback}


@pytest.mark.parametrize("case", list(SUBPROCESS_CASES))
def test_operational_failure_fails_cleanly(case, tmp_path):
    run, names = SUBPROCESS_CASES[case](tmp_path)
    if run is None:
        return
    assert run.returncode != 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, run.stderr
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]}"
    assert not list(tmp_path.rglob("*.tmp")), list(tmp_path.rglob("*.tmp"))
