"""The repetition-penalty comparison (issue 13, config `lm.penalty`): the check of its keys, its
numbers, and the figure and numbers commands on a summary CSV. The smoke workflow runs its chains
(test_workflow checks each decodes with its own penalty)."""

import csv
import subprocess
import sys

import pytest

from conftest import smoke_config_refuses
from modelcollapse.tables import lm as tables

COLUMNS = ("label", "chain", "generation", "decoding", "repetition_penalty", "entropy_rate", "verifier_recall",
           "verifier_false_rejection", "test_ppl", "data_ppl_median", "forbidden_share", "distinct_2",
           "unigram_entropy", "kl_truth_model")


def _row(label, chain, g, ppl, penalty):
    return {"label": label, "chain": str(chain), "generation": str(g), "decoding": "beam",
            "repetition_penalty": str(penalty), "entropy_rate": "1.7", "verifier_recall": "nan",
            "verifier_false_rejection": "nan", "test_ppl": str(ppl), "data_ppl_median": str(8.0 - g),
            "forbidden_share": "0.01", "distinct_2": str(0.02 / (g + 1)), "unigram_entropy": "3.9",
            "kl_truth_model": str(0.4 + 0.1 * g)}


ROWS = [_row("A", 0, 0, 8, 3.0), _row("A", 0, 2, 16, 3.0), _row("A", 1, 0, 10, 3.0), _row("A", 1, 2, 20, 3.0),
        _row("P1", 0, 0, 9, 1.0), _row("P1", 0, 2, 27, 1.0)]


def test_the_numbers_are_per_label_under_the_block():
    out = tables.comparison_numbers(ROWS, block="penalty")
    assert out["lm.penalty.A.G0.test_ppl"] == "9.00" and out["lm.penalty.A.Gmax.test_ppl"] == "18.0"
    assert out["lm.penalty.A.ratio"] == "2.00" and out["lm.penalty.A.chains"] == "2"
    assert out["lm.penalty.P1.ratio"] == "3.00" and out["lm.penalty.P1.repetition_penalty"] == "1.00"
    assert out["lm.penalty.A.repetition_penalty"] == "3.00" and out["lm.penalty.P1.Gmax"] == "2"
    assert out["lm.penalty.P1.Gmax.data_ppl_median"] == "6.00" and out["lm.penalty.P1.G0.data_ppl_median"] == "8.00"
    assert out["lm.penalty.P1.verifier_recall"] == r"\text{n/a}"
    assert not [key for key in out if not key.startswith("lm.penalty.")]


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["lm"]["penalty"].update(compare=["Z"]), r"lm\.penalty\.compare.*'Z'"),
    # a label of lm.verify's regimes
    (lambda c: c["lm"]["penalty"]["regimes"][1].update(label="VC"), r"lm\.penalty\.regimes\[1\]\.label.*used twice"),
    (lambda c: c["lm"]["penalty"]["regimes"][0]["decoding"].update(repetition_penalty=0.0),
     r"lm\.penalty\.regimes\[0\]"),
    (lambda c: c["lm"]["penalty"].update(chains=0), r"lm\.penalty\.chains"),
])
def test_check_config_names_the_penalty_keys(edit, match):
    smoke_config_refuses(edit, match)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "modelcollapse", *map(str, args)], capture_output=True, text=True)


def test_figure_and_numbers_commands(tmp_path):
    summary = tmp_path / "penalty_summary.csv"
    with open(summary, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(ROWS)
    run = _cli("lm", "figure", "--kind", "penalty", "--summary", summary, "--out", tmp_path / "lm_penalty.pdf")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "lm_penalty.pdf").stat().st_size > 0 and (tmp_path / "lm_penalty.png").stat().st_size > 0
    assert (tmp_path / "lm_penalty.pdf.provenance.json").is_file()
    run = _cli("lm", "compare-numbers", "--block", "penalty", "--summary", summary, "--out", tmp_path / "n.tex")
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "n.tex").read_text()
    assert r"\mcdef{lm.penalty.P1.ratio}{3.00}" in text and "lm.verify." not in text
    run = _cli("lm", "compare-numbers", "--block", "nope", "--summary", summary, "--out", tmp_path / "m.tex")
    assert run.returncode != 0 and "invalid choice" in run.stderr and not (tmp_path / "m.tex").exists()


def test_the_legend_names_each_penalty():
    from modelcollapse.plots.lm import comparison_legend
    assert comparison_legend(ROWS[-1], "penalty") == "P1: beam, repetition penalty 1"
    assert comparison_legend(ROWS[0], "verify") == "A: beam, no verifier"


def test_every_comparison_block_has_its_panels():
    # commands.lm.COMPARISONS names the blocks the rules and checks know; each needs its figure's panels.
    from modelcollapse.commands.lm import COMPARISONS
    from modelcollapse.plots.lm import COMPARISON_METRICS, YLABELS
    assert set(COMPARISON_METRICS) == set(COMPARISONS)
    assert all(name in YLABELS for names in COMPARISON_METRICS.values() for name in names)
