"""Finding data files: a local folder, the cache, or a download, each file checked by SHA-256.

`locate` looks for every file of a data set in this order and returns the first copy found:
1. `<data_dir>/<subdir>/`, where `data_dir` is the `--data-dir` argument or `$MODELCOLLAPSE_DATA_DIR`;
2. any extra folders the loader knows (e.g. where a system package installs the data);
3. the cache, `<cache_dir>/data/<subdir>/` (`$MODELCOLLAPSE_CACHE_DIR`, default
   `~/.cache/modelcollapse`);
4. if `download` is true, each mirror in turn, written atomically into the cache.
Every copy is checked against the SHA-256 the loader publishes. A mismatch in a folder the user
owns raises `ChecksumError` and leaves the file alone; a corrupt copy in the cache is deleted and
fetched again (or reported missing offline); a corrupt download is never renamed into place.
The files returned are noted (`io.note_input`), so the provenance of every result made from them
lists them with their SHA-256.
Hashing MNIST's 50 MB takes ~0.1 s, so each file is hashed once per process: the result is kept
against its path, size and modification time.

For gzip-compressed IDX files the published checksums are of the DECOMPRESSED bytes (the mirrors
serve the same images but compress them differently), hence `checksum_of="decompressed"`.

`stable_permutation` gives the fixed orderings behind every split the loaders define: a splitmix64
hash of (seed, index), pure integer arithmetic, so a split never changes with the numpy version.
"""

from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelcollapse import io
from modelcollapse.io import atomic_path
from modelcollapse.runtime import cache_dir

ENV_VAR = "MODELCOLLAPSE_DATA_DIR"
CHECKSUM_OF = ("file", "decompressed")
# Seconds to wait on a silent connection; a slow but live download is not cut off.
TIMEOUT_S = 60.0

# (resolved path, size, mtime_ns, checksum_of) -> hex digest, for files already hashed this process.
_DIGESTS: dict[tuple[str, int, int, str], str] = {}


class DataNotFoundError(FileNotFoundError):
    """A data file is in none of the places searched and could not be downloaded."""


class ChecksumError(ValueError):
    """A data file's SHA-256 differs from the published one."""


class DataFormatError(ValueError):
    """A data file (named in the message) is not in the format its data set uses: corrupt or another file."""


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user's data folder: `explicit` (the `--data-dir` argument), else `$MODELCOLLAPSE_DATA_DIR`."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else None


_data_dir = data_dir  # `locate`'s argument of the same name hides the function there


def data_cache_dir() -> Path:
    """Where downloads go: `<cache_dir>/data` (honours `$MODELCOLLAPSE_CACHE_DIR`)."""
    return cache_dir() / "data"


def sha256(path: str | os.PathLike, *, checksum_of: str = "file") -> str:
    """SHA-256 (hex) of a file's bytes, or of its gunzipped bytes; memoised per (path, size, mtime)."""
    if checksum_of not in CHECKSUM_OF:
        raise ValueError(f"checksum_of must be one of {CHECKSUM_OF}, got {checksum_of!r}")
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, checksum_of)
    if key not in _DIGESTS:
        _DIGESTS[key] = io.file_sha256(path, opener=gzip.open if checksum_of == "decompressed" else open)
    return _DIGESTS[key]


def verify(path: str | os.PathLike, expected: str, *, checksum_of: str = "file") -> None:
    """Raise `ChecksumError` (naming the file, expected and actual digests) unless they match."""
    try:
        got = sha256(path, checksum_of=checksum_of)
    except (OSError, EOFError, gzip.BadGzipFile) as err:  # a truncated .gz fails while reading
        raise ChecksumError(f"{path}: cannot read it to check its SHA-256 ({err}); "
                            f"the file is corrupt or incomplete") from None
    if got != expected.lower():
        what = "the decompressed bytes of " if checksum_of == "decompressed" else ""
        raise ChecksumError(f"checksum mismatch for {what}{path}: expected SHA-256 {expected}, got {got}. "
                            f"The file is corrupt, incomplete or a different version; replace it.")


def locate(dataset: str, files: Mapping[str, str], *, subdir: str,
           data_dir: str | os.PathLike | None = None,
           urls: Mapping[str, Sequence[str]] | None = None, download: bool = True,
           checksum_of: str = "file", extra_dirs: Sequence[str | os.PathLike] = (),
           timeout: float = TIMEOUT_S) -> dict[str, Path]:
    """Find (or fetch) every file of a data set and check it; returns {file name: path}.

    dataset: the name used in messages ('mnist'). files: {file name: SHA-256 hex}. subdir: the
    folder under the data and cache directories. urls: {file name: [mirror URLs, tried in order]}.
    extra_dirs: further folders searched after the data directory (same file names).
    Raises DataNotFoundError naming every place searched, the mirrors tried and where to put the
    files; ChecksumError for a corrupt copy in a user folder or from every mirror.
    """
    if not files:
        raise ValueError("files must name at least one file")
    if checksum_of not in CHECKSUM_OF:
        raise ValueError(f"checksum_of must be one of {CHECKSUM_OF}, got {checksum_of!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    urls = urls or {}
    root = _data_dir(data_dir)
    user_dirs = ([root / subdir] if root is not None else []) + [Path(d) for d in extra_dirs]
    cache = data_cache_dir() / subdir

    found: dict[str, Path] = {}
    attempts: dict[str, list[str]] = {}
    for name, expected in files.items():
        path = _find(name, expected, user_dirs, cache, checksum_of)
        if path is None and download:
            path, attempts[name] = _download(name, expected, urls.get(name, ()), cache, checksum_of, timeout)
        if path is not None:
            found[name] = path
    missing = [name for name in files if name not in found]
    if missing:
        raise DataNotFoundError(_not_found_message(dataset, missing, subdir=subdir, root=root,
                                                   user_dirs=user_dirs, cache=cache, urls=urls,
                                                   attempts=attempts, download=download))
    for path in found.values():  # for the provenance of what is made from them (io.provenance)
        io.note_input(path, sha256(path))
    return found


def _find(name: str, expected: str, user_dirs: Sequence[Path], cache: Path, checksum_of: str) -> Path | None:
    for folder in user_dirs:
        path = folder / name
        if path.is_file():
            verify(path, expected, checksum_of=checksum_of)  # the user's file: report, never delete
            return path
    path = cache / name
    if path.is_file():
        try:
            verify(path, expected, checksum_of=checksum_of)
            return path
        except ChecksumError as err:
            # The cache is ours: a corrupt copy is removed so that it cannot be read again.
            warnings.warn(f"{err} Deleted the cached copy.", stacklevel=3)
            path.unlink(missing_ok=True)
    return None


def _download(name: str, expected: str, mirrors: Sequence[str], cache: Path, checksum_of: str,
              timeout: float) -> tuple[Path | None, list[str]]:
    """Try each mirror; the first whose bytes pass the checksum is renamed into the cache."""
    log = []
    mismatches = []
    dest = cache / name
    for url in mirrors:
        try:
            with atomic_path(dest) as tmp:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out, 1 << 20)
                verify(tmp, expected, checksum_of=checksum_of)  # raising here discards tmp
            return dest, log + [f"{url}: ok"]
        except ChecksumError as err:
            mismatches.append(f"{url}: {err}")
            log.append(f"{url}: checksum mismatch")
        except (OSError, urllib.error.URLError, ValueError) as err:
            log.append(f"{url}: {type(err).__name__}: {err}")
    if mismatches:
        raise ChecksumError(f"every copy of {name} that downloaded failed its checksum:\n  "
                            + "\n  ".join(mismatches))
    return None, log


def _not_found_message(dataset, missing, *, subdir, root, user_dirs, cache, urls, attempts, download) -> str:
    lines = [f"data set {dataset!r}: {len(missing)} file(s) not found: {', '.join(missing)}",
             "Searched:"]
    if root is None:
        lines.append(f"  (no data directory: neither --data-dir nor ${ENV_VAR} is set)")
    lines += [f"  {d}" for d in user_dirs] + [f"  {cache}  (download cache)"]
    if not download:
        lines.append("Mirrors: not tried (download=False / offline).")
    else:
        tried = [f"  {line}" for name in missing for line in attempts.get(name, [])]
        lines += ["Mirrors tried:"] + (tried or ["  (none known for these files)"])
    target = root / subdir if root is not None else Path("<DATA>") / subdir
    example = f"{target}/{missing[0]}"
    lines += [f"To fix: put the files in {target}/ (e.g. {example}) and point ${ENV_VAR} "
              f"(or --data-dir) at {root if root is not None else '<DATA>'}; or place them in {cache}/."]
    known = [u for name in missing for u in urls.get(name, ())[:1]]
    if known:
        lines.append("They can be fetched from e.g. " + ", ".join(known))
    return "\n".join(lines)


def stable_permutation(n: int, *, seed: int) -> np.ndarray:
    """A permutation of range(n) fixed by `seed` for all time: argsort of splitmix64(seed, index).

    Returns int64 [n]. Independent of numpy's random streams (which may change between versions),
    so the splits built on it never move.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    index = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        keys = _mix64(_mix64(np.uint64(seed)) + index * np.uint64(0x9E3779B97F4A7C15))
    return np.argsort(keys, kind="stable").astype(np.int64)


def _mix64(z):
    """splitmix64's finaliser (Steele, Lea & Flood 2014): a bijection of uint64 with full avalanche."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
