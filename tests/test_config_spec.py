"""Each setting is declared once (issue 19): a family's schema block names its config class
(`x-config-class`), whose knob fields (modelcollapse.knobs) give the block's settings; the schema
file keeps only the keys that are not settings (lists of jobs, sub-blocks, the regime). These tests
hold for every family found by its schema file, so a new family needs no entry here."""

import dataclasses
import importlib

import pytest
import yaml

from modelcollapse import config, knobs
from modelcollapse.config import ConfigError
from modelcollapse.regimes import INDEX0

FAMILIES = config.families()


def _raw_block(family):
    text = importlib.resources.files("modelcollapse").joinpath(f"schemas/{family}.yaml").read_text()
    return yaml.safe_load(text)[family]


def config_class(family):
    return knobs.config_class(_raw_block(family)["x-config-class"])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_block_names_its_config_class_and_index_zero(family):
    cls = config_class(family)
    assert dataclasses.is_dataclass(cls) and knobs.knobs(cls, block=True)
    assert cls.INDEX0 in INDEX0


@pytest.mark.parametrize("family", FAMILIES)
def test_a_setting_is_declared_once(family):
    # The file declares no knob again, and every block knob is a key of the block's schema.
    raw = set(_raw_block(family).get("properties", {}))
    block_knobs = {f.name for f in knobs.knobs(config_class(family), block=True)}
    assert not raw & block_knobs
    assert block_knobs <= set(config.schema()["properties"][family]["properties"])
    with pytest.raises(ValueError, match="declares knobs again"):
        knobs.block_schema(_raw_block(family) | {"properties": {next(iter(block_knobs)): {"type": "integer"}}})


@pytest.mark.parametrize("family", FAMILIES)
def test_a_field_is_a_knob_or_a_part(family):
    # A field a config cannot set is a part built from the block (the regime, a nested config).
    for field in dataclasses.fields(config_class(family)):
        if "knob" not in field.metadata:
            assert "Regime" in str(field.type) or "Config" in str(field.type), field.name


def _bad_values(schema):
    """Values the knob's schema refuses: past each bound, off its enum."""
    if "enum" in schema:
        yield "no-such-choice"
    for key, step in (("minimum", -1), ("maximum", 1), ("exclusiveMinimum", 0), ("exclusiveMaximum", 0)):
        if key in schema:
            yield schema[key] + step


@pytest.mark.parametrize("family", FAMILIES)
def test_check_config_refuses_what_each_knob_refuses_and_names_the_key(family):
    base = config.load_config("config/smoke.yaml")
    cls = config_class(family)
    tried = 0
    for field in knobs.knobs(cls, block=True):
        for bad in _bad_values(knobs.schema_of(field)):
            changed = base | {family: base[family] | {field.name: bad}}
            with pytest.raises(ConfigError, match=rf"'{family}\.{field.name}'") as err:
                config.check_config(changed)
            assert "Additional properties" not in str(err.value)
            tried += 1
    assert tried >= 3


def test_the_flags_of_a_family_are_its_knobs():
    from modelcollapse import cli

    parser = cli.build_parser()
    for family, step, config_path in (("gmm", "simulate", "modelcollapse.gmm.spec:GMMConfig"),
                                      ("discrete", "simulate", "modelcollapse.discrete:DiscreteConfig"),
                                      ("gaussian", "simulate", "modelcollapse.gaussian:GaussianConfig"),
                                      ("vae", "chain", "modelcollapse.vae.experiment:VAEConfig")):
        args = parser.parse_args([family, step, "--out", "x.npz"] + (["--chain", "0", "--classifier", "c.npz"]
                                                                      if family == "vae" else []))
        for field in knobs.knobs(knobs.config_class(config_path)):
            assert getattr(args, field.name) == (None if field.default is dataclasses.MISSING else field.default)


def test_a_knob_normalises_what_it_stores():
    from modelcollapse import gmm

    cfg = gmm.GMMConfig(sample_size=10.0, generations=2, replicates=3, snapshots=[0, 1], tol=0)
    assert (cfg.sample_size, cfg.snapshots, cfg.tol) == (10, (0, 1), 0.0)
    assert type(cfg.sample_size) is int and type(cfg.tol) is float
    with pytest.raises(ValueError, match=r"snapshots\[1\] must be an integer >= 0, got -1"):
        gmm.GMMConfig(sample_size=10, generations=2, replicates=3, snapshots=[0, -1])
    with pytest.raises(ValueError, match="tol must be a number >= 0"):
        gmm.GMMConfig(sample_size=10, generations=2, replicates=3, tol=float("nan"))


def test_config_schema_prints_a_block_whole_with_its_knobs(capsys):
    from modelcollapse import cli

    assert cli.main(["config-schema", "--block", "regression"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == config.schema()["properties"]["regression"]
    assert {"dim", "noise", "regimes"} <= set(printed["properties"])
    assert cli.main(["config-schema", "--block", "no_such_key"]) == 2
