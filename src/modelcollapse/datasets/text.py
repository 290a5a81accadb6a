"""Text corpora for the language-model experiments: the Brown corpus and wikitext-2 (raw).

- Brown (Francis & Kucera 1964/1979): NLTK's layout, one file per text (`ca01` ... `cr09`), tokens
  `word/tag`, sentences on their own tab-indented lines, and `cats.txt` mapping file -> genre.
  `load_brown` strips the tags and detokenises: one sentence per line, no space before closing
  punctuation or after opening brackets, Brown's `` and '' quote tokens turned into ".
  Brown has no official split: `split_documents` makes a fixed one by document. Its files are
  checked against their SHA-256 (`brown_sha256.py`) and for Brown's format before use.
- wikitext-2-raw-v1 (Merity, Xiong, Bradbury & Socher 2016, arXiv:1609.07843): the three files
  `wikitext-2-raw/wiki.{train,valid,test}.raw`, read verbatim. The paper fine-tunes OPT-125m on
  it cut into 64-token blocks (`make_blocks`).

SHA-256 of wikitext-2 (the same values in lm-evaluation-harness's downloader, HF `datasets`'
dataset_infos for Salesforce/wikitext and llama.cpp's perplexity scripts): the zip, 4,721,645 bytes,
and the three raw files inside it.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelcollapse import io
from modelcollapse.datasets import fetch
from modelcollapse.datasets.brown_sha256 import BROWN_SHA256
from modelcollapse.io import atomic_path

BROWN_SUBDIR = "brown"
# Where NLTK's downloader puts corpora (nltk.data.path), searched after the data directory.
NLTK_DIRS = tuple(str(Path(p).expanduser() / "corpora" / "brown") for p in
                  ("~/nltk_data", "/usr/share/nltk_data", "/usr/local/share/nltk_data",
                   "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"))
# Brown's punctuation tokens: attach to the previous word / to the next word.
_CLOSE = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"}
_OPEN = {"(", "[", "``"}
_QUOTES = {"``": '"', "''": '"'}

WIKITEXT2_SUBDIR = "wikitext-2-raw"
WIKITEXT2_SPLITS = {"train": "wiki.train.raw", "validation": "wiki.valid.raw", "test": "wiki.test.raw"}
WIKITEXT2_FILES = {
    "wiki.train.raw": "6707892fa3788b5ab9ed78ab5ff37d9fe825f6011a2ad4fcd6a6d467f0e7da57",  # 10,940,747 B
    "wiki.valid.raw": "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7",  # 1,146,846 B
    "wiki.test.raw": "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08",  # 1,290,590 B
}
WIKITEXT2_ZIP = {"wikitext-2-raw-v1.zip": "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11"}
WIKITEXT2_URLS = {"wikitext-2-raw-v1.zip": [
    "https://wikitext.smerity.com/wikitext-2-raw-v1.zip",
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip",
]}


@dataclasses.dataclass(frozen=True)
class Document:
    file_id: str  # e.g. 'ca01'
    category: str  # Brown genre from cats.txt, e.g. 'news'
    text: str  # plain text, one sentence per line


def _manifest(text: str) -> dict[str, str]:
    """`sha256sum` lines -> {file name: hex digest}."""
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line.strip())}


BROWN_FILES = _manifest(BROWN_SHA256)  # cats.txt and the 500 texts -> SHA-256


def load_brown(*, data_dir: str | os.PathLike | None = None,
               checksums: Mapping[str, str] | None = BROWN_FILES) -> list[Document]:
    """The 500 Brown texts in `cats.txt` order, tags stripped (see the module docstring).

    Looks in `<data_dir>/brown/`, then NLTK's data folders. Every file read is checked: against
    `checksums` ({file name: SHA-256}; default: NLTK's Brown, `BROWN_FILES`), and in any case for
    Brown's format (ASCII text of `word/tag` tokens, not empty), and recorded with its SHA-256 for
    the provenance of what is made from it (`io.note_input`). checksums=None checks the format only
    (a corpus in Brown's layout that is not Brown itself). Raises fetch.DataNotFoundError naming the
    folders searched, fetch.ChecksumError naming every file whose SHA-256 differs (corrupt, emptied,
    another version), fetch.DataFormatError naming a file that is not tagged Brown text, ValueError
    if a folder has `cats.txt` but misses texts it lists.
    """
    root = fetch.data_dir(data_dir)
    candidates = ([root / BROWN_SUBDIR] if root is not None else []) + [Path(p) for p in NLTK_DIRS]
    folder = next((d for d in candidates if (d / "cats.txt").is_file()), None)
    if folder is None:
        where = "\n  ".join(str(d) for d in candidates)
        hint = root / BROWN_SUBDIR if root is not None else f"<DATA>/{BROWN_SUBDIR}"
        raise fetch.DataNotFoundError(
            f"data set 'brown': cats.txt not found. Searched:\n  {where}\n"
            f"{'' if root is not None else f'(no data directory: neither --data-dir nor ${fetch.ENV_VAR} is set)'}\n"
            f"To fix: put NLTK's Brown corpus (files ca01 ... cr09 and cats.txt; "
            f"python -m nltk.downloader brown) in {hint}/ and point ${fetch.ENV_VAR} (or --data-dir) "
            f"at its parent.")
    if checksums is not None:
        _verify_all(folder, {"cats.txt": checksums["cats.txt"]})
    categories = {}
    for number, line in enumerate(_ascii(folder / "cats.txt").splitlines(), 1):
        if line.strip():
            fields = line.split()
            if len(fields) < 2:
                raise fetch.DataFormatError(f"{folder / 'cats.txt'}, line {number}: expected '<file> <genre>', "
                                            f"got {line.strip()[:60]!r}; not Brown's cats.txt")
            categories[fields[0]] = fields[1]
    if not categories:
        raise fetch.DataFormatError(f"{folder / 'cats.txt'} lists no files; not Brown's cats.txt")
    missing = [f for f in categories if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder}: {len(missing)} Brown files listed in cats.txt are missing "
                         f"(e.g. {', '.join(missing[:5])})")
    if checksums is not None:
        _verify_all(folder, {f: checksums.get(f, "") for f in categories})
    docs = [Document(file_id=f, category=c, text=brown_text(_tagged(folder / f))) for f, c in categories.items()]
    for name in ["cats.txt", *categories]:
        io.note_input(folder / name, fetch.sha256(folder / name))
    return docs


def _verify_all(folder: Path, files: Mapping[str, str]) -> None:
    """One ChecksumError naming every file of `files` whose SHA-256 differs (a file the manifest
    does not list counts as one: cats.txt names a text Brown does not have)."""
    bad = []
    for name, expected in files.items():
        try:
            got = fetch.sha256(folder / name)
        except OSError as err:
            bad.append(f"{name} (unreadable: {err})")
            continue
        if not expected:
            bad.append(f"{name} (not a file of the Brown corpus)")
        elif got != expected:
            size = (folder / name).stat().st_size
            bad.append(f"{name} ({'empty' if size == 0 else f'{size:,} bytes'}: SHA-256 {got}, expected {expected})")
    if bad:
        raise fetch.ChecksumError(
            f"data set 'brown' in {folder}: {len(bad)} file(s) fail their checksum: " + "; ".join(bad[:10])
            + ("; ..." if len(bad) > 10 else "") + ". They are corrupt, emptied or another version of the "
            "corpus: replace them with NLTK's Brown (python -m nltk.downloader brown).")


def _ascii(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii")
    except UnicodeDecodeError as err:
        raise fetch.DataFormatError(f"{path}: byte {err.start} is not ASCII; Brown's files are plain ASCII text, "
                                    f"this one is corrupt or not part of the corpus") from None


def _tagged(path: Path) -> str:
    """A Brown text file's content, after checking that it is one: ASCII, not empty, every token `word/tag`."""
    text = _ascii(path)
    tokens = text.split()
    if not tokens:
        raise fetch.DataFormatError(f"{path} is empty; a Brown text has about 2,000 tagged words")
    bad = next((t for t in tokens if not all(t.rpartition("/")[::2])), None)
    if bad is not None:
        raise fetch.DataFormatError(f"{path}: token {bad[:40]!r} is not 'word/tag'; the file is corrupt "
                                    f"or not a tagged Brown text")
    return text


def brown_sentences(tagged: str) -> list[list[str]]:
    """Tagged Brown text ('The/at jury/nn ./.' lines) -> its sentences as lists of words, tags stripped."""
    # rsplit: a word may itself contain '/' (1-1/2/cd is the word 1-1/2 tagged cd).
    sentences = [[token.rsplit("/", 1)[0] for token in line.split()] for line in tagged.splitlines()]
    return [words for words in sentences if words]


def brown_text(tagged: str) -> str:
    """Tagged Brown text -> plain text, one detokenised sentence per line."""
    return "\n".join(detokenize(words) for words in brown_sentences(tagged))


def detokenize(words: Sequence[str]) -> str:
    """Join Brown tokens with single spaces, except none before closing or after opening punctuation."""
    out = []
    glue = True  # no space before the first word
    for word in words:
        if not glue and word not in _CLOSE:
            out.append(" ")
        out.append(_QUOTES.get(word, word))
        glue = word in _OPEN
    return "".join(out)


def load_wikitext2(*, data_dir: str | os.PathLike | None = None, download: bool = True) -> dict[str, str]:
    """{'train', 'validation', 'test'} -> the raw text of wikitext-2-raw-v1, byte for byte.

    Looks for `wiki.*.raw` in `<data_dir>/wikitext-2-raw/`, then the cache; otherwise for the official
    zip in the same folders or (download=True) on its mirrors, checks its SHA-256, and extracts the
    three files into the cache, each checked again. Raises fetch.DataNotFoundError / fetch.ChecksumError.
    """
    try:
        paths = fetch.locate("wikitext-2", WIKITEXT2_FILES, subdir=WIKITEXT2_SUBDIR, data_dir=data_dir,
                             download=False)
    except fetch.DataNotFoundError:
        # No extracted files: the zip, from the same folders or (download=True) the mirrors.
        try:
            archive = fetch.locate("wikitext-2", WIKITEXT2_ZIP, subdir=WIKITEXT2_SUBDIR, data_dir=data_dir,
                                   urls=WIKITEXT2_URLS, download=download)["wikitext-2-raw-v1.zip"]
        except fetch.DataNotFoundError as zip_missing:
            raise fetch.DataNotFoundError(
                f"{zip_missing}\n(Either the archive or its extracted files {', '.join(WIKITEXT2_FILES)} "
                f"will do; those were looked for first, in the same folders.)") from None
        _extract(archive, fetch.data_cache_dir() / WIKITEXT2_SUBDIR)
        paths = fetch.locate("wikitext-2", WIKITEXT2_FILES, subdir=WIKITEXT2_SUBDIR, data_dir=data_dir,
                             download=False)
    out = {}
    for split, name in WIKITEXT2_SPLITS.items():
        with open(paths[name], encoding="utf-8", newline="") as fh:  # newline='': keep the text verbatim
            out[split] = fh.read()
    return out


def _extract(archive: Path, dest: Path) -> None:
    """Copy `wikitext-2-raw/wiki.*.raw` out of the zip into `dest`, each file atomically."""
    with zipfile.ZipFile(archive) as zf:
        for name in WIKITEXT2_FILES:
            member = f"{WIKITEXT2_SUBDIR}/{name}"
            try:
                data = zf.read(member)
            except KeyError:
                raise ValueError(f"{archive}: no member {member}; not the wikitext-2-raw-v1 archive") from None
            with atomic_path(dest / name) as tmp:
                tmp.write_bytes(data)


def split_documents(docs: Sequence[Document], *, validation_fraction: float, test_fraction: float,
                    seed: int) -> tuple[list[Document], list[Document], list[Document]]:
    """(train, validation, test) by whole documents, fixed by `seed`, each in the input order.

    Documents are ranked by `fetch.stable_permutation` over their file ids sorted, so the split
    depends only on the set of ids and the seed; the first round(test_fraction * n) go to test,
    the next round(validation_fraction * n) to validation, the rest to train.
    """
    for arg, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{arg} must be in [0, 1), got {value}")
    n = len(docs)
    n_test, n_val = int(round(test_fraction * n)), int(round(validation_fraction * n))
    if n_test + n_val >= n:
        raise ValueError(f"validation_fraction + test_fraction leave no training documents of {n}")
    ids = [d.file_id for d in docs]
    if len(set(ids)) != n:
        raise ValueError("docs must have distinct file ids")
    by_id = sorted(range(n), key=ids.__getitem__)
    rank = np.empty(n, np.int64)
    rank[np.asarray(by_id, np.int64)[fetch.stable_permutation(n, seed=seed)]] = np.arange(n)
    test = [d for d, r in zip(docs, rank) if r < n_test]
    val = [d for d, r in zip(docs, rank) if n_test <= r < n_test + n_val]
    train = [d for d, r in zip(docs, rank) if r >= n_test + n_val]
    return train, val, test


def make_blocks(token_ids: np.ndarray, block_size: int = 64) -> np.ndarray:
    """Cut a token stream [T] into consecutive blocks [T // block_size, block_size], dropping the tail.

    The paper cuts wikitext-2 into 64-token blocks. Returns a view when the input is contiguous.
    """
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 1:
        raise ValueError(f"token_ids must be 1-D, got shape {token_ids.shape}")
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    n_blocks = token_ids.shape[0] // block_size
    if n_blocks == 0:
        raise ValueError(f"token_ids has {token_ids.shape[0]} tokens, fewer than one block of {block_size}")
    return token_ids[: n_blocks * block_size].reshape(n_blocks, block_size)
