"""The CLI: same arguments give byte-identical files; bad arguments fail first and write nothing."""

import json
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
