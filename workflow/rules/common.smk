# Shared set-up: validate the config before any job starts, and the target lists.
import json

from modelcollapse.config import ConfigError, check_config

try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")

# Every rule calls the package's CLI with the interpreter running Snakemake, so the
# workflow needs no activated environment.
PY = f'"{sys.executable}" -m modelcollapse'


def gaussian_results():
    g = config["gaussian"]
    return expand("results/gaussian/{estimator}_M{m}.npz", estimator=g["estimators"], m=g["sample_sizes"])


def figure_targets():
    return ["figures/gaussian_fit.pdf"]


def paper_inputs():
    return ["paper/generated/gaussian_table.tex", "paper/generated/gaussian_numbers.tex",
            "paper/generated/provenance.tex"]


def all_targets():
    targets = figure_targets() + paper_inputs() + ["results/gaussian/summary.csv"]
    if config["paper"]["build_pdf"]:
        targets.append("paper/main.pdf")
    return targets


def config_json():
    return json.dumps(config, sort_keys=True)
