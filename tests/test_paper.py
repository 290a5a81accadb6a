"""Numbers into LaTeX: formatting, every number the text uses is generated, clear error without LaTeX."""

import pytest

from modelcollapse import gaussian, paper
from modelcollapse.tables import gaussian as gaussian_table


@pytest.mark.parametrize("x,expected", [
    (0.0, "0"), (1.0, "1.00"), (0.07004, "0.0700"), (123.456, "123"), (2.5e-5, r"2.50\times10^{-5}"),
    (99999.0, r"1.00\times10^{5}"), (-0.5, "-0.500"), (float("nan"), r"\text{n/a}"),
])
def test_latex_number(x, expected):
    assert paper.latex_number(x) == expected


@pytest.mark.parametrize("x,se,expected", [
    (0.0771, 0.0443, r"0.077\pm0.044"), (3.51, 1.83, r"3.5\pm1.8"), (0.99876, 0.0012, r"0.9988\pm0.0012"),
    (2.5e-5, 3.1e-6, r"(2.50\pm0.31)\times10^{-5}"), (1.0, 0.0, "1.00"),
])
def test_latex_pm_rounds_to_the_standard_error(x, se, expected):
    assert paper.latex_pm(x, se) == expected


def test_macro_keys_are_checked():
    assert paper.macro_lines({"b.x": "2", "a": "1"}).splitlines()[1:] == [r"\mcdef{a}{1}", r"\mcdef{b.x}{2}"]
    with pytest.raises(ValueError, match="key"):
        paper.macro_lines({"bad key": "1"})


def _summary_rows(sizes=(10, 30), generations=6):
    rows = []
    for estimator in ("unbiased", "mle"):
        for m in sizes:
            sim = gaussian.simulate(0, sample_size=m, generations=generations, replicates=50, estimator=estimator)
            stats = gaussian.summarize(sim.mean, sim.std, sizes=[m] * generations, estimator=estimator)
            for g in range(generations + 1):
                rows.append({"estimator": estimator, "sample_size": str(m)}
                            | {k: str(v[g]) for k, v in stats.items()})
    return rows


def test_table_has_a_row_per_estimator_size_and_generation():
    tex = gaussian_table.table_tex(_summary_rows(), [1, 6])
    assert tex.count(r"\\") == 1 + 2 * 2 * 2  # header + rows
    with pytest.raises(ValueError, match="not in the summary"):
        gaussian_table.table_tex(_summary_rows(), [7])


def test_missing_latexmk_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(paper.shutil, "which", lambda name: None)
    tex = tmp_path / "main.tex"
    tex.write_text(r"\documentclass{article}\begin{document}x\end{document}")
    with pytest.raises(RuntimeError, match="apt-get install texlive-latex-base"):
        paper.build_pdf(tex, tmp_path / "main.pdf")
    assert not (tmp_path / "main.pdf").exists()


def test_timings_table_lists_every_job_longest_first_with_provenance(tmp_path):
    from modelcollapse.cli import main
    from modelcollapse.io import provenance_path

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, seconds in (("fast_job", 1.25), ("slow_job", 30.5)):
        (tmp_path / f"{name}.tsv").write_text(header + f"{seconds}\t0:00:01\t40.0\t1\t1\t1\t0\t0\t0\t{seconds / 2}\n")
    out = tmp_path / "timings.tex"
    assert main(["paper", "timings", "--out", str(out), str(tmp_path / "fast_job.tsv"),
                 str(tmp_path / "slow_job.tsv")]) == 0
    text = out.read_text()
    assert text.index(r"slow\_job") < text.index(r"fast\_job")
    assert r"\texttt{slow\_job} & 30.5 & 15.2 & 40" in text and "all 2 jobs (sum) & 32 & 16" in text
    assert provenance_path(out).exists()
    assert main(["paper", "timings", "--out", str(out), str(tmp_path / "missing.tsv")]) == 2


def test_numbers_index_inputs_every_numbers_file_in_order_and_refuses_others(tmp_path):
    # main.tex reads generated/numbers.tex, so a family's numbers file is read once it is listed
    # in PAPER_INPUTS (no edit of main.tex).
    from modelcollapse import cli

    files = [tmp_path / "b_numbers.tex", tmp_path / "a_numbers.tex"]
    for f in files:
        f.write_text(r"\mcdef{x}{1}" + "\n")
    out = tmp_path / "numbers.tex"
    assert cli.main(["paper", "numbers", "--out", str(out), *map(str, files)]) == 0
    lines = out.read_text().splitlines()
    assert lines[1:] == [r"\input{generated/b_numbers.tex}", r"\input{generated/a_numbers.tex}"]
    assert (tmp_path / "numbers.tex.provenance.json").exists()
    table = tmp_path / "a_table.tex"
    table.write_text("")
    assert cli.main(["paper", "numbers", "--out", str(tmp_path / "n2.tex"), str(table)]) == 2
    assert not (tmp_path / "n2.tex").exists()
