"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE"):
two zero bytes, a type code, the number of dimensions d, then d big-endian uint32 sizes, then the
values in C order, big-endian. A file is gzip-compressed iff it starts with gzip's magic 1f 8b,
whatever its name.
"""

from __future__ import annotations

import gzip as _gzip
import os
from pathlib import Path

import numpy as np

from modelcollapse.io import atomic_path

# IDX type code -> big-endian numpy dtype.
DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (raw or .gz), in native byte order, shape from the header.

    Raises ValueError naming the file for a bad magic number, an unknown type code, or a data
    section shorter (truncated download) or longer than the header's sizes say.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = _gzip.decompress(raw)
        except (EOFError, _gzip.BadGzipFile, OSError) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, "
                         f"expected 0000 + type code + rank)")
    code, ndim = raw[2], raw[3]
    if code not in DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x} (known: "
                         f"{', '.join(f'0x{c:02x}' for c in DTYPES)})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, rank {ndim} needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        problem = "truncated" if got < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {problem}: header says shape {shape} of {dtype.name} "
                         f"= {expected} data bytes, found {got}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, gzip: bool = False) -> None:
    """Write `array` (rank >= 1; uint8, int8, int16, int32, float32 or float64) as IDX, atomically.

    gzip=True compresses with a zero timestamp, so the same array gives the same bytes.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"array dtype must be one of {sorted(str(d) for d in _CODES)}, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have rank 1..255, got shape {array.shape}")
    header = bytes([0, 0, _CODES[native], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = header + np.ascontiguousarray(array, native.newbyteorder(">")).tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(_gzip.compress(body, mtime=0) if gzip else body)
