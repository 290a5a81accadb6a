"""Checkpoints of pytrees (an `nnx.state`, an optax state, metrics) as one timestamp-free `.npz`.

A checkpoint holds several named pytrees and a JSON metadata record. Leaves are stored under
their tree path (`model/encoder/kernel/value`), so a checkpoint is readable with plain
`np.load` and a restore checks that the stored paths match the tree it is restored into:
a model built with other sizes fails with a message naming the first differing leaf, instead
of silently loading the wrong shapes. Files are written atomically (`modelcollapse.io`), so a
job killed mid-save leaves the previous checkpoint intact, which is what resuming relies on.

Integrity: every checkpoint stores the SHA-256 of its own content (`__sha256__`: names, dtypes,
shapes and bytes of all other arrays), checked on every read together with zip's CRC-32, so a
truncated, emptied or bit-flipped file is a `CheckpointError` naming the file, never a wrong load.

Chains (`resume`): the checkpoints of one chain live in `<checkpoint_dir>/<key>/generation_NNN.npz`,
where `key` is a hash of the chain's identity: its settings AND the SHA-256 of every input it reads
(`fingerprint`: training data, classifier, corpus, base model). A checkpoint is therefore only ever
resumed by a run with exactly the settings and inputs that made it; a run with other settings or
inputs gets its own folder, and the other folders are kept (never deleted) until the user removes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from modelcollapse import io

_META = "__meta__"
_KEY_SUFFIX = "@prng_key"  # typed PRNG keys are stored as their raw key data
_DIGEST = "__sha256__"  # SHA-256 of all other arrays (see `_digest`), hex as uint8
GENERATION = re.compile(r"generation_(\d+)\.npz")
# What `io.atomic_path` leaves behind when a save is killed (kill -9): `.<name>.<random>.tmp`.
_STALE_TMP = re.compile(r"\.(generation_\d+\.npz|identity\.json)\..+\.tmp")
IDENTITY_FILE = "identity.json"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or fails its SHA-256: truncated, emptied, bit-flipped."""


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


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) over every array but the digest itself: name, dtype, shape and bytes, by name."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == _DIGEST:
            continue
        value = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def fingerprint(tree: Any) -> str:
    """SHA-256 (hex) of a pytree's content (leaf paths, dtypes, shapes, bytes): what a chain's
    checkpoints are keyed by besides its settings, e.g. {"train": images, "classifier": nnx.state(c)}.
    Equal content gives equal fingerprints on any machine; any changed byte gives another."""
    return _digest(_flatten("inputs", tree))


def save(path: str | os.PathLike, trees: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
    """Write the named pytrees, a JSON-able `meta` record and their SHA-256 to `path` (.npz) atomically."""
    arrays: dict[str, np.ndarray] = {}
    for name, tree in trees.items():
        if "/" in name or name in (_META, _DIGEST):
            raise ValueError(f"checkpoint tree name {name!r} must not contain '/' or be {_META!r} or {_DIGEST!r}")
        arrays.update(_flatten(name, tree))
    text = json.dumps(dict(meta or {}), sort_keys=True, default=io._json_default)
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    arrays[_DIGEST] = np.frombuffer(_digest(arrays).encode("ascii"), dtype=np.uint8)
    io.save_npz(path, arrays)


def _size(path: Path) -> str:
    try:
        return f"{path.stat().st_size:,} bytes"
    except OSError:
        return "size unknown"


def _read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a checkpoint, every byte read and checked: zip's CRC-32, then the stored
    SHA-256 (files written before it was added are only read through). Raises CheckpointError
    naming the file for anything unreadable or altered, FileNotFoundError if there is no file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        stored = io.load_npz(path)
    # A damaged zip fails in many library-specific ways (BadZipFile, EOFError, zlib.error, ValueError
    # from a .npy header, ...): each of them means "not a readable checkpoint".
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {path} is unreadable ({_size(path)}; {type(err).__name__}: {err}): "
                              f"truncated, emptied or damaged") from None
    expected = stored.pop(_DIGEST, None)
    if expected is not None and _digest(stored) != bytes(expected).decode("ascii", "replace"):
        raise CheckpointError(f"checkpoint {path} fails its SHA-256 check ({_size(path)}): its content was altered")
    try:
        meta = json.loads(bytes(stored.pop(_META)).decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"checkpoint {path} has no readable {_META} record ({type(err).__name__}: {err})") from None
    return stored, meta


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check every byte of a checkpoint (see `_read`); returns its meta record."""
    return _read(path)[1]


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The meta record of a checkpoint, the whole file checked (CheckpointError if damaged)."""
    return _read(path)[1]


def load(path: str | os.PathLike, like: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore the pytrees named in `like` (templates with the right structure, e.g. from
    `nnx.eval_shape`) from `path`, the file read once and checked; returns (trees, meta). A template
    None gives that tree's leaves as a flat dict {leaf path: array} (e.g. per-generation metrics).
    Raises CheckpointError (a ValueError) naming the file if it is damaged, ValueError naming the
    file and the first leaf whose path or shape differs."""
    stored, meta = _read(path)
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


def generation_path(folder: str | os.PathLike, generation: int) -> Path:
    return Path(folder) / f"generation_{generation:03d}.npz"


def _canonical(identity: Mapping[str, Any]) -> str:
    return json.dumps(dict(identity), sort_keys=True, default=io._json_default)


def run_folder(directory: str | os.PathLike, identity: Mapping[str, Any]) -> Path:
    """`directory/<key>`: where the chain with this identity (settings + input fingerprints) keeps
    its checkpoints; `key` is the first 16 hex digits of the SHA-256 of the identity's JSON."""
    return Path(directory) / hashlib.sha256(_canonical(identity).encode("utf-8")).hexdigest()[:16]


def resume(directory: str | os.PathLike, identity: Mapping[str, Any], last: int,
           log: Callable[[str], None] = print) -> tuple[int, Path]:
    """(first generation the chain still has to run, the folder its checkpoints go to).

    The folder is `run_folder(directory, identity)`: `identity` must hold the chain's settings and
    the fingerprints of its inputs, so checkpoints are only ever resumed by the run that made them.
    Every finished generation's file, 0, 1, ..., is checked in full (`verify`); the chain resumes
    after the last one of that unbroken run of good files. A damaged file is named in a warning and
    moved aside (`generation_NNN.npz.corrupt`), never deleted; the generations from it on are
    recomputed, to the same bytes. Checkpoints of other settings or inputs (other folders, or files
    of the layout before folders were keyed) are kept and listed in the log. Temporary files left
    by a save that was killed (`.generation_NNN.npz.*.tmp`) are removed. `last`: the final generation.
    """
    directory = Path(directory)
    wanted = json.loads(_canonical(identity))
    folder = run_folder(directory, identity)
    for where in (directory, folder):
        _remove_stale_temporaries(where, log)
    _report_others(directory, folder, log)
    start = 0
    while start <= last and generation_path(folder, start).is_file():
        path = generation_path(folder, start)
        try:
            meta = verify(path)
            if meta.get("generation") != start or meta.get("identity") != wanted:
                raise CheckpointError(f"checkpoint {path} was not written by this run (its meta names generation "
                                      f"{meta.get('generation')!r} and {'the same' if meta.get('identity') == wanted else 'another'} identity)")
        except CheckpointError as err:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            later = [g for g, _ in _generations(folder) if g > start]
            log(f"warning: {err}; moved it aside to {aside.name} and continue from generation {start}"
                + (f" (the checkpoints of generations {later[0]}-{later[-1]} are recomputed)" if later else ""))
            break
        start += 1
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / IDENTITY_FILE).is_file():  # for a reader: which settings and inputs this folder holds
        io.write_text(folder / IDENTITY_FILE, json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    if start:
        log(f"resuming after generation {start - 1} (checkpoints in {folder})")
    return start, folder


def _generations(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := GENERATION.fullmatch(p.name)))


def _remove_stale_temporaries(folder: Path, log) -> None:
    """Delete what `io.atomic_path` leaves when a save is killed; only one job runs a chain, so none
    of these can belong to a save still in progress."""
    if not folder.is_dir():
        return
    stale = [p for p in folder.iterdir() if _STALE_TMP.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log(f"removed {len(stale)} temporary file(s) left by an interrupted save in {folder}")


def _report_others(directory: Path, folder: Path, log) -> None:
    """Log (never delete) checkpoints in `directory` that this run does not use."""
    if not directory.is_dir():
        return
    others = sorted(p.name for p in directory.iterdir()
                    if p.is_dir() and p != folder and ((p / IDENTITY_FILE).is_file() or _generations(p)))
    if others:
        log(f"kept {len(others)} checkpoint folder(s) of other settings or inputs in {directory} "
            f"({', '.join(others)}; each folder's {IDENTITY_FILE} says which): not used by this run, "
            f"never deleted automatically; remove a folder to free its space")
    unkeyed = _generations(directory)
    if unkeyed:
        log(f"kept {len(unkeyed)} checkpoint(s) directly in {directory}, written before checkpoints were "
            f"keyed by settings and inputs; they are not resumed: remove them to free their space")
