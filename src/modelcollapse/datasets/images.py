"""Image data sets for the VAE experiments: 8x8 digits, MNIST and Fashion-MNIST, as [N, H, W, 1] in [0, 1].

- `digits`: scikit-learn's `load_digits()` (UCI optical digits test set; Alpaydin & Kaynak 1998),
  1,797 8x8 images with values 0..16, divided by 16. It has no official split; ours is fixed
  forever (`DIGITS_TEST_SIZE` images, stratified by class, chosen by `fetch.stable_permutation`
  with `DIGITS_SPLIT_SEED`; no numpy random stream involved).
- `mnist` (LeCun, Bottou, Bengio & Haffner 1998) and `fashion_mnist` (Xiao, Rasul & Vollgraf 2017,
  arXiv:1708.07747): the four standard IDX .gz files, 60,000 train / 10,000 test 28x28 images with
  values 0..255, divided by 255. Files are found by `fetch.locate` under `<data_dir>/<name>/`, then
  (Fashion-MNIST) `/usr/share/datasets/fashion-mnist/` where Debian's `dataset-fashion-mnist`
  installs them, then the cache, then the mirrors.

Checksums are SHA-256 of the DECOMPRESSED files: mirrors and packagers recompress (Debian's
Fashion-MNIST .gz files differ from Zalando's, their contents do not).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from modelcollapse.datasets import fetch
from modelcollapse.datasets.idx import read_idx

NAMES = ("digits", "mnist", "fashion_mnist")
SPLITS = ("train", "test")
DIGITS_TEST_SIZE = 300  # of 1,797; leaves 1,497 to train on
DIGITS_SPLIT_SEED = 0

# split -> (images file, labels file), the names every IDX mirror uses.
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# SHA-256 of the decompressed files. MNIST: from /work/shared/data/README.md, equal to our copy.
# Fashion-MNIST: computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
EXTRA_DIRS = {"fashion_mnist": ("/usr/share/datasets/fashion-mnist",)}


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSet:
    """Images and labels of one split. eq=False: arrays have no single truth value to compare by."""

    images: np.ndarray  # [N, H, W, 1] float32 in [0, 1]
    labels: np.ndarray  # [N] int32, class index
    name: str  # 'digits', 'mnist', 'fashion_mnist'
    split: str  # 'train', 'test', 'validation'

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[-1] != 1 or self.images.dtype != np.float32:
            raise ValueError(f"images must be float32 [N, H, W, 1], got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != self.images.shape[:1] or self.labels.dtype != np.int32:
            raise ValueError(f"labels must be int32 [{self.images.shape[0]}], "
                             f"got {self.labels.dtype} {self.labels.shape}")

    def __len__(self) -> int:
        return self.images.shape[0]


def load_images(name: str, *, split: str, data_dir: str | os.PathLike | None = None,
                download: bool = True) -> ImageSet:
    """One split of an image data set; see the module docstring for sources and the digits split.

    Returns an ImageSet with images float32 [N, H, W, 1] in [0, 1] and labels int32 [N]
    (digits: 1,497 / 300 of 8x8; MNIST and Fashion-MNIST: 60,000 / 10,000 of 28x28).
    Raises fetch.DataNotFoundError / fetch.ChecksumError for missing or corrupt IDX files.
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "digits":
        return _digits(split)
    images_file, labels_file = IDX_FILES[split]
    paths = fetch.locate(name, {f: CHECKSUMS[name][f] for f in (images_file, labels_file)},
                         subdir=name, data_dir=data_dir, download=download, checksum_of="decompressed",
                         urls={f: [m + f for m in MIRRORS[name]] for f in (images_file, labels_file)},
                         extra_dirs=EXTRA_DIRS.get(name, ()))
    pixels = read_idx(paths[images_file])  # [N, 28, 28] uint8
    labels = read_idx(paths[labels_file])  # [N] uint8
    if pixels.ndim != 3 or pixels.dtype != np.uint8 or labels.shape != pixels.shape[:1]:
        raise ValueError(f"{paths[images_file]}, {paths[labels_file]}: expected uint8 images [N, H, W] and "
                         f"labels [N], got {pixels.dtype} {pixels.shape} and {labels.shape}")
    images = pixels.astype(np.float32)[..., None]  # [N, 28, 28, 1]
    images /= np.float32(255.0)  # in place: one 188 MB array for MNIST's train split, not two
    return ImageSet(images=images, labels=labels.astype(np.int32), name=name, split=split)


def digits_split_indices() -> dict[str, np.ndarray]:
    """{'train': int64 [1497], 'test': int64 [300]}: indices into `load_digits()`, each sorted.

    Stratified: class c (n_c images) gives round(300 n_c / 1797) test images (largest remainders,
    so the total is exactly 300), the first ones in `stable_permutation` order.
    """
    return _stratified_split(_digits_data()[1], test_size=DIGITS_TEST_SIZE, seed=DIGITS_SPLIT_SEED)


@functools.cache
def _digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, read once per process (~0.3 s): images float64 [1797, 8, 8], labels [1797]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _stratified_split(labels: np.ndarray, *, test_size: int, seed: int) -> dict[str, np.ndarray]:
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * test_size / counts.sum()
    take = np.floor(quota).astype(np.int64)
    # Largest remainders get the leftover places; ties go to the smaller class index (stable sort).
    leftover = test_size - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    order = fetch.stable_permutation(len(labels), seed=seed)
    ordered_labels = labels[order]
    test = np.concatenate([order[ordered_labels == c][:k] for c, k in zip(classes, take)])
    is_test = np.zeros(len(labels), bool)
    is_test[test] = True
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def _digits(split: str) -> ImageSet:
    pixels, labels = _digits_data()
    index = digits_split_indices()[split]
    # Values are counts 0..16 of set pixels in 4x4 blocks (sklearn's DESCR); /16 maps them onto [0, 1].
    images = (pixels[index].astype(np.float32) / np.float32(16.0))[..., None]
    return ImageSet(images=images, labels=labels[index].astype(np.int32), name="digits", split=split)


def train_validation_split(images_set: ImageSet, *, validation_fraction: float,
                           seed: int) -> tuple[ImageSet, ImageSet]:
    """Carve a validation set out of `images_set` (normally the train split), deterministically.

    The validation set is the first round(validation_fraction * N) images in
    `stable_permutation(N, seed)` order; both parts keep the original order of their images.
    Returns (train, validation) ImageSets; their splits are named 'train' and 'validation'.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    n = len(images_set)
    n_val = int(round(validation_fraction * n))
    if not 0 < n_val < n:
        raise ValueError(f"validation_fraction={validation_fraction} of {n} images leaves an empty part")
    is_val = np.zeros(n, bool)
    is_val[fetch.stable_permutation(n, seed=seed)[:n_val]] = True

    def part(mask, split):
        return ImageSet(images=images_set.images[mask], labels=images_set.labels[mask],
                        name=images_set.name, split=split)

    return part(~is_val, "train"), part(is_val, "validation")

