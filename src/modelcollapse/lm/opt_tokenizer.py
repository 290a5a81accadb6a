"""OPT's tokenizer: GPT-2's byte-level BPE with RoBERTa/fairseq's token ids, and `</s>` prepended.

OPT (facebook/opt-*) ships `vocab.json` (token string -> id) and `merges.txt` (GPT-2's merges in
order), read by transformers' GPT2Tokenizer with bos `</s>`. The merges are GPT-2's; the ids are
not: fairseq renumbered GPT-2's tokens by frequency after <s>=0, <pad>=1, </s>=2, <unk>=3 (so "."
is 4, " the" 5, "Hello" 31414, " world" 232), 50,265 ids in all (the model's embedding has 50,272
rows). So BPE runs as in `tokenizers.GPT2Tokenizer` (tiktoken, GPT-2's split pattern and byte map
`bytes_to_unicode`), with merge i ranked 256 + i as GPT-2's vocab.bpe order requires, and each
resulting token is then mapped to its OPT id through a table. A token missing from vocab.json
becomes <unk> (HF does the same). `encode` prepends `</s>` (id 2), as HF's OPT tokenizer does
(`add_bos_token`): tokenizer("Hello world") -> [2, 31414, 232]. As GPT2Tokenizer.encode, special
tokens written in the text are encoded as ordinary text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from modelcollapse.lm.tokenizers import GPT2_PATTERN, _ids, bytes_to_unicode

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class OPTTokenizer:
    """OPT's byte-level BPE tokenizer from a model folder's vocab.json + merges.txt."""

    name = "opt"

    def __init__(self, encoding, rank_to_id: np.ndarray, vocab: dict[str, int], *, add_bos: bool = True):
        self._encoding = encoding  # tiktoken.Encoding with GPT-2 merge ranks
        self._rank_to_id = rank_to_id  # int32 [256 + merges]: BPE rank -> OPT id
        byte_of = {ch: b for b, ch in bytes_to_unicode().items()}
        self._bytes = {i: bytes(byte_of[ch] for ch in tok) if all(ch in byte_of for ch in tok) else tok.encode()
                       for tok, i in vocab.items()}
        self.vocab_size = len(vocab)  # 50,265 for OPT
        self.bos_id, self.pad_id, self.eos_id = vocab["</s>"], vocab.get("<pad>"), vocab["</s>"]
        self.unk_id = vocab.get("<unk>")
        self.special_ids = frozenset(vocab[s] for s in SPECIALS if s in vocab)
        self.add_bos = add_bos

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, add_bos: bool = True) -> OPTTokenizer:
        folder = Path(folder)
        return cls.from_files(folder / "vocab.json", folder / "merges.txt", add_bos=add_bos)

    @classmethod
    def from_files(cls, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike, *,
                   add_bos: bool = True) -> OPTTokenizer:
        """Raises ValueError if vocab.json lacks </s>, or lacks <unk> while missing a BPE token."""
        import tiktoken

        with open(vocab_json, encoding="utf-8") as fh:
            vocab = json.load(fh)
        if "</s>" not in vocab:
            raise ValueError(f"{vocab_json}: no '</s>' token (OPT's bos/eos)")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError(f"{vocab_json}: expected the ids 0..{len(vocab) - 1}, each once")
        lines = Path(merges_txt).read_text(encoding="utf-8").split("\n")  # '\n' only, as tokenizers.py
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = [line.split(" ") for line in lines if line]
        byte_map = bytes_to_unicode()
        decoder = {ch: b for b, ch in byte_map.items()}
        # GPT-2's ranks: the 256 bytes first, then the merges in file order (the BPE priority).
        ranks = {bytes([b]): b for b in range(256)}
        tokens = [byte_map[b] for b in range(256)]
        for left, right in merges:
            merged = bytes(decoder[ch] for ch in left + right)
            if merged not in ranks:
                ranks[merged] = len(tokens)
                tokens.append(left + right)
        unk = vocab.get("<unk>")
        absent = [t for t in tokens if t not in vocab]
        if absent and unk is None:
            raise ValueError(f"{vocab_json}: {len(absent)} BPE tokens (e.g. {absent[0]!r}) are not in the "
                             f"vocabulary and there is no '<unk>'")
        rank_to_id = np.asarray([vocab.get(t, unk) for t in tokens], np.int32)
        # tiktoken ids are the ranks here; the n_vocab check needs ranks 0..n-1, which they are.
        encoding = tiktoken.Encoding(name="opt-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                     special_tokens={}, explicit_n_vocab=len(ranks))
        return cls(encoding, rank_to_id, vocab, add_bos=add_bos)

    def encode(self, text: str) -> np.ndarray:
        """int32 [T (+1)]: `</s>` then the text's tokens (without `</s>` if add_bos=False)."""
        ids = self._rank_to_id[np.asarray(self._encoding.encode_ordinary(text), np.int64)]
        return np.concatenate([[self.bos_id] if self.add_bos else [], ids]).astype(np.int32)

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        """Text of ids in [0, vocab_size); special tokens appear as written ("</s>") unless skipped (HF)."""
        ids = _ids(ids, self.vocab_size)
        if skip_special_tokens:
            ids = [i for i in ids.tolist() if i not in self.special_ids]
        return b"".join(self._bytes[int(i)] for i in ids).decode("utf-8", errors="replace")
