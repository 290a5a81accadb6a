"""The shipped configs have one shape (issue 19): config/smoke.yaml, paper.yaml and brown.yaml give every
key config/config.yaml gives, block by block, and config.yaml gives every key the schema declares,
so a block or key missing from a variant is caught here instead of failing (or, in older
versions, running at full size) in the middle of a run.

Keys are compared where the schema declares a mapping of named keys (`properties`); a value that
may be a name or a mapping (a regime) and list items (lm.regimes) are values, left to the schema.
"""

import pytest
import yaml

from conftest import ROOT
from modelcollapse.config import schema

VARIANTS = ("smoke.yaml", "paper.yaml", "brown.yaml")

# Keys a variant may leave out or add on purpose, each with its reason: {file: {dotted key: why}}.
# Empty: every variant is complete. Add an entry here (and a comment in the YAML) for a real override.
OVERRIDES: dict[str, dict[str, str]] = {name: {} for name in VARIANTS}
# Their corpora are real (wikitext-2, Brown): no truth for lm.verify's verifier to judge against.
for _name in ("paper.yaml", "brown.yaml"):
    OVERRIDES[_name] |= {key: "a real corpus has no truth to verify against" for key in
                         ("lm.verify", "lm.verify.chains", "lm.verify.compare", "lm.verify.regimes")}

# Schema keys that config.yaml leaves unset on purpose (both are optional and default to null).
OPTIONAL = {
    "run": "the run's folder name; unset means the config file's name",
    "data_dir": "real data sets' folder; unset reads $MODELCOLLAPSE_DATA_DIR, then the cache",
}


def _resolve(node, root):
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), ref
        node = {**root["$defs"][ref.split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_keys(node=None, root=None, prefix="") -> set[str]:
    """Every dotted key the schema declares inside mappings of named keys."""
    root = root or schema()
    node = _resolve(node if node is not None else root, root)
    keys = set()
    for name, child in node.get("properties", {}).items():
        dotted = f"{prefix}.{name}" if prefix else name
        keys.add(dotted)
        keys |= schema_keys(child, root, dotted)
    return keys


def config_keys(config, node=None, root=None, prefix="") -> set[str]:
    """Every dotted key a config gives, descending where the schema declares named keys."""
    root = root or schema()
    node = _resolve(node if node is not None else root, root)
    keys = set()
    properties = node.get("properties", {})
    if not properties or not isinstance(config, dict):
        return keys
    for name, value in config.items():
        dotted = f"{prefix}.{name}" if prefix else name
        keys.add(dotted)
        if name in properties:
            keys |= config_keys(value, properties[name], root, dotted)
    return keys


def _load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text(encoding="utf-8"))


def test_config_yaml_gives_every_key_the_schema_declares():
    declared, given = schema_keys(), config_keys(_load("config.yaml"))
    assert given <= declared, f"keys the schema does not declare: {sorted(given - declared)}"
    assert declared - given == set(OPTIONAL), f"schema keys config.yaml lacks: {sorted(declared - given - set(OPTIONAL))}"


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_have_the_key_tree_of_config_yaml(name):
    reference, variant = config_keys(_load("config.yaml")), config_keys(_load(name))
    allowed = set(OVERRIDES[name])
    missing, extra = reference - variant - allowed, variant - reference - allowed
    blocks = sorted({key.split(".")[0] for key in missing | extra})
    assert not missing and not extra, (f"config/{name} differs from config/config.yaml in block(s) {blocks}: "
                                       f"missing {sorted(missing)}, extra {sorted(extra)}; add the keys, or "
                                       f"list a deliberate override in OVERRIDES with its reason")


def test_the_comparison_sees_a_missing_nested_key():
    config = _load("smoke.yaml")
    del config["gaussian"]["multivariate"]["correlation"]
    del config["vae"]["classifier"]["epochs"]
    missing = config_keys(_load("smoke.yaml")) - config_keys(config)
    assert missing == {"gaussian.multivariate.correlation", "vae.classifier.epochs"}
