"""Tokenizers for the language-model experiments: bytes, GPT-2's byte-level BPE, and whole words.

All share one interface (`Tokenizer`): `name`, `vocab_size`, `encode(text) -> int32 [T]`,
`decode(ids) -> str`.

- `ByteTokenizer`: the UTF-8 bytes, vocabulary 256; an exact round trip for any text.
- `GPT2Tokenizer`: GPT-2's byte-level BPE (Radford et al. 2019; OPT uses the same vocabulary),
  50,257 tokens, built with tiktoken from the local `encoder.json` + `vocab.bpe`: the merge ranks
  are the encoder ids (vocab.bpe's i-th merge makes token 256 + i, checked on load), the split
  pattern is GPT-2's, and `<|endoftext|>` is 50256. (tiktoken merges any adjacent pair whose
  concatenation is a token, lowest id first; for a vocabulary learned by BPE, as GPT-2's, this
  gives the ids of OpenAI's merge-list encoder.py, which the tests check against a port of it.)
  Nothing is downloaded and tiktoken's own cache is not used. `encode` treats a literal "<|endoftext|>" in the text as ordinary text;
  append `eot_id` yourself between documents.
- `WordTokenizer`: whitespace-separated words from a fixed vocabulary, optionally with `<unk>`.
- `opt`: OPT's tokenizer (`lm.opt_tokenizer.OPTTokenizer`: GPT-2's BPE with fairseq's ids, `</s>`
  first) from the OPT model folder (`hf_checkpoint.locate_opt`).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from modelcollapse.datasets import fetch

TOKENIZERS = ("byte", "gpt2", "word", "opt")
# GPT-2's pre-tokenisation regex (tiktoken's r50k_base / gpt2; the original encoder.py's, with the
# contractions grouped).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_EOT = "<|endoftext|>"
# SHA-256 from /work/shared/data/README.md; the same as tiktoken's expected hashes for these files.
GPT2_FILES = {"encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
              "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"}
GPT2_URLS = {name: [f"https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{name}"]
             for name in GPT2_FILES}


@runtime_checkable
class Tokenizer(Protocol):
    name: str
    vocab_size: int

    def encode(self, text: str) -> np.ndarray:
        """int32 [T] token ids."""
        ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ...


def _ids(ids, vocab_size: int) -> np.ndarray:
    """ids as a 1-D int64 array, each checked to lie in [0, vocab_size)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D integer sequence, got {ids.dtype} {ids.shape}")
    ids = ids.astype(np.int64)
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.size:
        raise ValueError(f"ids must be in [0, {vocab_size}), got {bad[:5].tolist()}")
    return ids


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocabulary 256)."""

    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        # A model's samples may cut a multi-byte character: those bytes become U+FFFD, not an error.
        return _ids(ids, 256).astype(np.uint8).tobytes().decode("utf-8", errors="replace")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map byte -> printable character used in encoder.json and vocab.bpe.

    Printable Latin-1 bytes map to themselves; the other 68 to chr(256), chr(257), ... in byte
    order (openai/gpt-2 src/encoder.py).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + i) for i, b in enumerate(extra)}}


class GPT2Tokenizer:
    """GPT-2 byte-level BPE (vocabulary 50,257) on tiktoken, from local files."""

    name = "gpt2"

    def __init__(self, encoding):
        self._encoding = encoding  # a tiktoken.Encoding
        self.vocab_size = encoding.n_vocab  # 50,257
        self.eot_id = encoding.eot_token  # 50,256: <|endoftext|>, the document separator

    @classmethod
    def from_files(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> GPT2Tokenizer:
        """Build from GPT-2's `encoder.json` (token string -> id) and `vocab.bpe` (merges, in order).

        Raises ValueError if the two files disagree (a merge that does not make the next id).
        """
        import tiktoken

        decoder = {ch: b for b, ch in bytes_to_unicode().items()}
        with open(encoder_json, encoding="utf-8") as fh:
            encoder = json.load(fh)
        ranks = {}
        for token, rank in encoder.items():
            if token != GPT2_EOT:
                ranks[bytes(decoder[ch] for ch in token)] = rank
        n = len(ranks)  # 50,256 for GPT-2; tests build small vocabularies in the same format
        if sorted(ranks.values()) != list(range(n)) or encoder.get(GPT2_EOT, n) != n:
            raise ValueError(f"{encoder_json}: expected ids 0..{n - 1} for tokens and {n} for {GPT2_EOT}")
        # '\n' only: str.splitlines would also split at characters such as U+0085.
        merges = [line.split(" ") for line in Path(vocab_bpe).read_text(encoding="utf-8").split("\n")[1:]
                  if line]  # line 0 is '#version: 0.2'
        # tiktoken merges by rank, so each merge's rank must be its order in vocab.bpe (+ 256 bytes).
        for i, (left, right) in enumerate(merges):
            if encoder.get(left + right) != 256 + i:
                raise ValueError(f"{vocab_bpe}: merge {i} ({left!r} + {right!r}) is id "
                                 f"{encoder.get(left + right)} in {encoder_json}, expected {256 + i}")
        if 256 + len(merges) != n:
            raise ValueError(f"{vocab_bpe}: {len(merges)} merges + 256 bytes != {n} tokens in {encoder_json}")
        encoding = tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                     special_tokens={GPT2_EOT: n}, explicit_n_vocab=n + 1)
        return cls(encoding)

    @classmethod
    def locate(cls, data_dir: str | os.PathLike | None = None, *, download: bool = False) -> GPT2Tokenizer:
        """From `<data_dir>/gpt2-bpe/{encoder.json, vocab.bpe}` (or the cache), checksums verified.

        download=True fetches missing files from OpenAI's public blob store (what tiktoken uses).
        Raises fetch.DataNotFoundError naming the places searched.
        """
        paths = fetch.locate("gpt2-bpe", GPT2_FILES, subdir="gpt2-bpe", data_dir=data_dir, urls=GPT2_URLS,
                             download=download)
        return cls.from_files(paths["encoder.json"], paths["vocab.bpe"])

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._encoding.encode_ordinary(text), np.int32)

    def decode(self, ids) -> str:
        return self._encoding.decode(_ids(ids, self.vocab_size).tolist(), errors="replace")


class WordTokenizer:
    """Whitespace-separated words <-> their positions in `vocabulary`.

    An unknown word maps to `unk` if given (it must be in the vocabulary), else raises KeyError.
    `decode` joins words with single spaces, so a round trip normalises whitespace.
    """

    name = "word"

    def __init__(self, vocabulary: Sequence[str], *, unk: str | None = None):
        vocabulary = list(vocabulary)
        if not vocabulary:
            raise ValueError("vocabulary must not be empty")
        bad = [w for w in vocabulary if not isinstance(w, str) or not w or w != w.strip() or len(w.split()) != 1]
        if bad:
            raise ValueError(f"vocabulary entries must be non-empty words without whitespace, got {bad[:5]}")
        if len(set(vocabulary)) != len(vocabulary):
            dup = [w for w, c in collections.Counter(vocabulary).items() if c > 1]
            raise ValueError(f"vocabulary has duplicates: {dup[:5]}")
        if unk is not None and unk not in vocabulary:
            raise ValueError(f"unk {unk!r} must be in the vocabulary")
        self.vocabulary = tuple(vocabulary)
        self.vocab_size = len(vocabulary)
        self.unk = unk
        self._index = {w: i for i, w in enumerate(vocabulary)}

    @classmethod
    def from_corpus(cls, texts: Iterable[str], max_vocab: int, *, unk: str | None = "<unk>") -> WordTokenizer:
        """The `max_vocab` most frequent words (ties by word, so deterministic), `unk` first if given."""
        if not isinstance(max_vocab, (int, np.integer)) or max_vocab < (2 if unk is not None else 1):
            raise ValueError(f"max_vocab must be an integer >= {2 if unk is not None else 1}, got {max_vocab!r}")
        counts = collections.Counter(w for text in texts for w in text.split())
        counts.pop(unk, None)
        words = sorted(counts, key=lambda w: (-counts[w], w))[: max_vocab - (unk is not None)]
        if not words:
            raise ValueError("texts contain no words")
        return cls(([unk] if unk is not None else []) + words, unk=unk)

    def encode(self, text: str) -> np.ndarray:
        if self.unk is not None:
            default = self._index[self.unk]
            return np.asarray([self._index.get(w, default) for w in text.split()], np.int32)
        try:
            return np.asarray([self._index[w] for w in text.split()], np.int32)
        except KeyError as err:
            raise KeyError(f"word {err.args[0]!r} is not in the vocabulary of {self.vocab_size} words "
                           f"(build the tokenizer with unk=... to map unknown words)") from None

    def decode(self, ids) -> str:
        return " ".join(self.vocabulary[i] for i in _ids(ids, self.vocab_size))


def tokenizer_from_name(name: str, *, data_dir: str | os.PathLike | None = None,
                        vocabulary: Sequence[str] | None = None, model: str = "opt-125m") -> Tokenizer:
    """'byte' | 'gpt2' (files from `<data_dir>/gpt2-bpe`) | 'word' (needs `vocabulary`) | 'opt'
    (vocab.json + merges.txt of the OPT folder `model`, found by `hf_checkpoint.locate_opt`)."""
    if name == "opt":
        from modelcollapse.lm.hf_checkpoint import locate_opt
        from modelcollapse.lm.opt_tokenizer import OPTTokenizer

        return OPTTokenizer.from_folder(locate_opt(model, data_dir))
    if name == "byte":
        return ByteTokenizer()
    if name == "gpt2":
        return GPT2Tokenizer.locate(data_dir)
    if name == "word":
        if vocabulary is None:
            raise ValueError("tokenizer 'word' needs a vocabulary (e.g. WordTokenizer.from_corpus(...).vocabulary)")
        return WordTokenizer(vocabulary, unk="<unk>" if "<unk>" in vocabulary else None)
    raise ValueError(f"tokenizer name must be one of {TOKENIZERS}, got {name!r}")
