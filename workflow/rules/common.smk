# Shared set-up: read and validate the config before any job starts; name the run whose folders
# every output goes to; the target lists that each family's rules file extends (so adding a
# family touches no other rules file).
import glob
import json
import os
import re

from modelcollapse.config import ConfigError, check_config, read_yaml, run_name
from modelcollapse.regimes import Regime

# `--configfile FILE` is the whole config: config/config.yaml is read only when no --configfile is
# given, so a block missing from FILE stops the run (check_config) instead of being filled in at
# full scale from the default. `--config KEY=VALUE` overrides either. Every file is re-read
# strictly first (UTF-8, no key given twice), which plain YAML loading does not check.
CONFIGFILES = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
try:
    for _file in CONFIGFILES:
        read_yaml(_file)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")

if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


try:
    check_config(config)
    RUN = run_name(config, CONFIGFILES)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")
config["run"] = RUN  # recorded in the paper's provenance appendix

# Every output of this run lives under its own folders, so runs of different configs never
# overwrite (or rerun) each other's files: config/config.yaml -> `default`, config/smoke.yaml ->
# `smoke`, config/paper.yaml -> `paper`, or the config's `run:` key.
RES = f"results/{RUN}"  # results, checkpoints, and timings/ (Snakemake benchmark files)
FIG = f"figures/{RUN}"  # figures/<run>/<name>.pdf and .png
PAPER = f"paper/{RUN}"  # generated/*.tex, main.pdf, build/ (LaTeX's scratch folder)
GEN = f"{PAPER}/generated"
LOGS = f"logs/{RUN}"
BENCH = f"{RES}/timings"

# Every rule calls the package's CLI with the interpreter running Snakemake, so the
# workflow needs no activated environment.
PY = f'"{sys.executable}" -m modelcollapse'

# What a cluster scheduler needs to place a job (workflow/profiles/slurm; a local run reads only
# `threads`): mem_mb in MB, runtime in minutes of wall time. The chains' runtimes grow with their
# generations at the paper config's CPU cost per generation (README, "Paper scale"), with room to
# spare; a GPU run needs far less. Override per rule: --set-resources vae_chain:runtime=120.
GPUS = 1 if config["platform"] == "gpu" else 0  # the neural families' jobs each take one GPU
SIMULATION = {"mem_mb": 8000, "runtime": 240}  # the vmapped chains of gaussian, discrete, gmm


# Rules that run where Snakemake runs, never through the cluster's queue (the Snakefile declares
# them after every rules file is included): figures, tables, numbers and the PDF.
LOCAL_RULES = re.compile(r"(_figure|_table|_numbers)$|^paper(_numbers|_timings)?$")


def chain_runtime(minutes_per_generation, generations):
    return 30 + minutes_per_generation * generations


RESULTS = []  # summary tables a reader may want
FIGURES = []  # figures/<run>/<name>.pdf (the PNG is written beside each)
PAPER_INPUTS = [f"{GEN}/provenance.tex"]  # generated .tex files that main.tex reads


def all_targets():
    targets = RESULTS + FIGURES + PAPER_INPUTS
    if config["paper"]["build_pdf"]:
        targets.append(f"{PAPER}/main.pdf")
    return targets


def family_rules_files():
    """workflow/rules/<family>.smk of every family, sorted: every rules file but this one and paper.smk."""
    here = os.path.join(workflow.basedir, "workflow", "rules")
    return [path for path in sorted(glob.glob(os.path.join(here, "*.smk")))
            if os.path.basename(path) not in ("common.smk", "paper.smk")]


def config_json(*blocks, data_dir=False):
    """The config as JSON for a rule's params; with `blocks`, only those blocks and the shared
    top-level keys (the non-block ones: seed, platform, run; data_dir only for rules that read data
    files, data_dir=True), so a change elsewhere does not rerun the rule."""
    part = config if not blocks else {k: v for k, v in config.items() if k in blocks or (
        not isinstance(v, dict) and (k != "data_dir" or data_dir))}
    text = json.dumps(part, sort_keys=True)
    # A function, so that Snakemake does not read `{name}` inside the config's strings (a LaTeX
    # label's \mathbb{E}) as a wildcard.
    return lambda wildcards: text
