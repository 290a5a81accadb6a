"""Sweeps (modelcollapse.sweeps): a grid over a family's knobs becomes jobs whose blocks are the
family's block with `set` and the point applied, checked like any block, each running the family's
own chains; the CLI writes one tidy table and the phase diagram's numbers from it."""

import copy
import json

import numpy as np
import pytest
import yaml

from conftest import ROOT
from modelcollapse import cli, config, gaussian, regression, sweeps
from modelcollapse.regimes import Regime

SMOKE = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def _config(**sweep):
    out = copy.deepcopy(SMOKE)
    out["sweeps"] = {"s": sweep}
    return out


def test_points_are_the_grid_product_in_row_major_order():
    sweep = {"family": "gaussian", "grid": {"a": [1, 2], "b.0": ["x", "y", "z"]}}
    assert sweeps.points(sweep) == [{"a": a, "b.0": b} for a in (1, 2) for b in "xyz"]


def test_set_path_changes_a_copy_and_names_a_bad_path():
    block = {"sample_sizes": [10, 20], "regime": "replace", "regimes": [{"name": "mix", "real_fraction": 0.1}]}
    out = sweeps.set_path(block, "sample_sizes.1", 50)
    assert out["sample_sizes"] == [10, 50] and block["sample_sizes"] == [10, 20]
    assert sweeps.set_path(block, "regimes.0.real_fraction", 0.3)["regimes"][0]["real_fraction"] == 0.3
    for path, message in [("sample_sizes.2", "has 2 entries"), ("nope", "no such key"),
                          ("regime.real_fraction", "'replace', not a mapping"), ("regimes.0.nope", "no such key")]:
        with pytest.raises(ValueError, match=message):
            sweeps.set_path(block, path, 1)


def test_a_point_runs_the_family_chains_on_its_block():
    cfg = _config(family="regression", set={"generations": 6, "replicates": 8, "regimes": ["replace"]},
                  grid={"sample_size": [9, 12], "noise": [0.5]})
    rows = sweeps.run_point(cfg, "s", 1)
    assert len(rows) == 1 and rows[0]["grid:sample_size"] == 12 and rows[0]["point"] == 1
    block = sweeps.point_block(cfg, "s", 1)
    assert block["sample_size"] == 12 and block["noise"] == 0.5 and block["generations"] == 6
    job = regression.config_from_block(block, label="replace", seed=cfg["seed"])
    direct = regression.summarize(regression.simulate(job, cfg["seed"]), job)
    assert rows[0]["error"] == pytest.approx(direct["error"][-1], rel=1e-12)
    assert rows[0]["error_theory"] == pytest.approx(direct["error_theory"][-1], rel=1e-12)
    assert rows[0]["generation"] == 6


def test_a_gaussian_point_gives_one_row_per_job_with_exact_theory():
    cfg = _config(family="gaussian", set={"generations": 5, "replicates": 16, "sample_sizes": [8, 16],
                                          "estimators": ["unbiased"], "table_generations": [1],
                                          "regime": {"name": "mix", "real_fraction": 0.0, "real_source": "fresh"}},
                  grid={"regime.real_fraction": [0.25]})
    rows = sweeps.run_point(cfg, "s", 0)
    assert [r["sample_size"] for r in rows] == [8, 16] and {r["regime"] for r in rows} == {"mix0.25-fresh"}
    from modelcollapse.theory import regimes as exact
    regime = Regime(name="mix", real_fraction=0.25, real_source="fresh")
    assert rows[1]["var_mu_theory"] == pytest.approx(exact.gaussian_moments(regime, [16] * 5, "unbiased")[0][-1])
    chains = gaussian.simulate(cfg["seed"], sample_size=16, generations=5, replicates=16, regime=regime)
    assert rows[1]["var_mu"] == pytest.approx(np.mean(np.asarray(chains.mean, np.float64)[:, -1] ** 2), rel=1e-9)


@pytest.mark.parametrize("sweep, message", [
    (dict(family="gaussian", grid={"sample_sizes.0": [10, 1]}), r"sweeps.s' at point 1 \{'sample_sizes.0': 1\}"),
    (dict(family="gaussian", grid={"regime.real_fraction": [0.5]}), "not a mapping"),
    (dict(family="discrete", grid={"generations": [3]}), "cannot be swept"),
    (dict(family="nope", grid={"generations": [3]}), "not a family block"),
    (dict(family="regression", grid={"sample_size": [20, 5]}), "sample_size"),
])
def test_the_config_check_names_the_bad_sweep_point(sweep, message):
    with pytest.raises(config.ConfigError, match=message):
        config.check_config(_config(**sweep))


def test_the_cli_writes_points_a_table_numbers_and_the_phase_diagram(tmp_path):
    figure = {"x": "real_fraction", "y": "sample_size", "metric": "error", "theory": "error_theory",
              "label": "error"}
    cfg = _config(family="regression", set={"generations": 4, "replicates": 8,
                                            "regimes": [{"name": "mix", "real_fraction": 0.0, "real_source": "fresh"}]},
                  grid={"regimes.0.real_fraction": [0.0, 0.5], "sample_size": [10, 20]}, figure=figure)
    text = json.dumps(cfg)
    points = [str(tmp_path / f"p{i}.csv") for i in range(4)]
    for i, out in enumerate(points):
        assert cli.main(["sweep", "point", "--config-json", text, "--sweep", "s", "--point", str(i), "--out", out]) == 0
    table = str(tmp_path / "table.csv")
    assert cli.main(["sweep", "table", "--out", table, *reversed(points)]) == 0
    numbers, pdf = str(tmp_path / "n.tex"), str(tmp_path / "phase.pdf")
    assert cli.main(["sweep", "numbers", "--config-json", text, "--out", numbers, table]) == 0
    assert cli.main(["sweep", "figure", "--config-json", text, "--out", pdf, table]) == 0
    from modelcollapse.commands import read_csv
    rows = read_csv(table)
    assert [int(r["point"]) for r in rows] == [0, 1, 2, 3]
    assert {(float(r["real_fraction"]), int(r["sample_size"])) for r in rows} == {(f, t) for f in (0, .5) for t in (10, 20)}
    tex = open(numbers).read()
    assert r"\mcdef{sweep.s.x0.5.y20}" in tex and r"\mcdef{sweep.s.G}{4}" in tex
    assert (tmp_path / "phase.png").stat().st_size > 0
    assert cli.main(["sweep", "point", "--config-json", text, "--sweep", "s", "--point", "4",
                     "--out", str(tmp_path / "x.csv")]) == 2
