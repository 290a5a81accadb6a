"""Shared fixtures: the repository root and a temporary copy of the workflow for end-to-end runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a workflow run needs from the repository (the package itself is installed in .venv).
WORKFLOW_FILES = ("Snakefile", "workflow", "profiles", "config", "paper/main.tex", "paper/refs.bib",
                  "paper/sections")


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, symlinks=False)
        else:
            shutil.copy2(src, target)
    return dest


class Killed(Exception):
    """Stands for a job killed mid-chain: raised from a chain's `log` callback."""


def kill_at(prefix: str):
    """A chain `log` callback that 'kills' the run when a line starts with `prefix`."""
    def log(line: str) -> None:
        if line.startswith(prefix):
            raise Killed
    return log


def assert_same_files(dir_a: Path, dir_b: Path, names) -> None:
    for name in names:
        assert (dir_a / name).read_bytes() == (dir_b / name).read_bytes(), name


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "repo")


@pytest.fixture(autouse=True, scope="session")
def _jax_cache(tmp_path_factory):
    # Keep the tests' compilation cache out of the user's home.
    os.environ.setdefault("MODELCOLLAPSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
