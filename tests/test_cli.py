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
    (("--sample-size", 1), "sample_size must be >= dim + 1 = 2"),
    (("--generations", 0), "generations must be an integer >= 1"),
    (("--replicates", 0), "replicates must be an integer >= 1"),
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
