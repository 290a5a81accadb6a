"""Real-data loaders verify the files they read and record them (issue 15, finding 2).

Brown is a fixed set of files (NLTK's 500 texts and cats.txt), so it is checked against a SHA-256
manifest; a copy in Brown's layout that is not Brown itself (checksums=None) still gets format
checks. Every file a loader reads is listed, with its SHA-256, in the provenance of what is made
from it (`lm corpus` recorded "inputs": {} before).
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import real_data_dir
from modelcollapse import io
from modelcollapse.datasets import fetch, text


@pytest.fixture
def brown_copy(tmp_path):
    """A private copy of the real Brown corpus (tests damage it), under tmp_path/data/brown."""
    root = real_data_dir("brown")
    dest = tmp_path / "data" / "brown"
    shutil.copytree(root / "brown", dest)
    io.provenance(command="", config={}, seed=None)  # forget files other tests' loaders noted
    return dest


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


def _empty(path):
    path.write_bytes(b"")


def _one_word_added(path):
    """Still well-formed (a tagged text, or cats.txt with a plausible line): only the checksum sees it."""
    content = path.read_text("ascii")
    path.write_text(content + "cs01 news\n" if path.name == "cats.txt" else content.replace("\t", "\tthe/at ", 1))


@pytest.mark.parametrize("damage", [_random_bytes, _empty, _one_word_added])
@pytest.mark.parametrize("name", ["ca01", "cr09", "cats.txt"])
def test_damaged_brown_file_is_an_error_naming_it(brown_copy, damage, name):
    damage(brown_copy / name)
    with pytest.raises(fetch.ChecksumError) as err:
        text.load_brown(data_dir=brown_copy.parent)
    message = str(err.value)
    assert f"{name} (" in message and str(brown_copy) in message
    assert ("empty" in message) == (damage is _empty)


def test_intact_brown_loads_and_is_recorded_with_hashes(brown_copy):
    docs = text.load_brown(data_dir=brown_copy.parent)
    assert len(docs) == 500
    record = io.provenance(command="test", config={}, seed=0)
    assert len(record["inputs"]) == 501
    assert record["inputs"][str(brown_copy / "ca01")] == io.file_sha256(brown_copy / "ca01")
    assert record["inputs"][str(brown_copy / "cats.txt")] == text.BROWN_FILES["cats.txt"]
    assert io.provenance(command="test", config={}, seed=0)["inputs"] == {}  # noted once, for one record


def _fake_brown(folder):
    folder.mkdir(parents=True)
    (folder / "cats.txt").write_text("ca01 news\ncb01 editorial\n")
    (folder / "ca01").write_text("\n\n\tA/at dog/nn ./.\n")
    (folder / "cb01").write_text("\n\n\tWe/ppss think/vb so/rb !/.\n")
    return folder


@pytest.mark.parametrize("content, match", [
    (b"", "cb01 is empty"),
    (b" \n\t\n", "cb01 is empty"),
    (np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes(), "cb01: byte .* is not ASCII"),
    (b"We think so !\n", r"cb01: token 'We' is not 'word/tag'"),
])
def test_brown_layout_without_checksums_still_gets_format_checks(tmp_path, content, match):
    folder = _fake_brown(tmp_path / "brown")
    (folder / "cb01").write_bytes(content)
    with pytest.raises(fetch.DataFormatError, match=match):
        text.load_brown(data_dir=tmp_path, checksums=None)


def test_brown_cats_without_genres_is_a_format_error(tmp_path):
    folder = _fake_brown(tmp_path / "brown")
    (folder / "cats.txt").write_bytes(b"ca01\n")
    with pytest.raises(fetch.DataFormatError, match="cats.txt, line 1"):
        text.load_brown(data_dir=tmp_path, checksums=None)


def test_mnist_files_are_recorded_in_provenance():
    root = real_data_dir("mnist")
    from modelcollapse.datasets.images import load_images

    io.provenance(command="", config={}, seed=None)
    load_images("mnist", split="test", data_dir=root, download=False)
    inputs = io.provenance(command="test", config={}, seed=0)["inputs"]
    names = sorted(p.rsplit("/", 1)[1] for p in inputs)
    assert names == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert all(sha == io.file_sha256(p) for p, sha in inputs.items())


def _corpus_cli(tmp_path, data_dir):
    config = yaml.safe_load(open("config/smoke.yaml"))
    config["data_dir"] = str(data_dir)
    config["lm"]["corpus"] = {"name": "brown", "block_size": 16, "tokenizer": "byte"}  # smoke model: context 32
    del config["lm"]["verify"]  # a real corpus has no truth to verify against
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "corpus.npz"
    result = subprocess.run([sys.executable, "-m", "modelcollapse", "lm", "corpus", "--config", str(path),
                             "--out", str(out)], capture_output=True, text=True, timeout=600)
    return result, out


def test_lm_corpus_records_the_brown_files_and_rejects_a_corrupt_one(brown_copy, tmp_path):
    result, out = _corpus_cli(tmp_path, brown_copy.parent)
    assert result.returncode == 0, result.stderr
    inputs = json.loads(io.provenance_path(out).read_text())["inputs"]
    assert len(inputs) == 501 and inputs[str(brown_copy / "ca01")] == io.file_sha256(brown_copy / "ca01")
    _random_bytes(brown_copy / "ca01")
    out.unlink()
    result, out = _corpus_cli(tmp_path, brown_copy.parent)
    assert result.returncode != 0 and not out.exists()
    assert "ca01" in result.stderr and "Traceback" not in result.stderr
