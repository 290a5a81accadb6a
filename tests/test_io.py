"""Atomic writes, byte-reproducible .npz, CSV round trips and provenance records."""

import json

import numpy as np
import pytest

from modelcollapse import io


def test_npz_round_trip_and_identical_bytes(tmp_path):
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.int64(7), "s": np.str_("mle")}
    io.save_npz(tmp_path / "x.npz", arrays)
    io.save_npz(tmp_path / "y.npz", arrays)
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "y.npz").read_bytes()
    back = io.load_npz(tmp_path / "x.npz")
    np.testing.assert_array_equal(back["b"], arrays["b"])
    assert back["b"].dtype == np.float32 and int(back["a"]) == 7 and str(back["s"]) == "mle"


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "out" / "result.npz"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_previous_version(tmp_path):
    target = tmp_path / "t.txt"
    io.write_text(target, "old")
    with pytest.raises(ValueError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("new")
            raise ValueError
    assert target.read_text() == "old"


def test_csv_round_trip_keeps_floats_exact(tmp_path):
    rows = [{"estimator": "mle", "generation": 3, "value": 0.1 + 0.2}, {"estimator": "u", "generation": 4,
                                                                        "value": np.float32(1e-7)}]
    io.write_csv(tmp_path / "t.csv", rows)
    back = io.read_csv(tmp_path / "t.csv")
    assert float(back[0]["value"]) == 0.1 + 0.2
    assert float(back[1]["value"]) == float(np.float32(1e-7))
    with pytest.raises(ValueError, match="empty"):
        io.write_csv(tmp_path / "e.csv", [])


def test_provenance_record_has_what_a_reader_needs(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("data")
    record = io.provenance(command="python -m modelcollapse x", config={"m": 3}, seed=5, inputs=[src])
    for key in ("command", "config", "seed", "git", "packages", "python", "platform", "jax", "inputs"):
        assert key in record
    assert record["inputs"][str(src)] == io.file_sha256(src)
    assert record["packages"]["numpy"] == np.__version__
    io.write_provenance(tmp_path / "r.npz", record)
    assert json.loads((tmp_path / "r.npz.provenance.json").read_text())["seed"] == 5


def test_a_landed_write_removes_temporaries_of_killed_writes_but_not_newer_ones(tmp_path):
    """Issue 15, finding 8: a save killed by kill -9 leaves `.<name>.<random>.tmp` beside the result,
    which no rerun removed. The next write of that file removes the older ones; a newer one may be a
    live writer's and stays."""
    import os
    import time

    target = tmp_path / "chain0.npz"
    stale = tmp_path / ".chain0.npz.abc123.tmp"
    live = tmp_path / ".chain0.npz.def456.tmp"
    other = tmp_path / ".summary.csv.abc123.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    future = time.time() + 3600
    os.utime(live, (future, future))
    io.save_npz(target, {"x": np.arange(3)})
    assert not stale.exists()
    assert live.exists() and other.exists()  # another file's temporaries are not this write's business
    assert np.array_equal(io.load_npz(target)["x"], np.arange(3))
