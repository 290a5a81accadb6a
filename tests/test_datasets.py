"""Data loaders: IDX files against hand-built bytes, finding/checking/downloading files (file:// mirrors,
no network), the image sets and splits, the Brown and wikitext-2 readers on files the tests write, and
the real data in $MODELCOLLAPSE_DATA_DIR (skipped when absent) against published counts."""

import gzip
import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import real_data_dir
from modelcollapse.datasets import fetch, idx, images, text
from modelcollapse.datasets.images import ImageSet, load_images, train_validation_split

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Published class counts (LeCun's MNIST page; Xiao et al. 2017 for Fashion-MNIST: 6,000 / 1,000 per class).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    # Every test gets an empty download cache and no data directory unless it sets one.
    monkeypatch.setenv("MODELCOLLAPSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELCOLLAPSE_DATA_DIR", raising=False)


# -- IDX


def test_write_idx_bytes_match_the_format_by_hand(tmp_path):
    # LeCun's layout: 00 00, type code, rank, big-endian uint32 sizes, big-endian values.
    idx.write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 255]], np.uint8))
    assert (tmp_path / "a").read_bytes() == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    idx.write_idx(tmp_path / "b", np.array([1, -2], np.int32))
    assert (tmp_path / "b").read_bytes() == bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + b"\x00\x00\x00\x01\xff\xff\xff\xfe"


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 5, 6), (2, 1, 3, 2)])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=shape) * 100).astype(dtype)
    path = tmp_path / "x.idx"
    idx.write_idx(path, a, gzip=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    b = idx.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_idx_gzip_is_reproducible(tmp_path):
    a = np.arange(100, dtype=np.uint8).reshape(10, 10)
    idx.write_idx(tmp_path / "1.gz", a, gzip=True)
    idx.write_idx(tmp_path / "2.gz", a, gzip=True)
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b"\x01" + b[1:], "not an IDX file"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX type code 0x07"),
    (lambda b: b[:6], "truncated IDX header"),
])
def test_read_idx_rejects_damaged_files(tmp_path, damage, message):
    path = tmp_path / "x"
    idx.write_idx(path, np.ones((4, 3), np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        idx.read_idx(path)
    path.write_bytes(gzip.compress(path.read_bytes()))  # the same damage behind gzip
    with pytest.raises(ValueError, match=message):
        idx.read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        idx.write_idx(tmp_path / "x", np.ones(3, np.uint16))


# -- fetch: searching, checksums, downloads


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_mnist(folder: Path, monkeypatch, n_train=12, n_test=5):
    """Small IDX .gz files in MNIST's names; the checksum table patched to their decompressed bytes."""
    rng = np.random.default_rng(1)
    arrays = {}
    table = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_name, lab_name = images.IDX_FILES[split]
        arrays[split] = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8))
        for name, a in zip((img_name, lab_name), arrays[split]):
            idx.write_idx(folder / name, a, gzip=True)
            table[name] = _sha(gzip.decompress((folder / name).read_bytes()))
    monkeypatch.setitem(images.CHECKSUMS, "mnist", table)
    return arrays


def test_fake_mnist_folder_loads(tmp_path, monkeypatch):
    arrays = _fake_mnist(tmp_path / "data" / "mnist", monkeypatch)
    for split in ("train", "test"):
        s = load_images("mnist", split=split, data_dir=tmp_path / "data", download=False)
        pixels, labels = arrays[split]
        assert s.images.shape == (len(labels), 28, 28, 1) and s.images.dtype == np.float32
        np.testing.assert_array_equal(s.images[..., 0], pixels.astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(s.labels, labels.astype(np.int32))
        assert (s.name, s.split, len(s)) == ("mnist", split, len(labels))


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "data" / "mnist", monkeypatch)
    monkeypatch.setenv("MODELCOLLAPSE_DATA_DIR", str(tmp_path / "data"))
    assert fetch.data_dir() == tmp_path / "data"
    assert fetch.data_dir(tmp_path / "other") == tmp_path / "other"  # the argument wins
    assert len(load_images("mnist", split="test", download=False)) == 5


def test_corrupt_file_raises_checksum_error_and_is_kept(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "mnist"
    _fake_mnist(folder, monkeypatch)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    idx.write_idx(bad, np.zeros(5, np.uint8), gzip=True)  # valid IDX, wrong content
    expected = images.CHECKSUMS["mnist"][bad.name]
    with pytest.raises(fetch.ChecksumError) as err:
        load_images("mnist", split="test", data_dir=tmp_path / "data", download=False)
    got = _sha(gzip.decompress(bad.read_bytes()))
    assert str(bad) in str(err.value) and expected in str(err.value) and got in str(err.value)
    assert bad.exists()  # a user's file is reported, never deleted


def test_missing_offline_names_every_place_and_the_fix(tmp_path):
    with pytest.raises(fetch.DataNotFoundError) as err:
        load_images("mnist", split="train", data_dir=tmp_path / "data", download=False)
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for needle in ("'mnist'", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                   str(tmp_path / "data" / "mnist"), str(tmp_path / "cache" / "data" / "mnist"),
                   "download=False", "MODELCOLLAPSE_DATA_DIR", "--data-dir"):
        assert needle in msg, needle


def test_fashion_mnist_also_searches_the_debian_folder(tmp_path):
    with pytest.raises(fetch.DataNotFoundError, match="/usr/share/datasets/fashion-mnist"):
        fetch.locate("fashion_mnist", {"x": "0" * 64}, subdir="fashion_mnist", download=False,
                     extra_dirs=images.EXTRA_DIRS["fashion_mnist"])


def _mirror(folder: Path, files: dict[str, bytes]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder.as_uri() + "/"


def test_download_goes_to_the_cache_from_the_first_working_mirror(tmp_path):
    data = b"some bytes\n" * 100
    dead = (tmp_path / "nowhere").as_uri() + "/"
    live = _mirror(tmp_path / "mirror", {"f.bin": data})
    paths = fetch.locate("toy", {"f.bin": _sha(data)}, subdir="toy", urls={"f.bin": [dead + "f.bin", live + "f.bin"]})
    assert paths["f.bin"] == tmp_path / "cache" / "data" / "toy" / "f.bin"
    assert paths["f.bin"].read_bytes() == data
    # Second call: found in the cache, no mirror needed.
    assert fetch.locate("toy", {"f.bin": _sha(data)}, subdir="toy", download=False) == paths


def test_download_with_wrong_checksum_is_not_kept(tmp_path):
    live = _mirror(tmp_path / "mirror", {"f.bin": b"tampered"})
    with pytest.raises(fetch.ChecksumError, match="f.bin"):
        fetch.locate("toy", {"f.bin": _sha(b"original")}, subdir="toy", urls={"f.bin": [live + "f.bin"]})
    assert list((tmp_path / "cache" / "data" / "toy").iterdir()) == []  # no file, no temporary left


def test_all_mirrors_down_lists_them(tmp_path):
    urls = [(tmp_path / "a").as_uri() + "/f.bin", (tmp_path / "b").as_uri() + "/f.bin"]
    with pytest.raises(fetch.DataNotFoundError) as err:
        fetch.locate("toy", {"f.bin": "0" * 64}, subdir="toy", urls={"f.bin": urls})
    assert all(u in str(err.value) for u in urls)


def test_corrupt_cached_file_is_deleted_and_fetched_again(tmp_path):
    data = b"good"
    cached = tmp_path / "cache" / "data" / "toy" / "f.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"bad!")
    with pytest.warns(UserWarning, match="Deleted the cached copy"):
        with pytest.raises(fetch.DataNotFoundError):
            fetch.locate("toy", {"f.bin": _sha(data)}, subdir="toy", download=False)
    assert not cached.exists()
    cached.write_bytes(b"bad!")
    live = _mirror(tmp_path / "mirror", {"f.bin": data})
    with pytest.warns(UserWarning):
        fetch.locate("toy", {"f.bin": _sha(data)}, subdir="toy", urls={"f.bin": [live + "f.bin"]})
    assert cached.read_bytes() == data


def test_checksum_of_decompressed_bytes(tmp_path):
    payload = b"\x00\x00\x08\x01\x00\x00\x00\x03abc"
    (tmp_path / "f.gz").write_bytes(gzip.compress(payload, mtime=12345))
    assert fetch.sha256(tmp_path / "f.gz", checksum_of="decompressed") == _sha(payload)
    assert fetch.sha256(tmp_path / "f.gz") == _sha((tmp_path / "f.gz").read_bytes())
    with pytest.raises(ValueError, match="checksum_of"):
        fetch.sha256(tmp_path / "f.gz", checksum_of="gzip")


def test_checksums_are_computed_once_per_file_version(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"aaaa")
    st = path.stat()
    assert fetch.sha256(path) == _sha(b"aaaa")
    # Same size and mtime: the memo answers without reading (so a silent overwrite is not seen) ...
    path.write_bytes(b"bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fetch.sha256(path) == _sha(b"aaaa")
    # ... a new modification time makes it hash again.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert fetch.sha256(path) == _sha(b"bbbb")


def _splitmix64_reference(seed, n):
    """Keys by the textbook splitmix64 with Python integers (Steele, Lea & Flood 2014)."""
    mask = (1 << 64) - 1

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    base = mix(seed)
    return [mix((base + (i + 1) * 0x9E3779B97F4A7C15) & mask) for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 7])
def test_stable_permutation_is_splitmix64_order(seed):
    keys = _splitmix64_reference(seed, 50)
    expected = sorted(range(50), key=keys.__getitem__)
    np.testing.assert_array_equal(fetch.stable_permutation(50, seed=seed), expected)


def test_stable_permutation_seeds_differ():
    a, b = fetch.stable_permutation(1000, seed=0), fetch.stable_permutation(1000, seed=1)
    assert sorted(a) == list(range(1000)) and (a != b).mean() > 0.9


# -- image sets


def test_digits_split_sizes_stratification_and_content():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train, test = load_images("digits", split="train"), load_images("digits", split="test")
    assert (len(train), len(test)) == (1497, 300)
    assert train.images.shape[1:] == (8, 8, 1) and train.images.dtype == np.float32
    index = images.digits_split_indices()
    assert np.intersect1d(index["train"], index["test"]).size == 0
    assert np.union1d(index["train"], index["test"]).size == 1797
    np.testing.assert_array_equal(test.images[..., 0] * 16, bunch.images[index["test"]])
    np.testing.assert_array_equal(test.labels, bunch.target[index["test"]])
    # Stratified: each class's share of the test set is within one image of 300 * n_c / 1797.
    quota = np.bincount(bunch.target) * 300 / 1797
    assert np.all(np.abs(np.bincount(test.labels, minlength=10) - quota) < 1)
    assert 0.0 == train.images.min() and train.images.max() == 1.0


def test_digits_split_is_the_stable_permutation_rule():
    # Rebuild the test set by the documented rule, independently: per class, the first quota(c)
    # indices in splitmix64 order (seed 0), quotas by largest remainder.
    from sklearn.datasets import load_digits

    y = load_digits().target
    keys = _splitmix64_reference(0, len(y))
    counts = np.bincount(y)
    quota = counts * 300 / counts.sum()
    take = np.floor(quota).astype(int)
    for c in sorted(range(10), key=lambda c: -(quota[c] - take[c]))[: 300 - take.sum()]:
        take[c] += 1
    expected = sorted(i for c in range(10)
                      for i in sorted(np.flatnonzero(y == c), key=keys.__getitem__)[: take[c]])
    np.testing.assert_array_equal(images.digits_split_indices()["test"], expected)


def _indexed_set(n=100):
    """An ImageSet whose labels are the image indices, so parts can be traced back."""
    imgs = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None] / n, (n, 2, 2, 1)).copy()
    return ImageSet(images=imgs, labels=np.arange(n, dtype=np.int32), name="toy", split="train")


def test_train_validation_split_partitions_deterministically():
    s = _indexed_set()
    train, val = train_validation_split(s, validation_fraction=0.2, seed=3)
    assert (len(train), len(val), train.split, val.split) == (80, 20, "train", "validation")
    assert sorted(np.concatenate([train.labels, val.labels])) == list(range(100))
    assert np.all(np.diff(train.labels) > 0) and np.all(np.diff(val.labels) > 0)  # original order kept
    np.testing.assert_array_equal(np.round(train.images[:, 0, 0, 0] * 100), train.labels)
    again = train_validation_split(s, validation_fraction=0.2, seed=3)[1]
    other = train_validation_split(s, validation_fraction=0.2, seed=4)[1]
    np.testing.assert_array_equal(val.labels, again.labels)
    assert not np.array_equal(val.labels, other.labels)
    np.testing.assert_array_equal(np.sort(val.labels), np.sort(fetch.stable_permutation(100, seed=3)[:20]))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.001])
def test_train_validation_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        train_validation_split(_indexed_set(), validation_fraction=fraction, seed=0)


@pytest.mark.parametrize("kwargs, arg", [({"name": "cifar", "split": "train"}, "name"),
                                         ({"name": "mnist", "split": "valid"}, "split")])
def test_load_images_checks_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        load_images(**kwargs)


def test_real_mnist():
    root = real_data_dir("mnist")
    for split, counts in (("train", MNIST_TRAIN_COUNTS), ("test", MNIST_TEST_COUNTS)):
        s = load_images("mnist", split=split, data_dir=root, download=False)
        assert s.images.shape == (sum(counts), 28, 28, 1) and s.images.dtype == np.float32
        assert np.bincount(s.labels).tolist() == counts
        assert s.images.min() == 0.0 and s.images.max() == 1.0
    # The pixels are k / 255 exactly (float32 rounding only).
    assert np.allclose(s.images * 255, np.round(s.images * 255), atol=1e-4)


def test_mnist_checksums_are_the_shared_readmes():
    # The checksums in the code are those of the shared README (read independently here).
    readme = real_data_dir("mnist") / "README.md"
    if not readme.is_file():
        pytest.skip(f"{readme} not found: the checksums are compared with ../shared/data/README.md")
    text = readme.read_text()
    for name, digest in images.CHECKSUMS["mnist"].items():
        assert f"{digest}  {name[:-3]}" in text


def test_real_fashion_mnist():
    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    for split, n in (("train", 6000), ("test", 1000)):
        s = load_images("fashion_mnist", split=split, download=False)
        assert s.images.shape == (10 * n, 28, 28, 1)
        assert np.bincount(s.labels).tolist() == [n] * 10
        assert s.images.min() == 0.0 and s.images.max() == 1.0


# -- Brown


def test_brown_text_strips_tags_and_detokenises():
    tagged = ("\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( 1-1/2/cd )/) ;/. "
              "it's/pps+bez done/vbn ./.\n\n\n\tNext/ap --/-- one/cd ?/.\n")
    assert text.brown_sentences(tagged) == [
        ["The", "jury", "said", "``", "no", "evidence", "''", ",", "(", "1-1/2", ")", ";", "it's", "done", "."],
        ["Next", "--", "one", "?"]]
    assert text.brown_text(tagged) == 'The jury said "no evidence", (1-1/2); it\'s done.\nNext -- one?'


def _fake_brown(folder: Path):
    folder.mkdir(parents=True)
    (folder / "cats.txt").write_text("ca01 news\ncb01 editorial\n\n")
    (folder / "ca01").write_text("\n\n\tA/at dog/nn ./.\n\n\n\tIt/pps ran/vbd ./.\n")
    (folder / "cb01").write_text("\n\n\tWe/ppss think/vb so/rb !/.\n")


def test_load_brown_reads_the_nltk_layout(tmp_path):
    _fake_brown(tmp_path / "data" / "brown")
    docs = text.load_brown(data_dir=tmp_path / "data", checksums=None)  # not Brown's files: format checks only
    assert docs == [text.Document("ca01", "news", "A dog.\nIt ran."),
                    text.Document("cb01", "editorial", "We think so!")]


def test_load_brown_missing_file_listed_in_cats(tmp_path):
    _fake_brown(tmp_path / "data" / "brown")
    (tmp_path / "data" / "brown" / "cb01").unlink()
    with pytest.raises(ValueError, match="cb01"):
        text.load_brown(data_dir=tmp_path / "data", checksums=None)


def test_load_brown_missing_names_the_places(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "NLTK_DIRS", (str(tmp_path / "nltk" / "corpora" / "brown"),))
    with pytest.raises(fetch.DataNotFoundError) as err:
        text.load_brown(data_dir=tmp_path / "data")
    for needle in (str(tmp_path / "data" / "brown"), str(tmp_path / "nltk"), "cats.txt", "MODELCOLLAPSE_DATA_DIR"):
        assert needle in str(err.value)


def test_real_brown():
    root = real_data_dir("brown")
    docs = text.load_brown(data_dir=root)
    # The corpus manual's composition: 500 texts in 15 genres (A..R).
    counts = {"news": 44, "editorial": 27, "reviews": 17, "religion": 17, "hobbies": 36, "lore": 48,
              "belles_lettres": 75, "government": 30, "learned": 80, "fiction": 29, "mystery": 24,
              "science_fiction": 6, "adventure": 29, "romance": 29, "humor": 9}
    got = {}
    for d in docs:
        got[d.category] = got.get(d.category, 0) + 1
    assert got == counts
    assert [d.file_id for d in docs[:2]] == ["ca01", "ca02"] and docs[-1].file_id == "cr09"
    # NLTK: len(brown.words()) == 1,161,192 and len(brown.sents()) == 57,340.
    sents = [s for d in docs for s in text.brown_sentences((root / "brown" / d.file_id).read_text("latin-1"))]
    assert (sum(map(len, sents)), len(sents)) == (1_161_192, 57_340)
    assert all(t.count("\n") + 1 == len(text.brown_sentences((root / "brown" / d.file_id).read_text("latin-1")))
               for d, t in zip(docs[:20], (d.text for d in docs[:20])))
    assert docs[0].text.startswith("The Fulton County Grand Jury said Friday an investigation of Atlanta's "
                                   "recent primary election produced \"no evidence\" that any irregularities "
                                   "took place.\n")


# -- splits and blocks


def _docs(n):
    return [text.Document(f"d{i:03d}", "x", f"text {i}") for i in range(n)]


def test_split_documents_partitions_deterministically():
    docs = _docs(100)
    train, val, test = text.split_documents(docs, validation_fraction=0.1, test_fraction=0.2, seed=5)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    ids = [d.file_id for part in (train, val, test) for d in part]
    assert sorted(ids) == [d.file_id for d in docs]
    # Depends on the set of ids, not their order; keeps the input order within each part.
    shuffled = [docs[i] for i in np.random.default_rng(0).permutation(100)]
    again = text.split_documents(shuffled, validation_fraction=0.1, test_fraction=0.2, seed=5)
    assert [sorted(d.file_id for d in p) for p in again] == [sorted(d.file_id for d in p) for p in (train, val, test)]
    assert [d.file_id for d in again[0]] == [d.file_id for d in shuffled if d in train]
    # The documented rule: test = the first 20 ids in stable_permutation order over sorted ids.
    order = fetch.stable_permutation(100, seed=5)
    assert sorted(d.file_id for d in test) == sorted(f"d{i:03d}" for i in order[:20])
    other = text.split_documents(docs, validation_fraction=0.1, test_fraction=0.2, seed=6)[2]
    assert {d.file_id for d in other} != {d.file_id for d in test}


@pytest.mark.parametrize("val, test_, arg", [(-0.1, 0.1, "validation_fraction"), (0.1, 1.0, "test_fraction"),
                                             (0.5, 0.5, "no training")])
def test_split_documents_rejects_bad_fractions(val, test_, arg):
    with pytest.raises(ValueError, match=arg):
        text.split_documents(_docs(10), validation_fraction=val, test_fraction=test_, seed=0)


def test_make_blocks():
    np.testing.assert_array_equal(text.make_blocks(np.arange(10), block_size=3), [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    assert text.make_blocks(np.arange(64 * 5 + 63)).shape == (5, 64)
    with pytest.raises(ValueError, match="fewer than one block"):
        text.make_blocks(np.arange(5), block_size=6)
    with pytest.raises(ValueError, match="block_size"):
        text.make_blocks(np.arange(5), block_size=0)
    with pytest.raises(ValueError, match="1-D"):
        text.make_blocks(np.zeros((2, 8)), block_size=2)


# -- wikitext-2

WIKI = {"wiki.train.raw": " \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : "
                          "戦場のヴァルキュリア3 ) , commonly referred to as ... \r\n",
        "wiki.valid.raw": " \n = Homarus gammarus = \n \n Homarus gammarus , known as the European lobster \n",
        "wiki.test.raw": " \n = Robert <unk> = \n \n Robert <unk> is an English film , television and theatre actor \n"}


def _wiki_checksums(monkeypatch):
    monkeypatch.setattr(text, "WIKITEXT2_FILES", {n: _sha(t.encode()) for n, t in WIKI.items()})


def test_wikitext2_from_a_local_folder_verbatim(tmp_path, monkeypatch):
    _wiki_checksums(monkeypatch)
    _mirror(tmp_path / "data" / "wikitext-2-raw", {n: t.encode() for n, t in WIKI.items()})
    splits = text.load_wikitext2(data_dir=tmp_path / "data", download=False)
    assert splits == {"train": WIKI["wiki.train.raw"], "validation": WIKI["wiki.valid.raw"],
                      "test": WIKI["wiki.test.raw"]}  # '\r\n' and unicode kept as they are


def test_wikitext2_downloads_the_zip_and_extracts_into_the_cache(tmp_path, monkeypatch):
    _wiki_checksums(monkeypatch)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the official archive's layout
        for name, t in WIKI.items():
            zf.writestr(f"wikitext-2-raw/{name}", t.encode())
    url = _mirror(tmp_path / "mirror", {"wikitext-2-raw-v1.zip": buf.getvalue()}) + "wikitext-2-raw-v1.zip"
    monkeypatch.setattr(text, "WIKITEXT2_ZIP", {"wikitext-2-raw-v1.zip": _sha(buf.getvalue())})
    monkeypatch.setattr(text, "WIKITEXT2_URLS", {"wikitext-2-raw-v1.zip": [url]})
    splits = text.load_wikitext2()
    assert splits["validation"] == WIKI["wiki.valid.raw"]
    cache = tmp_path / "cache" / "data" / "wikitext-2-raw"
    assert sorted(p.name for p in cache.iterdir()) == sorted([*WIKI, "wikitext-2-raw-v1.zip"])
    assert text.load_wikitext2(download=False) == splits  # offline from the cache now


def test_wikitext2_missing_offline(tmp_path):
    with pytest.raises(fetch.DataNotFoundError) as err:
        text.load_wikitext2(data_dir=tmp_path / "data", download=False)
    msg = str(err.value)
    for needle in ("wiki.train.raw", "wiki.test.raw", "wikitext-2-raw-v1.zip",
                   str(tmp_path / "data" / "wikitext-2-raw"), "download=False"):
        assert needle in msg

