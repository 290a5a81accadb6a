"""Packaging: conda's environment.yml asks for what pyproject.toml declares; README commands exist."""

import re
import tomllib

import yaml

from conftest import ROOT

# conda-forge names that differ from PyPI names, and entries that are not Python packages.
CONDA_ONLY = {"python", "pip", "latexmk"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _spec(requirement: str) -> str:
    return re.sub(r"\[.*?\]", "", requirement).replace(" ", "").lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r): _spec(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda_specs = {_name(d): _spec(d) for d in conda if _name(d) not in CONDA_ONLY}
    assert conda_specs == declared
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section


def test_readme_opens_with_the_two_make_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in first_block.splitlines() if line.strip() and not line.startswith("#")]
    assert commands == ["make reproduce", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^reproduce:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_schema_in_workflow_folder_is_the_packaged_one():
    linked = (ROOT / "workflow" / "schemas" / "config.schema.yaml").resolve()
    assert linked == (ROOT / "src" / "modelcollapse" / "config.schema.yaml").resolve()
    families = (ROOT / "workflow" / "schemas" / "families").resolve()
    assert families == (ROOT / "src" / "modelcollapse" / "schemas").resolve()


def test_every_family_has_its_schema_block_rules_file_and_commands():
    # A family is found by its files (config.schema(), the Snakefile, cli.families), so each
    # family's three files must exist together.
    from modelcollapse import cli, config

    blocks = {p.stem for p in (ROOT / "src" / "modelcollapse" / "schemas").glob("*.yaml")}
    # sweep.smk runs grids over any family (its block lives in config.schema.yaml): not a family
    rules = {p.stem for p in (ROOT / "workflow" / "rules").glob("*.smk")} - {"common", "paper", "sweep"}
    assert blocks == rules and blocks <= set(cli.families())
    assert blocks <= set(config.schema()["required"])
    # and check-config reaches each block through its commands module (one check per fact, found by name)
    import importlib
    assert config.families() == sorted(blocks)
    assert all(callable(getattr(importlib.import_module(f"modelcollapse.commands.{f}"), "check_block", None))
               for f in blocks)
