# Shared set-up: validate the config before any job starts; the target lists that each
# family's rules file extends (so adding a family touches no other rules file).
import glob
import re
import json

from modelcollapse.config import ConfigError, check_config

try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")

# Every rule calls the package's CLI with the interpreter running Snakemake, so the
# workflow needs no activated environment.
PY = f'"{sys.executable}" -m modelcollapse'

RESULTS = []  # summary tables a reader may want
FIGURES = []  # figures/<name>.pdf (the PNG is written beside each)
PAPER_INPUTS = ["paper/generated/provenance.tex"]  # generated .tex files that main.tex reads


def all_targets():
    targets = RESULTS + FIGURES + PAPER_INPUTS
    if config["paper"]["build_pdf"]:
        targets.append("paper/main.pdf")
    return targets


def config_json(*blocks):
    """The config as JSON for a rule's params; with `blocks`, only those blocks and the shared
    top-level keys (the non-block ones: seed, platform, data_dir), so a change elsewhere does not
    rerun the rule."""
    part = config if not blocks else {k: v for k, v in config.items() if k in blocks or not isinstance(v, dict)}
    return json.dumps(part, sort_keys=True)
