"""Atomic, byte-reproducible result files and the provenance record beside each one.

Every file the project writes goes through `atomic_path`: the content is written to a
temporary file in the destination folder and renamed into place, so an interrupted job
never leaves a half-written result that Snakemake (or a reader) could mistake for a
finished one. `.npz` files are written without timestamps so that the same config and
seed give byte-identical files.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

# Packages whose versions change numbers or figures; recorded in every provenance file.
TRACKED_PACKAGES = ("modelcollapse", "jax", "jaxlib", "flax", "optax", "numpy", "scipy",
                    "matplotlib", "snakemake")
# A fixed zip timestamp (the earliest zip can store) keeps .npz bytes independent of the clock.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    started = tmp_path.stat().st_mtime
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    # A write of the same file killed earlier (kill -9) left its temporary file; once this write has
    # landed, those are garbage. Only older ones go: a newer one may be another writer's, in progress.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < started:
                stale.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def save_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """Write arrays as an uncompressed `.npz` readable by `np.load`, with no timestamps inside."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a tidy CSV; floats use repr so values survive a round trip exactly."""
    if not rows:
        raise ValueError(f"refusing to write an empty table to {path}")
    fields = list(rows[0])
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, np.integer):
        return int(v)
    return v


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def provenance_path(path: str | os.PathLike) -> Path:
    """`results/x.npz` -> `results/x.npz.provenance.json`."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def git_commit(cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit of the working tree and whether it has uncommitted changes; 'unknown' outside git."""
    cwd = Path(cwd) if cwd else Path.cwd()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True, timeout=10).stdout
        return {"commit": sha, "dirty": bool(dirty.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def jax_backend() -> dict[str, Any]:
    """Backend and devices, read only if jax is already imported (never imports it as a side effect)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return {"backend": "not used"}
    return {"backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "x64": bool(jax.config.jax_enable_x64)}


def file_sha256(path: str | os.PathLike, *, opener=open) -> str:
    """SHA-256 (hex) of the bytes `opener(path, "rb")` reads (e.g. gzip.open: the decompressed bytes)."""
    h = hashlib.sha256()
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Data files the loaders read since the last provenance record: {path: SHA-256 of its bytes}. One
# process makes one result (a CLI command), so "read since the last record" is "read to make it".
_DATA_READ: dict[str, str] = {}


def note_input(path: str | os.PathLike, sha256: str | None = None) -> None:
    """Note a data file a loader read (its SHA-256 of the file's bytes, computed if not given), so
    that the next `provenance` record lists it among the inputs."""
    _DATA_READ[str(path)] = sha256 or file_sha256(path)


def provenance(*, command: str, config: Mapping[str, Any], seed: int | None,
               inputs: Sequence[str | os.PathLike] = ()) -> dict[str, Any]:
    """The record written beside a result: what made it, from what, with which software.

    "inputs" maps every input file to its SHA-256: the `inputs` given, and every data file the
    loaders read since the last record (`note_input`; e.g. the Brown texts behind a corpus), which
    this call then forgets. No wall-clock time is recorded, so that rerunning the same config gives
    identical records (Snakemake's `benchmark:` files keep the timings instead).
    """
    read = dict(_DATA_READ)
    _DATA_READ.clear()
    return {
        "command": command,
        "config": dict(config),
        "seed": seed,
        "inputs": read | {str(p): file_sha256(p) for p in inputs},
        "git": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "jax": jax_backend(),
    }


def write_provenance(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    write_json(provenance_path(path), record)
