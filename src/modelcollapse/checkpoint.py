"""Checkpoints of pytrees (an `nnx.state`, an optax state, metrics) as one timestamp-free `.npz`.

A checkpoint holds several named pytrees and a JSON metadata record. Leaves are stored under
their tree path (`model/encoder/kernel/value`), so a checkpoint is readable with plain
`np.load` and a restore checks that the stored paths match the tree it is restored into:
a model built with other sizes fails with a message naming the first differing leaf, instead
of silently loading the wrong shapes. Files are written atomically (`modelcollapse.io`), so a
job killed mid-save leaves the previous checkpoint intact, which is what resuming relies on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from modelcollapse import io

_META = "__meta__"
_KEY_SUFFIX = "@prng_key"  # typed PRNG keys are stored as their raw key data


def _path_name(path) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def _flatten(name: str, tree: Any) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = f"{name}/{_path_name(path)}" if path else name
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            flat[key + _KEY_SUFFIX] = np.asarray(jax.random.key_data(leaf))
        else:
            flat[key] = np.asarray(leaf)
    return flat


def save(path: str | os.PathLike, trees: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
    """Write the named pytrees and a JSON-able `meta` record to `path` (.npz) atomically."""
    arrays: dict[str, np.ndarray] = {}
    for name, tree in trees.items():
        if "/" in name or name == _META:
            raise ValueError(f"checkpoint tree name {name!r} must not contain '/' or be {_META!r}")
        arrays.update(_flatten(name, tree))
    text = json.dumps(dict(meta or {}), sort_keys=True, default=io._json_default)
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    io.save_npz(path, arrays)


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return json.loads(bytes(data[_META]).decode("utf-8"))


def load(path: str | os.PathLike, like: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore the pytrees named in `like` (templates with the right structure, e.g. from
    `nnx.eval_shape`) from `path`, the file read once; returns (trees, meta). A template None
    gives that tree's leaves as a flat dict {leaf path: array} (e.g. per-generation metrics).
    Raises ValueError naming the file and the first leaf whose path or shape differs."""
    stored = io.load_npz(path)
    meta = json.loads(bytes(stored.pop(_META)).decode("utf-8"))
    trees = {}
    for name, template in like.items():
        if template is None:
            trees[name] = {k[len(name) + 1:]: v for k, v in stored.items() if k.startswith(name + "/")}
            continue
        leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(template)
        leaves = []
        for tpath, tleaf in leaves_with_paths:
            key = f"{name}/{_path_name(tpath)}" if tpath else name
            is_key = jax.dtypes.issubdtype(getattr(tleaf, "dtype", np.float32), jax.dtypes.prng_key)
            if is_key:
                if key + _KEY_SUFFIX not in stored:
                    raise ValueError(f"checkpoint {path}: no leaf {key!r} (was it saved from another model?)")
                leaves.append(jax.random.wrap_key_data(stored[key + _KEY_SUFFIX]))
                continue
            if key not in stored:
                raise ValueError(f"checkpoint {path}: no leaf {key!r} (was it saved from another model?)")
            value = stored[key]
            shape = tuple(getattr(tleaf, "shape", np.shape(tleaf)))
            if value.shape != shape:
                raise ValueError(f"checkpoint {path}: leaf {key!r} has shape {value.shape}, expected {shape}")
            leaves.append(value)
        trees[name] = jax.tree_util.tree_unflatten(treedef, leaves)
    return trees, meta


def latest(directory: str | os.PathLike, pattern: str = r"generation_(\d+)\.npz") -> tuple[int, Path] | None:
    """(number, path) of the highest-numbered checkpoint in `directory` matching `pattern`, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = []
    for p in directory.iterdir():
        m = re.fullmatch(pattern, p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found) if found else None


def load_flat(path: str | os.PathLike, *names: str) -> dict[str, dict[str, np.ndarray]]:
    """`load` without templates: {name: {leaf: array}} for each of `names`, the file read once."""
    return load(path, dict.fromkeys(names))[0]


def resume_point(directory: str | os.PathLike, identity: Mapping[str, Any], last: int, log=print) -> int:
    """The first generation a chain still has to run, from its `generation_NNN.npz` checkpoints.

    Resumes after the newest checkpoint if its meta `identity` (the chain's settings) equals
    `identity`; checkpoints made with other settings (a changed config) are deleted, so they can
    never be mixed into a run, and the chain starts at generation 0. `last` is the final generation.
    """
    found = latest(directory)
    if found is None:
        return 0
    wanted = json.loads(json.dumps(dict(identity), sort_keys=True, default=io._json_default))
    if load_meta(found[1]).get("identity") != wanted:
        stale = [p for p in Path(directory).iterdir() if re.fullmatch(r"generation_\d+\.npz", p.name)]
        for path in stale:
            path.unlink()
        log(f"checkpoints in {directory} were made with other settings; removed {len(stale)}, starting afresh")
        return 0
    start = min(found[0], last) + 1
    log(f"resuming after generation {start - 1} (checkpoints in {directory})")
    return start
