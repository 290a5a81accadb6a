"""Shared fixtures: the repository root and a temporary copy of the workflow for end-to-end runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
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


HAVE_LATEX = shutil.which("latexmk") is not None


def smoke_copy(tmp_path_factory, name: str) -> Path:
    """A fresh copy of the workflow for a smoke run; without LaTeX everything but the PDF is built."""
    import yaml

    repo = copy_workflow(tmp_path_factory.mktemp(name))
    if not HAVE_LATEX:
        smoke = repo / "config" / "smoke.yaml"
        config = yaml.safe_load(smoke.read_text())
        config["paper"]["build_pdf"] = False
        smoke.write_text(yaml.safe_dump(config))
    return repo


def run_smoke(cwd, *args) -> str:
    """`snakemake --configfile config/smoke.yaml ARGS` in `cwd`; asserts success, returns its output."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "snakemake", "--configfile", "config/smoke.yaml", *args],
                         cwd=cwd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def produced(repo: Path) -> dict[str, bytes]:
    """What a run wrote for a reader (results, generated paper inputs, figure PNGs), by path; the
    wall-time records excepted."""
    files = [*repo.glob("results/**/*"), *repo.glob("paper/*/generated/*"), *repo.glob("figures/*/*.png")]
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(files)
            if p.is_file() and "timings" not in p.parts}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The smoke workflow run locally on 2 cores, once per session: the end-to-end tests read it and
    the Slurm test compares its cluster run with it."""
    repo = smoke_copy(tmp_path_factory, "c2")
    run_smoke(repo, "--cores", "2")
    return repo


DELETE = object()  # set_key's value that removes the key


def set_key(config: dict, dotted: str, value) -> dict:
    """config with the key at `dotted` (e.g. 'lm.optimizer.learning_rate') set to `value`, or removed
    when value is DELETE; changes `config` in place and returns it."""
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return config


def smoke_config_refuses(edit, match: str) -> None:
    """check_config refuses config/smoke.yaml after `edit(config)`, with a ConfigError matching `match`."""
    from modelcollapse.config import ConfigError, check_config, read_yaml

    config = read_yaml(ROOT / "config" / "smoke.yaml")
    edit(config)
    with pytest.raises(ConfigError, match=match):
        check_config(config)


LM_BLOCK = 8  # tokens per block of the tiny synthetic corpus below


@pytest.fixture(scope="module")
def corpus():
    """A tiny synthetic-language corpus for LM chain tests: (CorpusConfig, built corpus)."""
    from modelcollapse.lm.corpus import CorpusConfig, build

    cfg = CorpusConfig(name="synthetic", block_size=LM_BLOCK, vocab_size=24, n_successors=4,
                       train_tokens=24 * LM_BLOCK, validation_tokens=8 * LM_BLOCK, test_tokens=8 * LM_BLOCK,
                       pretrain_tokens=8 * LM_BLOCK)
    return cfg, build(cfg, seed=3)


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


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_functions():
    # Every compiled XLA executable holds memory mappings; one process running the whole suite
    # compiled enough of them to pass the kernel's vm.max_map_count (65530) and segfault inside
    # XLA's compiler. Dropping JAX's caches after each module frees them (no test shares a
    # compilation across modules).
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


def chisquare_pvalue(observed, expected) -> float:
    """Pearson's chi-square p-value with the cells expected below 5 pooled into one: the chi-square
    approximation needs about 5 expected per cell, and one draw in a cell expected 0.05 would
    otherwise fail a correct sampler far more often than the test's level."""
    from scipy import stats

    o, e = np.asarray(observed, np.float64).ravel(), np.asarray(expected, np.float64).ravel()
    small = e < 5
    if small.any():
        o, e = np.append(o[~small], o[small].sum()), np.append(e[~small], e[small].sum())
    return float(stats.chisquare(o, e * o.sum() / e.sum()).pvalue)


# ../shared/data (MNIST, Brown, GPT-2's BPE files) as CI provides it; read at import, before any
# test's monkeypatch unsets the variable.
REAL_DATA = os.environ.get("MODELCOLLAPSE_DATA_DIR")


def real_data_dir(sub: str) -> Path:
    """The real-data root if it has `sub`/, else skip the test saying how to provide it."""
    if not REAL_DATA or not (Path(REAL_DATA) / sub).is_dir():
        pytest.skip(f"real data not available: set MODELCOLLAPSE_DATA_DIR to a folder with {sub}/ "
                    f"(CI: ../shared/data)")
    return Path(REAL_DATA)
