"""The token corpora of the recursive LM experiment: train / validation / test / pretraining blocks.

Every corpus becomes int32 blocks of `block_size` tokens (the paper cut wikitext-2 into 64-token
blocks) in four disjoint splits: `train` (generation 0's data and the prompts of every later
generation), `validation` (model selection, always the ORIGINAL text), `test` (the reported
perplexity) and `pretrain` (the base model of `init: base`, disjoint from the rest).

- `synthetic`: the Markov language of `lm.synthetic` (the default; its truth is known), each
  split drawn from its own key; blocks are independent stationary sequences.
- `brown`: the Brown corpus (Francis & Kucera), split by document with the seed; tokenized with
  GPT-2 BPE (`gpt2`), bytes (`byte`) or words (`word`, vocabulary from the training split).
- `wikitext2`: wikitext-2-raw's own train / valid / test files; `pretrain` is the last
  `pretrain_fraction` of the train file, cut off before the blocks are made.

Tokenizer `opt` (the paper's OPT-125m; the OPT folder `pretrained`, see `hf_checkpoint.locate_opt`):
each line is tokenized on its own, as Hugging Face's run_clm preprocesses wikitext (one row per
line, blank lines as empty rows): every line, blank ones included, starts with `</s>`; the rows
are then concatenated and cut into blocks. `vocab_size` is the model's embedding rows from the
folder's config.json (50,272 for OPT-125m), not the tokenizer's 50,265 ids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from modelcollapse import knobs
from modelcollapse.knobs import knob
from modelcollapse.lm.tokenizers import TOKENIZERS

CORPORA = ("synthetic", "brown", "wikitext2")
SPLITS = ("train", "validation", "test", "pretrain")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    name: str = knob("synthetic", help="synthetic (a Markov language with a known truth; ships with the code) | "
                     "brown | wikitext2.", type="string", enum=list(CORPORA))
    block_size: int = knob(64, help="Tokens per block (the paper's 64); prompts and continuations have this length.",
                           type="integer", minimum=2, maximum=4096)
    # synthetic: the language (lm.synthetic.SyntheticLanguage) and the tokens per split
    vocab_size: int = knob(2000, help="synthetic: word types V.", type="integer", minimum=3, maximum=100000)
    n_successors: int = knob(32, help="synthetic: words allowed after each word (at most vocab_size).",
                             type="integer", minimum=2, maximum=100000)
    zipf_exponent: float = knob(1.1, help="synthetic: s of the Zipf word frequencies (j+1)^-s.", type="number",
                                minimum=0, maximum=10)
    concentration: float = knob(1.0, help="synthetic: Dirichlet concentration of each row's transition weights "
                                "(larger is flatter).", type="number", minimum=0.05, maximum=1000000)
    language_seed: int = knob(0, help="synthetic: seed that builds the language (not the samples).", type="integer",
                              minimum=0)
    train_tokens: int = knob(100_000, help="synthetic: tokens in the training split (rounded up to whole blocks).",
                             type="integer", minimum=2, maximum=100000000)
    validation_tokens: int = knob(20_000, help="synthetic: tokens in the validation split.", type="integer",
                                  minimum=2, maximum=100000000)
    test_tokens: int = knob(20_000, help="synthetic: tokens in the test split.", type="integer", minimum=2,
                            maximum=100000000)
    pretrain_tokens: int = knob(100_000, help="synthetic: tokens in the pretraining split (init: base).",
                                type="integer", minimum=2, maximum=100000000)
    # The base model's language: a sibling related to the task without having learned it (as
    # OPT-125m was pretrained on broad text, not on wikitext-2).
    pretrain_weight_seed: int | None = knob(None, help="synthetic: null (the base learns the corpus's own language) "
                                            "or the seed of a sibling language (same successor sets, other weights) "
                                            "that the pretraining split is drawn from.", type=["integer", "null"],
                                            minimum=0)
    pretrain_own_share: float = knob(0.0, help="synthetic, with pretrain_weight_seed: share of the pretraining blocks "
                                     "drawn from the corpus's own language.", type="number", minimum=0, maximum=1)
    # real corpora
    tokenizer: str = knob("gpt2", help="brown / wikitext2: gpt2 (BPE files under data_dir/gpt2-bpe) | byte | word | "
                          "opt (OPT's tokenizer from the folder lm.model.pretrained, default opt-125m, under data_dir; "
                          "every line starts with </s>, as Hugging Face's run_clm; the vocabulary is the model's "
                          "50,272 embedding rows).", type="string", enum=list(TOKENIZERS))
    max_vocab: int = knob(20_000, help="word tokenizer: most frequent words kept (the rest map to <unk>).",
                          type="integer", minimum=2, maximum=1000000)
    validation_fraction: float = knob(0.1, help="brown: share of documents for validation.", type="number",
                                      exclusiveMinimum=0, exclusiveMaximum=1)
    test_fraction: float = knob(0.1, help="brown: share of documents for test.", type="number", exclusiveMinimum=0,
                                exclusiveMaximum=1)
    pretrain_fraction: float = knob(0.2, help="brown / wikitext2: share kept apart for the base model (0: none, for "
                                    "a pretrained base: arch opt).", type="number", minimum=0, exclusiveMaximum=1)

    def __post_init__(self):
        knobs.check(self)
        shares = self.validation_fraction + self.test_fraction + self.pretrain_fraction
        if shares >= 1:
            raise ValueError("validation_fraction, test_fraction and pretrain_fraction must sum to less than 1, got a "
                             f"total of {shares}")

    def language(self, weight_seed: int | None = None):
        """The synthetic language; with `weight_seed`, its sibling (same successor sets, other weights)."""
        from modelcollapse.lm.synthetic import SyntheticLanguage

        return SyntheticLanguage(vocab_size=self.vocab_size, n_successors=self.n_successors,
                                 zipf_exponent=self.zipf_exponent, concentration=self.concentration,
                                 seed=self.language_seed, weight_seed=weight_seed)


def build(cfg: CorpusConfig, *, seed: int, data_dir=None, pretrained: str = "opt-125m") -> dict[str, Any]:
    """{split: int32 [n_blocks, block_size]} for SPLITS, plus `vocab_size`, `tokenizer` (its name)
    and `vocabulary` (the word list of word-level tokenizers, else empty): see `decoder`.
    `pretrained`: the OPT folder of tokenizer `opt`."""
    if cfg.name == "synthetic":
        lang = cfg.language()
        key = jax.random.key(seed)
        sizes = {"train": cfg.train_tokens, "validation": cfg.validation_tokens, "test": cfg.test_tokens,
                 "pretrain": cfg.pretrain_tokens}
        blocks = {split: np.asarray(lang.corpus(jax.random.fold_in(key, i), n_tokens=sizes[split],
                                                block_size=cfg.block_size), np.int32)
                  for i, split in enumerate(SPLITS)}
        if cfg.pretrain_weight_seed is not None:
            blocks["pretrain"] = _mixed_pretraining(cfg, blocks["pretrain"], jax.random.fold_in(key, len(SPLITS)))
        return blocks | {"vocab_size": cfg.vocab_size, "vocabulary": np.array(lang.word_list()), "tokenizer": "word"}
    texts = _texts(cfg, seed=seed, data_dir=data_dir)
    tokenizer = _tokenizer(cfg, texts["train"], data_dir, pretrained)
    from modelcollapse.datasets.text import make_blocks

    encode = _encode_lines if cfg.tokenizer == "opt" else lambda tok, text: tok.encode(text)
    blocks = {split: np.asarray(make_blocks(np.asarray(encode(tokenizer, texts[split]), np.int32),
                                            cfg.block_size), np.int32)
              for split in SPLITS if split != "pretrain" or cfg.pretrain_fraction > 0}
    if cfg.pretrain_fraction == 0:  # no pretraining split (the base is a pretrained checkpoint)
        blocks["pretrain"] = np.zeros((0, cfg.block_size), np.int32)
    for split, b in blocks.items():
        if len(b) < 2 and not (split == "pretrain" and cfg.pretrain_fraction == 0):
            raise ValueError(f"corpus {cfg.name!r}: the {split} split has {len(b)} blocks of {cfg.block_size} "
                             f"tokens; it needs at least 2")
    vocabulary = np.array(tokenizer.vocabulary if cfg.tokenizer == "word" else [], dtype=str)
    vocab_size = tokenizer.vocab_size
    if cfg.tokenizer == "opt":  # the model's embedding rows (padded past the tokenizer's ids)
        from modelcollapse.lm.hf_checkpoint import locate_opt
        from modelcollapse.lm.opt import OPTConfig

        vocab_size = OPTConfig.from_hf_json(locate_opt(pretrained, data_dir) / "config.json").vocab_size
        if vocab_size < tokenizer.vocab_size:
            raise ValueError(f"OPT folder {pretrained!r}: config.json's vocab_size {vocab_size} is smaller than "
                             f"its tokenizer's {tokenizer.vocab_size} ids")
    return blocks | {"vocab_size": int(vocab_size), "vocabulary": vocabulary, "tokenizer": cfg.tokenizer}


def _encode_lines(tokenizer, text: str) -> np.ndarray:
    """Hugging Face run_clm's preprocessing of wikitext: one row per line (its newline kept; a blank
    or whitespace-only line is an empty row, as the `wikitext` dataset stores it), each tokenized
    on its own (OPT's tokenizer starts every row with `</s>`), then concatenated."""
    lines = text.split("\n")
    rows = [line + "\n" if line.strip() else "" for line in (lines[:-1] if lines[-1] == "" else lines)]
    if lines[-1] != "" and rows and rows[-1]:
        rows[-1] = rows[-1][:-1]  # the text's last line had no newline
    return np.concatenate([tokenizer.encode(row) for row in rows]) if rows else np.zeros(0, np.int32)


def _mixed_pretraining(cfg: CorpusConfig, own: np.ndarray, key) -> np.ndarray:
    """The base's blocks: the first round(share x n) of the corpus's own pretraining blocks, the rest
    from the sibling language, in a random order (so every batch mixes both)."""
    n = len(own)
    n_own = int(round(cfg.pretrain_own_share * n))
    sibling = cfg.language(cfg.pretrain_weight_seed)
    other = np.asarray(sibling.sample(jax.random.fold_in(key, 0), max(n - n_own, 1), cfg.block_size), np.int32)
    mixed = np.concatenate([own[:n_own], other[: n - n_own]])
    return mixed[np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), n))]


def _texts(cfg: CorpusConfig, *, seed: int, data_dir) -> dict[str, str]:
    from modelcollapse.datasets import text

    if cfg.name == "brown":
        docs = text.load_brown(data_dir=data_dir)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(docs))
        n_pre = int(round(cfg.pretrain_fraction * len(docs)))
        pretrain, rest = [docs[i] for i in order[:n_pre]], [docs[i] for i in order[n_pre:]]
        # split_documents takes shares of what is left after the pretraining documents
        left = 1 - cfg.pretrain_fraction
        splits = text.split_documents(rest, validation_fraction=cfg.validation_fraction / left,
                                      test_fraction=cfg.test_fraction / left, seed=seed)
        out = {name: "\n\n".join(d.text for d in part) for name, part in _named(splits).items()}
        return out | {"pretrain": "\n\n".join(d.text for d in pretrain)}
    raw = text.load_wikitext2(data_dir=data_dir)
    train = raw["train"]
    cut = int(len(train) * (1 - cfg.pretrain_fraction))
    cut = train.rfind("\n", 0, cut) + 1 or cut  # cut at a line boundary
    return {"train": train[:cut], "pretrain": train[cut:], "validation": raw["validation"], "test": raw["test"]}


def _named(splits) -> dict[str, list]:
    if isinstance(splits, dict):
        return {"train": splits["train"], "validation": splits.get("validation", splits.get("valid")),
                "test": splits["test"]}
    train, validation, test = splits
    return {"train": train, "validation": validation, "test": test}


def _tokenizer(cfg: CorpusConfig, train_text: str, data_dir, pretrained: str = "opt-125m"):
    from modelcollapse.lm import tokenizers

    if cfg.tokenizer == "word":
        return tokenizers.WordTokenizer.from_corpus([train_text], max_vocab=cfg.max_vocab)
    return tokenizers.tokenizer_from_name(cfg.tokenizer, data_dir=data_dir, model=pretrained)


def decoder(corpus: dict, *, data_dir=None, pretrained: str = "opt-125m"):
    """ids -> text for a built corpus (examples in the paper): words, GPT-2 BPE, bytes or OPT's BPE.
    OPT: ids of the embedding's padding rows (past the tokenizer's, which a model may still
    generate) are written as `<unk>`."""
    from modelcollapse.lm import tokenizers

    name = str(corpus["tokenizer"])
    if name == "word":
        tokenizer = tokenizers.WordTokenizer([str(w) for w in corpus["vocabulary"]])
    else:
        tokenizer = tokenizers.tokenizer_from_name(name, data_dir=data_dir, model=pretrained)
    if name == "opt":
        def decode(ids):
            ids = np.asarray(ids)
            return tokenizer.decode(np.where(ids < tokenizer.vocab_size, ids, tokenizer.unk_id))

        return decode
    return tokenizer.decode
