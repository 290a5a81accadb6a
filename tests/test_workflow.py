"""End to end: `snakemake --configfile config/smoke.yaml` in a temporary copy of the workflow."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import copy_workflow

HAVE_LATEX = shutil.which("latexmk") is not None
pytestmark = pytest.mark.slow


def snakemake(cwd, *args):
    run = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "config/smoke.yaml", *args],
                         cwd=cwd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def _copy(tmp_path_factory, name):
    repo = copy_workflow(tmp_path_factory.mktemp(name))
    if not HAVE_LATEX:  # everything but the PDF can still be checked
        smoke = repo / "config" / "smoke.yaml"
        config = yaml.safe_load(smoke.read_text())
        config["paper"]["build_pdf"] = False
        smoke.write_text(yaml.safe_dump(config))
    return repo


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    repo = _copy(tmp_path_factory, "c2")
    snakemake(repo, "--cores", "2")
    return repo


def _produced(repo):
    files = [*repo.glob("results/**/*"), *repo.glob("paper/generated/*"), *repo.glob("figures/*.png")]
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(files)
            if p.is_file() and "timings" not in p.parts}


def test_smoke_builds_results_figure_and_table(smoke_run):
    for name in ("results/gaussian/summary.csv", "figures/gaussian_fit.pdf", "figures/gaussian_fit.png",
                 "paper/generated/gaussian_table.tex", "paper/generated/gaussian_numbers.tex",
                 "paper/generated/provenance.tex"):
        assert (smoke_run / name).stat().st_size > 0, name
    assert len(list(smoke_run.glob("results/gaussian/*.npz"))) == 4  # 2 estimators x 2 sample sizes
    assert len(list(smoke_run.glob("results/gaussian/regimes/*.npz"))) == 4
    assert len(list(smoke_run.glob("results/gaussian/schedules/*.npz"))) == 3
    assert len(list(smoke_run.glob("results/gaussian/multivariate/*.npz"))) == 2
    for npz in smoke_run.glob("results/**/*.npz"):
        if npz.parent.name.endswith(".checkpoints"):  # resumable state; its identity is inside the file
            continue
        assert (npz.parent / (npz.name + ".provenance.json")).exists(), npz
    for family in ("vae/digits", "lm/synthetic"):
        assert (smoke_run / "results" / family / "summary.csv").stat().st_size > 0, family
    for name in ("vae_samples", "vae_latent_density", "vae_metrics", "lm_perplexity", "lm_metrics"):
        assert (smoke_run / "figures" / f"{name}.png").stat().st_size > 0, name
    assert list(smoke_run.glob("results/timings/*.tsv")), "every compute rule records its wall time"


@pytest.mark.skipif(not HAVE_LATEX, reason="latexmk not installed (apt-get install texlive-latex-base "
                                          "texlive-latex-recommended latexmk); CI installs it")
def test_smoke_builds_the_paper_pdf(smoke_run):
    pdf = smoke_run / "paper" / "main.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 50_000  # the figure is embedded


def test_every_number_the_paper_uses_is_generated(smoke_run):
    sources = [smoke_run / "paper" / "main.tex", *sorted((smoke_run / "paper" / "sections").glob("*.tex"))]
    text = re.sub(r"(?<!\\)%.*", "", "\n".join(p.read_text() for p in sources))  # drop comments
    used = set(re.findall(r"\\mcnum\{([^}]+)\}", text))
    generated = "\n".join(p.read_text() for p in (smoke_run / "paper" / "generated").glob("*.tex"))
    defined = set(re.findall(r"\\mcdef\{([^}]+)\}", generated))
    assert used, "the paper should take its numbers from generated files"
    assert used <= defined, f"used but never generated: {sorted(used - defined)}"
    inputs = set(re.findall(r"\\input\{generated/([^}]+)\}", text))
    assert inputs == {p.name for p in (smoke_run / "paper" / "generated").glob("*.tex")}


def test_second_run_does_nothing(smoke_run):
    before = {p: p.stat().st_mtime_ns for p in smoke_run.rglob("*") if p.is_file() and ".snakemake" not in p.parts}
    out = snakemake(smoke_run, "--cores", "2")
    assert "Nothing to be done" in out
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after


def test_c1_and_c2_give_byte_identical_files(smoke_run, tmp_path_factory):
    repo = _copy(tmp_path_factory, "c1")
    snakemake(repo, "--cores", "1")
    one, two = _produced(repo), _produced(smoke_run)
    assert one.keys() == two.keys()
    # provenance records name the run's folder; timings.tex holds wall times: both legitimately differ
    differ = [name for name in one if one[name] != two[name]
              and not name.endswith(".provenance.json") and name != "paper/generated/timings.tex"]
    assert differ == []


def test_deleting_a_figure_rebuilds_only_that_figure(smoke_run):
    (smoke_run / "figures" / "gaussian_fit.pdf").unlink()
    results = {p: p.stat().st_mtime_ns for p in smoke_run.glob("results/**/*")
               if p.is_file() and "timings" not in p.parts}  # the figure rule rewrites its own timing
    out = snakemake(smoke_run, "--cores", "2", "figures/gaussian_fit.pdf")
    assert "rule gaussian_figure" in out
    for other in ("gaussian_simulate", "gaussian_summarize", "gaussian_table", "rule paper:"):
        assert other not in out
    assert (smoke_run / "figures" / "gaussian_fit.pdf").exists()
    assert results == {p: p.stat().st_mtime_ns for p in results}


def test_report_has_every_figure_with_its_caption(smoke_run):
    snakemake(smoke_run, "--report", "report.html")
    html = (smoke_run / "report.html").read_text(errors="replace")
    for figure in sorted((smoke_run / "figures").glob("*.pdf")):
        assert figure.name in html, figure.name
    assert "latent means of 100 generated images" in html  # a caption rendered (vae_latent_density.rst)
