"""Tokenizers: bytes against Python's UTF-8 codec; GPT-2's BPE (tiktoken on our merge ranks) against
published ids and a pure-Python port of OpenAI's encoder.py, on tiny vocabularies the tests write and on
the real files in $MODELCOLLAPSE_DATA_DIR/gpt2-bpe (skipped when absent); words against hand-made cases."""

import json
from pathlib import Path

import numpy as np
import pytest
import regex

from conftest import REAL_DATA, real_data_dir
from modelcollapse.datasets import fetch
from modelcollapse.lm import tokenizers as tk

SAMPLES = ["hello world", "Hello, World!", "", " ", "  leading and trailing  ", "tabs\tand\nnewlines\n\n\n",
           "it's we'll they've I'm you'd she's", "naïve café résumé", "数学 and 日本語テキスト", "emoji 🙂👍🏽 done",
           "numbers 1234567 3.14159 -42", "   multiple   spaces\r\nwindows", "<|endoftext|> in text",
           "Ġ weird ĠĠ chars ∑∫√", "The Fulton County Grand Jury said Friday an investigation"]


# -- a pure-Python reference: OpenAI's gpt-2/src/encoder.py, transcribed


def _ref_bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _ref_bpe(token, ranks):
    word = tuple(token)
    pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
    while pairs:
        first, second = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if (first, second) not in ranks:
            break
        new, i = [], 0
        while i < len(word):
            try:
                j = word.index(first, i)
            except ValueError:
                new.extend(word[i:])
                break
            new.extend(word[i:j])
            i = j
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                new.append(first + second)
                i += 2
            else:
                new.append(word[i])
                i += 1
        word = tuple(new)
        pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
    return word


def _ref_encode(text, encoder, merges):
    ranks = {tuple(m): i for i, m in enumerate(merges)}
    byte_encoder = _ref_bytes_to_unicode()
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    ids = []
    for token in regex.findall(pat, text):
        token = "".join(byte_encoder[b] for b in token.encode("utf-8"))
        ids.extend(encoder[t] for t in _ref_bpe(token, ranks))
    return ids


# -- bytes


@pytest.mark.parametrize("text", SAMPLES)
def test_byte_round_trip(text):
    tok = tk.ByteTokenizer()
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and ids.tolist() == list(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_byte_decode_cut_character_and_range():
    tok = tk.ByteTokenizer()
    assert tok.decode(tok.encode("é")[:1]) == "\ufffd"  # half a character -> replacement, no error
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        tok.decode([65, 256])


# -- GPT-2 BPE on a tiny vocabulary written by the test (always runs)


def _tiny_bpe(folder: Path, merges):
    """encoder.json + vocab.bpe in GPT-2's format: 256 byte tokens, then one token per merge, then EOT."""
    folder.mkdir(parents=True, exist_ok=True)
    byte_tokens = list(_ref_bytes_to_unicode().values())
    encoder = {t: i for i, t in enumerate(byte_tokens)}
    for a, b in merges:
        encoder[a + b] = len(encoder)
    encoder["<|endoftext|>"] = len(encoder)
    (folder / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return folder / "encoder.json", folder / "vocab.bpe", encoder


def _learn_merges(corpus, n_merges):
    """Plain BPE training (Sennrich et al. 2016) on GPT-2's pre-tokens: merge the most frequent pair, repeat.

    A learned merge list, like GPT-2's: tiktoken merges any adjacent pair whose concatenation is a
    token, which equals merge-list BPE for learned vocabularies but not for arbitrary hand-made ones.
    """
    byte_encoder = _ref_bytes_to_unicode()
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    words = [tuple(byte_encoder[b] for b in w.encode("utf-8")) for w in regex.findall(pat, corpus)]
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        words = [_merge_pair(w, *best) for w in words]
    return merges


def _merge_pair(word, a, b):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


TINY_CORPUS = ("hello world, hello there! the other world is the best world; they said hello to the "
               "worldly hellions. It's 1234 o'clock; we'll see\n\nthe end") * 3
TINY_MERGES = _learn_merges(TINY_CORPUS, 40)


@pytest.mark.parametrize("text", SAMPLES + ["hello hello world worlds the other hell"])
def test_tiny_bpe_matches_reference(tmp_path, text):
    enc_path, bpe_path, encoder = _tiny_bpe(tmp_path, TINY_MERGES)
    tok = tk.GPT2Tokenizer.from_files(enc_path, bpe_path)
    ids = tok.encode(text)
    assert ids.dtype == np.int32
    assert ids.tolist() == _ref_encode(text, encoder, TINY_MERGES)
    assert tok.decode(ids) == text
    assert tok.vocab_size == 256 + len(TINY_MERGES) + 1 and tok.eot_id == 256 + len(TINY_MERGES)


def test_tiny_bpe_known_ids(tmp_path):
    merges = [("l", "l"), ("h", "e"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"),
              ("l", "d"), ("Ġwor", "ld")]
    enc_path, bpe_path, encoder = _tiny_bpe(tmp_path, merges)
    tok = tk.GPT2Tokenizer.from_files(enc_path, bpe_path)
    # By hand: 'hello' -> he+ll -> hell+o = merge 3; ' world' -> Ġw+or -> Ġwor+ld = merge 8;
    # 'x' is byte 0x78, which GPT-2's byte map puts at position 0x78 - 0x21 = 87 (printable ASCII first).
    assert tok.encode("hello world").tolist() == [256 + 3, 256 + 8]
    assert tok.encode("x").tolist() == [0x78 - 0x21]


def test_inconsistent_bpe_files_are_rejected(tmp_path):
    enc_path, bpe_path, _ = _tiny_bpe(tmp_path, TINY_MERGES)
    lines = bpe_path.read_text().split("\n")
    lines[1], lines[2] = lines[2], lines[1]  # two merges swapped: ranks no longer the encoder's ids
    bpe_path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match="merge 0"):
        tk.GPT2Tokenizer.from_files(enc_path, bpe_path)


def test_gpt2_locate_missing_names_the_places(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELCOLLAPSE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(fetch.DataNotFoundError) as err:
        tk.GPT2Tokenizer.locate(tmp_path / "data")
    for needle in ("encoder.json", "vocab.bpe", str(tmp_path / "data" / "gpt2-bpe"), str(tmp_path / "cache")):
        assert needle in str(err.value)


# -- GPT-2 BPE, the real files


@pytest.fixture(scope="module")
def gpt2():
    folder = real_data_dir("gpt2-bpe") / "gpt2-bpe"
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    merges = [tuple(line.split(" ")) for line in (folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
              if line]
    return tk.GPT2Tokenizer.locate(REAL_DATA), encoder, merges


@pytest.mark.parametrize("text, ids", [
    ("hello world", [31373, 995]),  # the ids every GPT-2 tutorial shows
    ("Hello world", [15496, 995]),
    (" ", [220]),
    ("\n", [198]),
])
def test_gpt2_published_ids(gpt2, text, ids):
    assert gpt2[0].encode(text).tolist() == ids


def test_gpt2_vocabulary(gpt2):
    tok, encoder, merges = gpt2
    assert (tok.vocab_size, tok.eot_id, len(merges)) == (50257, 50256, 50000)
    assert encoder["<|endoftext|>"] == 50256 and tok.decode([50256]) == "<|endoftext|>"
    # A literal '<|endoftext|>' in a corpus is plain text, not the separator.
    assert 50256 not in tok.encode("<|endoftext|>").tolist()


@pytest.mark.parametrize("text", SAMPLES)
def test_gpt2_matches_reference_and_round_trips(gpt2, text):
    tok, encoder, merges = gpt2
    ids = tok.encode(text)
    assert ids.tolist() == _ref_encode(text, encoder, merges)
    assert tok.decode(ids) == text


def test_gpt2_is_a_tokenizer(gpt2):
    assert isinstance(gpt2[0], tk.Tokenizer)
    assert isinstance(tk.tokenizer_from_name("gpt2", data_dir=REAL_DATA), tk.GPT2Tokenizer)


# -- words


def test_word_tokenizer_round_trip_and_unknowns():
    tok = tk.WordTokenizer(["<unk>", "the", "cat", "sat"], unk="<unk>")
    assert tok.encode("the cat  sat\nthe dog").tolist() == [1, 2, 3, 1, 0]
    assert tok.decode([1, 2, 3]) == "the cat sat"
    strict = tk.WordTokenizer(["the", "cat"])
    with pytest.raises(KeyError, match="'dog'"):
        strict.encode("the dog")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        strict.decode([2])


@pytest.mark.parametrize("vocab, unk, match", [([], None, "empty"), (["a", "a"], None, "duplicates"),
                                               (["a b"], None, "whitespace"), (["a"], "<unk>", "unk")])
def test_word_tokenizer_rejects_bad_vocabularies(vocab, unk, match):
    with pytest.raises(ValueError, match=match):
        tk.WordTokenizer(vocab, unk=unk)


def test_word_tokenizer_from_corpus():
    texts = ["b a c a", "c a b d", "e"]  # counts: a 3, b 2, c 2, d 1, e 1
    tok = tk.WordTokenizer.from_corpus(texts, max_vocab=4)
    assert tok.vocabulary == ("<unk>", "a", "b", "c")  # ties broken alphabetically
    assert tok.encode("a d e c").tolist() == [1, 0, 0, 3]
    assert tk.WordTokenizer.from_corpus(texts, max_vocab=2, unk=None).vocabulary == ("a", "b")
    with pytest.raises(ValueError, match="max_vocab"):
        tk.WordTokenizer.from_corpus(texts, max_vocab=1)


def test_tokenizer_from_name():
    assert isinstance(tk.tokenizer_from_name("byte"), tk.ByteTokenizer)
    word = tk.tokenizer_from_name("word", vocabulary=["<unk>", "x"])
    assert isinstance(word, tk.Tokenizer) and word.encode("x y").tolist() == [1, 0]
    with pytest.raises(ValueError, match="vocabulary"):
        tk.tokenizer_from_name("word")
    with pytest.raises(ValueError, match="byte"):
        tk.tokenizer_from_name("sentencepiece")
