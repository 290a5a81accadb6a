"""End to end: `snakemake --configfile config/smoke.yaml` in a temporary copy of the workflow.

The smoke config is the run `smoke`: its outputs live in results/smoke/, figures/smoke/,
paper/smoke/ and logs/smoke/, apart from every other config's.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import HAVE_LATEX, ROOT, produced, run_smoke as snakemake, set_key, smoke_copy
from modelcollapse.io import read_csv

pytestmark = pytest.mark.slow
RES, FIG, GEN = "results/smoke", "figures/smoke", "paper/smoke/generated"


def test_smoke_builds_results_figure_and_table(smoke_run):
    for name in (f"{RES}/gaussian/summary.csv", f"{FIG}/gaussian_fit.pdf", f"{FIG}/gaussian_fit.png",
                 f"{GEN}/gaussian_table.tex", f"{GEN}/gaussian_numbers.tex", f"{GEN}/provenance.tex"):
        assert (smoke_run / name).stat().st_size > 0, name
    assert len(list(smoke_run.glob(f"{RES}/gaussian/*.npz"))) == 4  # 2 estimators x 2 sample sizes
    assert len(list(smoke_run.glob(f"{RES}/gaussian/regimes/*.npz"))) == 6  # smoke.yaml's gaussian.regimes.compare
    assert len(list(smoke_run.glob(f"{RES}/gaussian/schedules/*.npz"))) == 3
    assert len(list(smoke_run.glob(f"{RES}/gaussian/multivariate/*.npz"))) == 2
    assert sorted(p.name for p in (smoke_run / "results").iterdir()) == ["smoke"]  # nothing outside the run
    assert sorted(p.name for p in (smoke_run / "figures").iterdir()) == ["smoke"]
    for npz in smoke_run.glob("results/**/*.npz"):
        if any(part.endswith(".checkpoints") for part in npz.parts):  # resumable state, identity inside
            continue
        assert (npz.parent / (npz.name + ".provenance.json")).exists(), npz
    for family in ("vae/digits", "lm/synthetic"):
        assert (smoke_run / RES / family / "summary.csv").stat().st_size > 0, family
    assert len(list(smoke_run.glob(f"{RES}/regression/*.npz"))) == 4
    assert len(list(smoke_run.glob(f"{RES}/sweeps/*.csv"))) == 3  # one table per sweep
    assert (smoke_run / RES / "lm/synthetic/verify_summary.csv").stat().st_size > 0
    # A, B, C x 2; VA, VC, VC50 x 1 (lm.verify); P2, P1 x 1 (lm.penalty)
    assert len(list(smoke_run.glob(f"{RES}/lm/synthetic/*/chain*.npz"))) == 11
    # lm.penalty's chains decode with their own penalties; the chains compared with them keep lm.decoding's
    penalties = {r["label"]: float(r["repetition_penalty"]) for r in
                 read_csv(smoke_run / RES / "lm/synthetic/penalty_summary.csv")}
    assert penalties == {"A": 1.0, "P1": 1.0, "P2": 2.0}
    # discrete: 2 sample sizes, the absorption run and the verification run (all its chains in one file)
    assert len(list(smoke_run.glob(f"{RES}/discrete/*.npz"))) == 4
    assert len(list(smoke_run.glob(f"{RES}/discrete/verify*.csv"))) == 2  # by generation, by symbol
    for name in ("vae_samples", "vae_latent_density", "vae_metrics", "lm_perplexity", "lm_metrics", "lm_verify", "lm_penalty",
                 "regression_regimes", "phase_diagram", "discrete_verify"):
        assert (smoke_run / FIG / f"{name}.png").stat().st_size > 0, name
    assert list(smoke_run.glob(f"{RES}/timings/*.tsv")), "every compute rule records its wall time"


def test_every_chain_file_records_its_regime_and_index_zero_alike(smoke_run):
    # One metadata layout (regimes.metadata): the regime read back from any family's file is the
    # regime, and index 0 is the truth where the family holds it, else the real-data model.
    from modelcollapse import config, regimes
    from test_config_spec import config_class
    index0 = {family: config_class(family).INDEX0 for family in config.families()}
    assert set(index0.values()) == {"truth", "real-data model"}
    seen = set()
    for npz in smoke_run.glob(f"{RES}/*/**/*.npz"):
        data = np.load(npz)
        if "regime" not in data.files:  # summaries, classifiers, base models, checkpoints
            continue
        family = npz.relative_to(smoke_run / RES).parts[0]
        assert {"regime", "regime_label", "real_fraction", "real_source", "regime_params", "index0"} <= set(data.files)
        assert str(data["index0"]) == index0[family], npz
        assert regimes.from_metadata(data).label == str(data["regime_label"]), npz
        seen.add(family)
    assert seen == set(index0)


@pytest.mark.skipif(not HAVE_LATEX, reason="latexmk not installed (apt-get install texlive-latex-base "
                                          "texlive-latex-recommended latexmk); CI installs it")
def test_smoke_builds_the_paper_pdf(smoke_run):
    pdf = smoke_run / "paper" / "smoke" / "main.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 50_000  # the figure is embedded


def test_every_number_the_paper_uses_is_generated(smoke_run):
    sources = [smoke_run / "paper" / "main.tex", *sorted((smoke_run / "paper" / "sections").glob("*.tex"))]
    text = re.sub(r"(?<!\\)%.*", "", "\n".join(p.read_text() for p in sources))  # drop comments
    used = set(re.findall(r"\\mcnum\{([^}]+)\}", text))
    generated = "\n".join(p.read_text() for p in (smoke_run / GEN).glob("*.tex"))
    defined = set(re.findall(r"\\mcdef\{([^}]+)\}", generated))
    assert used, "the paper should take its numbers from generated files"
    assert used <= defined, f"used but never generated: {sorted(used - defined)}"
    # main.tex reads generated/numbers.tex, which reads every family's numbers file
    index = (smoke_run / GEN / "numbers.tex").read_text()
    inputs = set(re.findall(r"\\input\{generated/([^}]+)\}", text + index))
    assert "numbers.tex" in inputs and re.findall(r"\\input\{generated/\w+_numbers.tex\}", index)
    # timings.tex (wall times of every job) is made only for the PDF, which needs LaTeX
    assert inputs - {"timings.tex"} == {p.name for p in (smoke_run / GEN).glob("*.tex")} - {"timings.tex"}


def test_second_run_does_nothing(smoke_run):
    before = {p: p.stat().st_mtime_ns for p in smoke_run.rglob("*") if p.is_file() and ".snakemake" not in p.parts}
    out = snakemake(smoke_run, "--cores", "2")
    assert "Nothing to be done" in out
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after


def test_c1_and_c2_give_byte_identical_files(smoke_run, tmp_path_factory):
    repo = smoke_copy(tmp_path_factory, "c1")
    snakemake(repo, "--cores", "1")
    one, two = produced(repo), produced(smoke_run)
    assert one.keys() == two.keys()
    # provenance records name the run's folder; timings.tex holds wall times: both legitimately differ
    differ = [name for name in one if one[name] != two[name]
              and not name.endswith(".provenance.json") and name != f"{GEN}/timings.tex"]
    assert differ == []


def test_deleting_a_figure_rebuilds_only_that_figure(smoke_run):
    (smoke_run / FIG / "gaussian_fit.pdf").unlink()
    results = {p: p.stat().st_mtime_ns for p in smoke_run.glob("results/**/*")
               if p.is_file() and "timings" not in p.parts}  # the figure rule rewrites its own timing
    out = snakemake(smoke_run, "--cores", "2", f"{FIG}/gaussian_fit.pdf")
    assert "rule gaussian_figure" in out
    for other in ("gaussian_simulate", "gaussian_summarize", "gaussian_table", "rule paper:"):
        assert other not in out
    assert (smoke_run / FIG / "gaussian_fit.pdf").exists()
    assert results == {p: p.stat().st_mtime_ns for p in results}


def test_report_has_every_figure_with_its_caption(smoke_run):
    snakemake(smoke_run, "--report", "report.html")
    html = (smoke_run / "report.html").read_text(errors="replace")
    for figure in sorted((smoke_run / FIG).glob("*.pdf")):
        assert figure.name in html, figure.name
    assert "latent means of 100 generated images" in html  # a caption rendered (vae_latent_density.rst)


def _dry_run(repo, *args) -> tuple[str, list[str]]:
    """`snakemake -n` with ARGS: its output and the output files of the jobs it would run."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", *args], cwd=repo, capture_output=True, text=True,
                         timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    files = [f.strip() for line in re.findall(r"^\s*output: (.*)$", out, flags=re.M) for f in line.split(",")]
    return out, files


def test_other_configs_never_touch_the_smoke_run(smoke_run):
    """Issue 15, finding 7: every config used to write the same results/, so a config edit (or `make
    smoke` after a paper-scale run) reran and overwrote the other run's files. Now a run of the
    default config, or of an edited copy of smoke.yaml, plans only jobs in its own folders."""
    edited = yaml.safe_load((smoke_run / "config" / "smoke.yaml").read_text())
    edited["gaussian"]["generations"] = 60
    (smoke_run / "config" / "smoke-edit.yaml").write_text(yaml.safe_dump(edited))
    for args, run in ((["--configfile", "config/smoke-edit.yaml"], "smoke-edit"), ([], "default"),
                      (["--configfile", "config/smoke.yaml", "--config", "run=other"], "other")):
        out, files = _dry_run(smoke_run, *args)
        assert files, out[-2000:]
        outside = [f for f in files if not f.startswith((f"results/{run}/", f"figures/{run}/", f"paper/{run}/"))]
        assert outside == [], outside
        assert "params have changed" not in out
    out, _ = _dry_run(smoke_run, "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in out  # the smoke run itself is untouched and complete


def test_a_config_missing_a_block_stops_before_any_job(workflow_copy):
    """Issue 15, finding 8: a block missing from --configfile was filled in from config/config.yaml,
    at full scale. Now the file is the whole config and the run stops, naming the block."""
    smoke = yaml.safe_load((workflow_copy / "config" / "smoke.yaml").read_text())
    del smoke["vae"]
    (workflow_copy / "config" / "partial.yaml").write_text(yaml.safe_dump(smoke))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/partial.yaml"],
                         cwd=workflow_copy, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "'vae' is a required property" in out and "nothing is filled in from config/config.yaml" in out


@pytest.mark.parametrize("text,words", [
    ("seed: 0\nseed: 1\n", ["config key 'seed' is given twice", "lines 1 and 2"]),
])
def test_snakemake_rejects_duplicate_keys(workflow_copy, text, words):
    """Issue 15, finding 8: Snakemake's YAML loading keeps the last of two equal keys silently."""
    smoke = (workflow_copy / "config" / "smoke.yaml").read_text()
    (workflow_copy / "config" / "dup.yaml").write_text(text + smoke.replace("seed: 0\n", ""))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/dup.yaml"],
                         cwd=workflow_copy, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    for word in words:
        assert word in out
    assert not (workflow_copy / "results").exists()


@pytest.mark.parametrize("family,regime", [
    ("gaussian", "accumulate"),
    ("discrete", {"name": "mix", "real_fraction": 0.25}),
    ("gmm", "accumulate_subsample"),
])
def test_each_family_regime_key_reaches_its_jobs(workflow_copy, family, regime):
    """`gaussian.regime` used to be checked by check-config and then dropped by its rule (the main
    Gaussian chains ran replace whatever it said). Every simulate/chain rule now passes its family's
    config block whole (`--config-json`, config_json in common.smk) and the job reads the regime
    from it: the command carries the edited block, and the job it builds runs that regime."""
    import importlib
    import json
    import shlex

    from modelcollapse import cli
    from modelcollapse.regimes import Regime

    smoke = set_key(yaml.safe_load((workflow_copy / "config" / "smoke.yaml").read_text()), f"{family}.regime", regime)
    (workflow_copy / "config" / "regime.yaml").write_text(yaml.safe_dump(smoke))
    out, _ = _dry_run(workflow_copy, "--configfile", "config/regime.yaml", "-p")
    # the family's main chains (their files sit in results/<run>/<family>/; regime comparisons and
    # the multivariate chains, in subfolders, have regime keys of their own, discrete's absorption
    # run is the replace chain its theory is about, and its verification run sets its own regimes)
    commands = [line for line in out.splitlines() if f"modelcollapse {family} simulate" in line
                and re.search(rf"--out results/regime/{family}/[^/ ]+\.npz", line)
                and "--part absorption" not in line and "--part verify" not in line]
    assert commands, out[-3000:]
    shared = {k: v for k, v in smoke.items() if not isinstance(v, dict)
              and (k != "data_dir" or family in ("vae", "lm"))} | {"run": "regime"}
    for command in commands:
        argv = shlex.split(command.split(" -m modelcollapse ", 1)[1])
        argv = argv[:argv.index(">")]
        assert json.loads(argv[argv.index("--config-json") + 1]) == shared | {family: smoke[family]}
        cfg = importlib.import_module(f"modelcollapse.commands.{family}")._job(cli.build_parser().parse_args(argv))[0]
        assert cfg.regime == Regime.from_config(regime)


@pytest.mark.parametrize("key,value,reruns,keeps", [
    ("gmm.max_iter", 1999, {"gmm_simulate", "gmm_summarize"}, ("gaussian", "discrete", "vae", "lm")),
    ("vae.epochs", 3, {"vae_chain", "vae_summarize"}, ("gaussian", "discrete", "gmm", "lm", "vae_classifier")),
    ("discrete.absorption.replicates", 400, {"discrete_simulate", "discrete_absorption_simulate"},
     ("gaussian", "gmm", "vae", "lm")),
    # data_dir reaches only the rules that read data files (config_json(..., data_dir=True))
    ("data_dir", "/tmp/modelcollapse-other-data", {"vae_chain", "lm_corpus"}, ("gaussian", "discrete", "gmm")),
])
def test_a_change_to_one_family_block_reruns_only_that_family(smoke_run, key, value, reruns, keeps):
    """Each simulate/chain rule's params are its own family's block (config_json(family)): an edit
    of that block reruns the family's jobs (params changed) and what reads them, and no job of
    another family (the VAE's classifier keeps its own narrower params)."""
    edited = set_key(yaml.safe_load((smoke_run / "config" / "smoke.yaml").read_text()), key, value)
    edited["run"] = "smoke"  # the same folders as the finished smoke run
    (smoke_run / "config" / "smoke-block.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    out, _ = _dry_run(smoke_run, "--configfile", "config/smoke-block.yaml")
    rules = set(re.findall(r"^rule (\w+):$", out, flags=re.M))
    assert reruns <= rules, out[-3000:]
    assert not [r for r in rules if r.startswith(keeps)], rules
    assert "Params have changed" in out


def test_a_change_to_one_sweep_reruns_only_its_points(smoke_run):
    """A sweep's jobs read their own sweep and family block (sweep_json), so an edit of one sweep
    replans its points, table and the phase diagram, and no point of the other sweep."""
    edited = yaml.safe_load((smoke_run / "config" / "smoke.yaml").read_text())
    edited["sweeps"]["mixing_regression"]["set"]["replicates"] = 32
    edited["run"] = "smoke"
    (smoke_run / "config" / "smoke-sweep.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    out, files = _dry_run(smoke_run, "--configfile", "config/smoke-sweep.yaml")
    points = [f for f in files if "/sweeps/" in f and "/point" in f and f.endswith(".csv")]
    assert points and all("/sweeps/mixing_regression/" in f for f in points), points
    assert f"{FIG}/phase_diagram.pdf" in files and not [f for f in files if "/regression/" in f], files


def test_readme_job_count_is_the_default_dag(workflow_copy):
    """The README's job count of the default workflow is what `snakemake -n` plans (issue 19: README
    numbers drifted from the DAG)."""
    readme = (ROOT / "README.md").read_text()
    (stated,) = re.findall(r"default\s+workflow \((\d+) jobs\)", readme)
    out, _ = _dry_run(workflow_copy, "--forceall")
    total = re.findall(r"^total\s+(\d+)$", out, flags=re.M)[0]  # the job table is printed twice
    assert int(stated) == int(total), f"README says {stated} jobs, snakemake -n plans {total}"
