"""OPT: tiny random checkpoints in Hugging Face's layout (safetensors and Flax msgpack) loaded and
checked against an independent NumPy transcription of HF's OPTForCausalLM (pre-LN, and post-LN with
project_in/out as OPT-350m; with left padding), against transformers itself when torch is installed,
greedy and beam continuations through lm.generate against full-forward references, the loader's
error messages, and OPT's tokenizer on a hand-built vocabulary (real ids for the tokens it holds)
against a port of HF's merge-list BPE. The real facebook/opt-125m folder is used when present in
$MODELCOLLAPSE_DATA_DIR/opt-125m (skipped otherwise)."""

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import regex
from flax import nnx

from conftest import REAL_DATA
from test_tokenizers import _ref_bpe, _ref_bytes_to_unicode
from modelcollapse.datasets import fetch
from modelcollapse.lm import generate as G
from modelcollapse.lm import hf_checkpoint as H
from modelcollapse.lm import opt as O
from modelcollapse.lm.opt_tokenizer import OPTTokenizer

safetensors_numpy = pytest.importorskip("safetensors.numpy")

TINY = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "ffn_dim": 32, "num_attention_heads": 4,
        "max_position_embeddings": 32, "word_embed_proj_dim": 16, "do_layer_norm_before": True}
# OPT-350m's shape of architecture: post-LN, no final LayerNorm, embeddings narrower than the residual.
POST_PROJ = TINY | {"do_layer_norm_before": False, "word_embed_proj_dim": 8}
# float32 against float64: errors of 1e-5 of the logits' scale (~10 here; post-LN amplifies
# rounding). A wrong offset, mask or scale moves them by >= 1e-2.
TOL = 1e-5


def assert_close(actual, expected, scale=10.0):
    np.testing.assert_allclose(actual, expected, rtol=TOL, atol=TOL * scale)


def hf_config(arch):
    """config.json as transformers writes it for OPT (with its bookkeeping keys)."""
    return {"architectures": ["OPTForCausalLM"], "model_type": "opt", "activation_function": "relu",
            "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0, "layerdrop": 0.0,
            "init_std": 0.02, "enable_bias": True, "layer_norm_elementwise_affine": True,
            "_remove_final_layer_norm": False, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2,
            "prefix": "</s>", "torch_dtype": "float32", "use_cache": True, "tie_word_embeddings": True, **arch}


def hf_tensors(arch, seed=0):
    """Random weights under HF's names and torch layouts ([out, in]); large enough for logits ~1-5."""
    rng = np.random.default_rng(seed)
    d, f, e, v = arch["hidden_size"], arch["ffn_dim"], arch["word_embed_proj_dim"], arch["vocab_size"]
    t = {}

    def put(name, *shape, scale=0.3, center=0.0):
        t[name] = (center + scale * rng.standard_normal(shape)).astype(np.float32)

    p = "model.decoder"
    put(f"{p}.embed_tokens.weight", v, e, scale=1.0)
    put(f"{p}.embed_positions.weight", arch["max_position_embeddings"] + 2, d, scale=1.0)
    if e != d:
        put(f"{p}.project_in.weight", d, e, scale=0.5)
        put(f"{p}.project_out.weight", e, d, scale=0.5)
    for i in range(arch["num_hidden_layers"]):
        q = f"{p}.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            put(f"{q}.self_attn.{proj}.weight", d, d, scale=0.5)
            put(f"{q}.self_attn.{proj}.bias", d, scale=0.1)
        put(f"{q}.fc1.weight", f, d)
        put(f"{q}.fc1.bias", f, scale=0.1)
        put(f"{q}.fc2.weight", d, f)
        put(f"{q}.fc2.bias", d, scale=0.1)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            put(f"{q}.{norm}.weight", d, scale=0.1, center=1.0)
            put(f"{q}.{norm}.bias", d, scale=0.1)
    if arch["do_layer_norm_before"]:
        put(f"{p}.final_layer_norm.weight", d, scale=0.1, center=1.0)
        put(f"{p}.final_layer_norm.bias", d, scale=0.1)
    return t


def write_folder(folder, arch, tensors, fmt="safetensors"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(arch)))
    if fmt == "safetensors":
        safetensors_numpy.save_file(tensors, str(folder / "model.safetensors"))
    else:  # transformers' FlaxOPTForCausalLM layout: nested, kernel [in, out], embedding, LayerNorm scale
        from flax.serialization import msgpack_serialize

        tree = {}
        for name, array in tensors.items():
            *path, leaf = name.split(".")
            if leaf == "weight":
                leaf = {"embed_tokens": "embedding", "embed_positions": "embedding"}.get(path[-1]) or \
                       ("scale" if path[-1].endswith("layer_norm") else "kernel")
            node = tree
            for key in path:
                node = node.setdefault(key, {})
            node[leaf] = array.T if leaf == "kernel" else array
        (folder / "flax_model.msgpack").write_bytes(msgpack_serialize(tree))
    return folder


def numpy_opt(t, arch, tokens, mask=None):
    """HF's OPTForCausalLM forward in float64, transcribed from modeling_opt.py (not our module)."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    tokens = np.asarray(tokens)
    b, n = tokens.shape
    mask = np.ones((b, n), np.int64) if mask is None else np.asarray(mask, np.int64)
    d, h = arch["hidden_size"], arch["num_attention_heads"]
    hd, p = d // h, "model.decoder"

    def ln(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * t[f"{name}.weight"] + t[f"{name}.bias"]

    def lin(x, name):
        return x @ t[f"{name}.weight"].T + t.get(f"{name}.bias", 0.0)

    x = t[f"{p}.embed_tokens.weight"][tokens]
    if f"{p}.project_in.weight" in t:
        x = lin(x, f"{p}.project_in")
    positions = np.cumsum(mask, axis=1) * mask - 1  # OPTLearnedPositionalEmbedding
    x = x + t[f"{p}.embed_positions.weight"][positions + 2]
    allowed = np.tril(np.ones((n, n), bool))[None] & (mask[:, None, :] > 0)  # [B, T, S]
    pre = arch["do_layer_norm_before"]
    for i in range(arch["num_hidden_layers"]):
        q = f"{p}.layers.{i}"
        res, y = x, (ln(x, f"{q}.self_attn_layer_norm") if pre else x)
        heads = lambda z: z.reshape(b, n, h, hd).transpose(0, 2, 1, 3)
        qs = heads(lin(y, f"{q}.self_attn.q_proj") * hd ** -0.5)
        ks, vs = heads(lin(y, f"{q}.self_attn.k_proj")), heads(lin(y, f"{q}.self_attn.v_proj"))
        s = np.where(allowed[:, None], qs @ ks.transpose(0, 1, 3, 2), np.finfo(np.float64).min)
        w = np.exp(s - s.max(-1, keepdims=True))
        att = ((w / w.sum(-1, keepdims=True)) @ vs).transpose(0, 2, 1, 3).reshape(b, n, d)
        x = res + lin(att, f"{q}.self_attn.out_proj")
        if not pre:
            x = ln(x, f"{q}.self_attn_layer_norm")
        res, y = x, (ln(x, f"{q}.final_layer_norm") if pre else x)
        x = res + lin(np.maximum(lin(y, f"{q}.fc1"), 0.0), f"{q}.fc2")
        if not pre:
            x = ln(x, f"{q}.final_layer_norm")
    if pre:
        x = ln(x, f"{p}.final_layer_norm")
    if f"{p}.project_out.weight" in t:
        x = lin(x, f"{p}.project_out")
    return x @ t[f"{p}.embed_tokens.weight"].T


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, tokens, mask):
    return nnx.merge(graphdef, state)(tokens, attention_mask=mask)


def forward(model, tokens, mask=None):
    return np.asarray(_forward(*nnx.split(model), jnp.asarray(tokens), None if mask is None else jnp.asarray(mask)))


def _tokens(shape, vocab=TINY["vocab_size"], seed=1):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype(np.int32)


# -- loading and the forward pass


@pytest.mark.parametrize("fmt", ["safetensors", "msgpack"])
@pytest.mark.parametrize("arch", [TINY, POST_PROJ], ids=["pre_ln", "post_ln_proj"])
def test_loaded_logits_match_numpy(tmp_path, arch, fmt):
    tensors = hf_tensors(arch)
    model = H.load_opt(write_folder(tmp_path / "m", arch, tensors, fmt))
    tokens = _tokens((2, 20))
    logits = forward(model, tokens)
    expected = numpy_opt(tensors, arch, tokens)
    assert logits.shape == (2, 20, arch["vocab_size"]) and logits.dtype == np.float32
    assert np.abs(expected).max() > 1  # not near-zero logits
    assert_close(logits, expected, np.abs(expected).max())


@pytest.mark.parametrize("arch", [TINY, POST_PROJ], ids=["pre_ln", "post_ln_proj"])
def test_left_padding_matches_numpy_and_the_unpadded_row(tmp_path, arch):
    tensors = hf_tensors(arch, seed=3)
    model = H.load_opt(write_folder(tmp_path / "m", arch, tensors))
    real = _tokens((2, 12), seed=4)
    pad = 3
    tokens = real.copy()
    tokens[1] = np.concatenate([np.full(pad, 1), real[1, :-pad]])  # row 1: 3 pads, then its first 9 tokens
    mask = np.ones_like(tokens)
    mask[1, :pad] = 0
    logits = forward(model, tokens, mask)
    expected = numpy_opt(tensors, arch, tokens, mask)
    assert_close(logits[0], expected[0])
    assert_close(logits[1, pad:], expected[1, pad:])  # real tokens only
    # Positions count real tokens: the padded row's logits are the unpadded row's.
    assert_close(logits[1, pad:], forward(model, real[1:, :-pad])[0])


def test_matches_transformers(tmp_path):
    torch = pytest.importorskip("torch", reason="torch not installed: transformers' OPT cannot run here")
    transformers = pytest.importorskip("transformers", reason="transformers not installed")
    for arch in (TINY, POST_PROJ):
        tensors = hf_tensors(arch, seed=5)
        folder = write_folder(tmp_path / str(arch["word_embed_proj_dim"]), arch, tensors)
        hf = transformers.OPTForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
        tokens = _tokens((2, 16), seed=6)
        mask = np.ones_like(tokens)
        mask[1, :4] = 0
        with torch.no_grad():
            expected = hf(input_ids=torch.tensor(tokens, dtype=torch.long),
                          attention_mask=torch.tensor(mask)).logits.numpy()
        logits = forward(H.load_opt(folder), tokens, mask)
        np.testing.assert_allclose(logits[0], expected[0], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(logits[1, 4:], expected[1, 4:], atol=1e-4, rtol=1e-4)


def test_config_of_opt125m_and_its_parameter_count():
    # facebook/opt-125m's config.json (the fields that matter).
    config = O.OPTConfig.from_hf_dict(hf_config({
        "vocab_size": 50272, "hidden_size": 768, "num_hidden_layers": 12, "ffn_dim": 3072, "num_attention_heads": 12,
        "max_position_embeddings": 2048, "word_embed_proj_dim": 768, "do_layer_norm_before": True}))
    assert config == O.OPTConfig(dropout=0.1)
    model = nnx.eval_shape(lambda: O.OPT(config, rngs=nnx.Rngs(0)))
    n = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert n == O.param_count(config) == 125_239_296  # HF's num_parameters() for facebook/opt-125m
    with pytest.raises(ValueError, match="activation_function"):
        O.OPTConfig.from_hf_dict(hf_config(TINY | {"activation_function": "gelu"}))
    with pytest.raises(ValueError, match="model_type"):
        O.OPTConfig.from_hf_dict({"model_type": "gpt2"})


def test_head_is_tied_and_saved_head_must_equal_the_embedding(tmp_path):
    tensors = hf_tensors(TINY)
    params = jax.tree.leaves(nnx.state(H.load_opt(write_folder(tmp_path / "a", TINY, tensors)), nnx.Param))
    assert [x.shape for x in params].count((TINY["vocab_size"], TINY["hidden_size"])) == 1  # no second [V, e]
    same = tensors | {"lm_head.weight": tensors["model.decoder.embed_tokens.weight"].copy()}
    H.load_opt(write_folder(tmp_path / "b", TINY, same))
    other = tensors | {"lm_head.weight": tensors["model.decoder.embed_tokens.weight"] + 1}
    with pytest.raises(ValueError, match="lm_head.weight.*differs from the token embedding"):
        H.load_opt(write_folder(tmp_path / "c", TINY, other))


def test_names_without_the_model_prefix_load(tmp_path):
    tensors = hf_tensors(TINY)
    bare = {k.removeprefix("model."): v for k, v in tensors.items()}  # OPTModel's checkpoints
    tokens = _tokens((1, 8))
    assert_close(forward(H.load_opt(write_folder(tmp_path / "m", TINY, bare)), tokens), numpy_opt(tensors, TINY, tokens))


def test_dropout_acts_only_in_training_and_only_with_a_key():
    config = O.OPTConfig(**{k: v for k, v in TINY.items()}, dropout=0.1)
    model = O.OPT(config, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(_tokens((2, 10)))
    plain = model(tokens)
    a = model(tokens, deterministic=False, rngs=nnx.Rngs(dropout=1))
    b = model(tokens, deterministic=False, rngs=nnx.Rngs(dropout=2))
    assert np.abs(np.asarray(a - plain)).max() > 1e-3 and np.abs(np.asarray(a - b)).max() > 1e-3
    np.testing.assert_array_equal(model(tokens, deterministic=True, rngs=nnx.Rngs(dropout=1)), plain)
    for silenced in ("attention", "mlp"):  # each residual branch has its own dropout
        m = O.OPT(config, rngs=nnx.Rngs(0))
        for layer in m.layers:
            zeroed = layer.self_attn.out_proj if silenced == "attention" else layer.fc2
            zeroed.kernel[...], zeroed.bias[...] = jnp.zeros_like(zeroed.kernel[...]), jnp.zeros_like(zeroed.bias[...])
        a, b = (m(tokens, deterministic=False, rngs=nnx.Rngs(dropout=k)) for k in (1, 2))
        assert np.abs(np.asarray(a - b)).max() > 1e-3, silenced
    quiet = O.OPT(dataclasses.replace(config, dropout=0.0), rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(quiet(tokens, deterministic=False, rngs=nnx.Rngs(dropout=1)), quiet(tokens))


# -- decoding through lm.generate


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    model = H.load_opt(write_folder(tmp_path_factory.mktemp("gen") / "m", TINY, hf_tensors(TINY, seed=7)))
    apply_full, decode_fn = O.model_fns(model)
    decoder = G.Decoder(state=nnx.state(model), decode_fn=decode_fn,
                        init_cache=functools.partial(O.init_cache, model))
    return model, jax.jit(apply_full), decoder


PROMPTS = _tokens((3, 8), seed=8)
NEW = 6


def _penalise(logits, present, penalty):
    out = logits.copy()
    idx = np.unique(present)
    out[idx] = np.where(out[idx] > 0, out[idx] / penalty, out[idx] * penalty)
    return out


@pytest.mark.parametrize("penalty", [1.0, 3.0])
def test_greedy_equals_argmax_of_full_forward(loaded, penalty):
    model, full, decoder = loaded
    got = G.generate(decoder, PROMPTS, max_new_tokens=NEW, mode="greedy", repetition_penalty=penalty)
    seqs = PROMPTS.copy()
    for _ in range(NEW):  # no cache: the whole sequence each step
        last = np.asarray(full(decoder.state, seqs))[:, -1].astype(np.float64)
        nxt = [np.argmax(_penalise(last[r], seqs[r], penalty)) for r in range(len(seqs))]
        seqs = np.concatenate([seqs, np.asarray(nxt, np.int32)[:, None]], axis=1)
    np.testing.assert_array_equal(got, seqs[:, PROMPTS.shape[1]:])


def test_beam_equals_a_full_forward_beam_search(loaded):
    """K = 3 beams, no EOS, no penalty: HF's beam search reduces to keeping the K best sums of
    log-probabilities; the reference recomputes every beam's log-probabilities without a cache."""
    model, full, decoder = loaded
    k = 3
    got, scores = G.generate(decoder, PROMPTS, max_new_tokens=NEW, mode="beam", num_beams=k, return_scores=True)
    for r, prompt in enumerate(PROMPTS):
        beams = [(0.0, list(prompt))]
        for _ in range(NEW):
            seqs = np.asarray([s for _, s in beams], np.int32)
            logp = jax.nn.log_softmax(np.asarray(full(decoder.state, seqs))[:, -1].astype(np.float64))
            cands = [(score + float(logp[b, v]), beams[b][1] + [v]) for b, (score, _) in enumerate(beams)
                     for v in range(logp.shape[-1])]
            beams = sorted(cands, key=lambda c: -c[0])[:k]
        assert got[r].tolist() == beams[0][1][len(prompt):]
        np.testing.assert_allclose(scores[r], beams[0][0] / NEW, rtol=1e-5)


def test_beam_of_one_is_greedy_and_cached_logits_equal_full_ones(loaded):
    model, full, decoder = loaded
    beam = G.generate(decoder, PROMPTS, max_new_tokens=NEW, mode="beam", num_beams=5, repetition_penalty=3.0)
    one = G.generate(decoder, PROMPTS, max_new_tokens=NEW, mode="beam", num_beams=1)
    np.testing.assert_array_equal(one, G.generate(decoder, PROMPTS, max_new_tokens=NEW, mode="greedy"))
    # The cache along the chosen 5-beam path (prompt as one chunk, then one token at a time, the
    # position as a traced argument) gives the full forward pass's logits at every step.
    seqs = np.concatenate([PROMPTS, beam], axis=1)
    expected = np.asarray(full(decoder.state, seqs))
    decode = jax.jit(decoder.decode_fn)
    cache = decoder.init_cache(len(seqs), seqs.shape[1])
    p = PROMPTS.shape[1]
    logits, cache = decode(decoder.state, seqs[:, :p], cache, jnp.int32(0))
    assert_close(logits, expected[:, :p])
    for pos in range(p, seqs.shape[1]):
        logits, cache = decode(decoder.state, seqs[:, pos:pos + 1], cache, jnp.int32(pos))
        assert_close(logits[:, 0], expected[:, pos])


def test_decode_checks_its_position(loaded):
    model, _, _ = loaded
    with pytest.raises(ValueError, match="position"):
        model.decode(jnp.zeros((1, 4), jnp.int32), O.init_cache(model, 1, 8), 6)
    with pytest.raises(ValueError, match="max_length"):
        O.init_cache(model, 1, TINY["max_position_embeddings"] + 1)


# -- errors name the file, the tensor, the expected shape, and where to put a folder


def test_missing_tensor_is_named(tmp_path):
    tensors = hf_tensors(TINY)
    del tensors["model.decoder.layers.1.fc2.bias"]
    with pytest.raises(ValueError) as err:
        H.load_opt(write_folder(tmp_path / "m", TINY, tensors))
    for needle in ("model.safetensors", "missing", "model.decoder.layers.1.fc2.bias (16,)"):
        assert needle in str(err.value)


@pytest.mark.parametrize("fmt, name", [("safetensors", "model.decoder.layers.0.self_attn.q_proj.weight"),
                                       ("msgpack", "model.decoder.layers.0.self_attn.q_proj.kernel")])
def test_misshapen_tensor_is_named_with_its_expected_shape(tmp_path, fmt, name):
    tensors = hf_tensors(TINY)
    tensors["model.decoder.layers.0.self_attn.q_proj.weight"] = np.zeros((16, 12), np.float32)
    with pytest.raises(ValueError) as err:
        H.load_opt(write_folder(tmp_path / "m", TINY, tensors, fmt))
    message = str(err.value)
    assert "model.safetensors" in message if fmt == "safetensors" else "flax_model.msgpack" in message
    assert f"{name!r} has shape" in message and "expected (16, 16)" in message


def test_unexpected_tensor_and_torch_only_folders_are_refused(tmp_path):
    tensors = hf_tensors(TINY) | {"model.decoder.layers.2.fc1.bias": np.zeros(32, np.float32)}
    with pytest.raises(ValueError, match="unexpected tensor.*layers.2.fc1.bias"):
        H.load_opt(write_folder(tmp_path / "extra", TINY, tensors))
    folder = tmp_path / "torch"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hf_config(TINY)))
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pytorch_model.bin.*not supported.*safetensors"):
        H.load_opt(folder)
    with pytest.raises(FileNotFoundError, match="config.json"):
        H.load_opt(tmp_path / "nowhere")


def test_locate_opt_searches_the_data_dirs_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELCOLLAPSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MODELCOLLAPSE_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(fetch.DataNotFoundError) as err:
        H.locate_opt("opt-125m", tmp_path / "data")
    message = str(err.value)
    for needle in (str(tmp_path / "data" / "opt-125m"), str(tmp_path / "env" / "opt-125m"),
                   str(tmp_path / "cache" / "data" / "opt-125m"), "huggingface.co/facebook/opt-125m",
                   "model.safetensors", "config.json"):
        assert needle in message
    write_folder(tmp_path / "cache" / "data" / "opt-125m", TINY, hf_tensors(TINY))
    assert H.locate_opt("opt-125m", tmp_path / "data") == tmp_path / "cache" / "data" / "opt-125m"
    write_folder(tmp_path / "env" / "opt-125m", TINY, hf_tensors(TINY))
    assert H.locate_opt("opt-125m", tmp_path / "data") == tmp_path / "env" / "opt-125m"
    write_folder(tmp_path / "data" / "opt-125m", TINY, hf_tensors(TINY))
    assert H.locate_opt("opt-125m", tmp_path / "data") == tmp_path / "data" / "opt-125m"


# -- the tokenizer


# Merges (in priority order) that build the words below; GPT-2's byte map writes a space as 'Ġ'.
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("H", "e"), ("l", "l"), ("He", "ll"), ("Hell", "o"), ("Ġ", "w"),
          ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"), ("Ġ", "a"), ("n", "d"), ("Ġa", "nd"), ("Ġt", "o"),
          ("Ġ", "o"), ("Ġo", "f"), ("x", "y"), ("y", "z")]  # 'xyz' -> xy + z: merge order, not ids, decides
# OPT's (RoBERTa's) real ids for these tokens; HF's OPT tests: "Hello world" -> [2, 31414, 232].
REAL_IDS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, ".": 4, "Ġthe": 5, ",": 6, "Ġto": 7, "Ġand": 8, "Ġof": 9,
            "Ġa": 10, "Ġworld": 232, "Hello": 31414}


def _ref_encode(text, vocab, merges):
    """HF's GPT2Tokenizer (the class OPT uses): regex split, merge-list BPE (test_tokenizers' reference
    transcription of openai/gpt-2's encoder.py), unknown -> <unk>, bos </s>."""
    ranks = {tuple(m): i for i, m in enumerate(merges)}
    byte_map = _ref_bytes_to_unicode()
    ids = [vocab["</s>"]]
    for piece in regex.findall(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""", text):
        word = _ref_bpe("".join(byte_map[b] for b in piece.encode("utf-8")), ranks)
        ids += [vocab.get(tok, vocab["<unk>"]) for tok in word]
    return ids


def tiny_vocab_folder(folder):
    """vocab.json with the real ids above, the other tokens (printable ASCII bytes, merge results) at
    scrambled ids, fillers up to 31,415 ids; merges.txt with '#version' first, as HF writes it."""
    byte_map = _ref_bytes_to_unicode()
    tokens = [byte_map[b] for b in range(0x20, 0x7F)] + ["Ċ"] + [a + b for a, b in MERGES]
    rest = [t for t in dict.fromkeys(tokens) if t not in REAL_IDS]
    free = [i for i in range(31415) if i not in REAL_IDS.values()]
    order = np.random.default_rng(0).permutation(len(free))
    vocab = dict(REAL_IDS)
    vocab.update({t: free[order[i]] for i, t in enumerate(rest)})
    taken = set(vocab.values())
    vocab.update({f"<filler{i}>": i for i in range(31415) if i not in taken})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in MERGES) + "\n",
                                       encoding="utf-8")
    return folder, vocab


@pytest.mark.parametrize("text, ids", [("Hello world", [2, 31414, 232]), (".", [2, 4]), (" the", [2, 5]),
                                       (",", [2, 6]), (" to and of a", [2, 7, 8, 9, 10]),
                                       ("Hello world. the, to", [2, 31414, 232, 4, 5, 6, 7]), ("xyz", None)])
def test_tokenizer_known_ids_on_a_hand_built_vocabulary(tmp_path, text, ids):
    folder, vocab = tiny_vocab_folder(tmp_path / "tok")
    tok = OPTTokenizer.from_folder(folder)
    ids = ids or [2, vocab["xy"], vocab["z"]]  # merge ('x', 'y') comes first; vocab["yz"] exists too
    assert "yz" in vocab and tok.encode(text).tolist() == ids and tok.encode(text).dtype == np.int32
    assert tok.decode(tok.encode(text)) == "</s>" + text  # HF: special tokens kept unless skipped
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


@pytest.mark.parametrize("text", ["hello there, the other world", "Hello  world\n\nof a  thing", "it's 42 o'clock",
                                  "café", "", "HelloHello worldworld", " the the the", "xyzyz xxyyzz"])
def test_tokenizer_matches_hf_bpe_port(tmp_path, text):
    folder, vocab = tiny_vocab_folder(tmp_path / "tok")
    tok = OPTTokenizer.from_folder(folder)
    assert tok.encode(text).tolist() == _ref_encode(text, vocab, MERGES)
    assert tok.vocab_size == 31415 and (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (2, 2, 1, 3)


def test_tokenizer_on_gpt2_merges_with_renumbered_ids():
    """The real 50,000 GPT-2 merges (OPT's merges.txt is GPT-2's vocab.bpe) under a vocabulary whose
    ids are scrambled as fairseq's are: our BPE equals the merge-list port token for token."""
    if not REAL_DATA or not (Path(REAL_DATA) / "gpt2-bpe").is_dir():
        pytest.skip("real data not available: set MODELCOLLAPSE_DATA_DIR to a folder with gpt2-bpe/ (CI: ../shared/data)")
    import tempfile

    src = Path(REAL_DATA) / "gpt2-bpe"
    gpt2 = json.loads((src / "encoder.json").read_text(encoding="utf-8"))
    merges = [tuple(line.split(" ")) for line in (src / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:] if line]
    tokens = [t for t in gpt2 if t != "<|endoftext|>"]
    perm = np.random.default_rng(1).permutation(len(tokens)) + 4
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3} | {t: int(i) for t, i in zip(tokens, perm)}
    with tempfile.TemporaryDirectory(prefix="opt_tok_") as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text((src / "vocab.bpe").read_text(encoding="utf-8"), encoding="utf-8")
        tok = OPTTokenizer.from_folder(tmp)
    text = ("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
            "produced \"no evidence\" that any irregularities took place.\n\n  naïve café 1234 ∑ 🙂")
    ids = tok.encode(text)
    assert ids.tolist() == _ref_encode(text, vocab, merges)
    assert tok.decode(ids, skip_special_tokens=True) == text


# -- the real facebook/opt-125m folder


@pytest.fixture(scope="module")
def real_opt():
    if not REAL_DATA or not (Path(REAL_DATA) / "opt-125m" / "config.json").is_file():
        pytest.skip("facebook/opt-125m not available: put its Hugging Face folder (config.json, model.safetensors, "
                    "vocab.json, merges.txt) in $MODELCOLLAPSE_DATA_DIR/opt-125m")
    return H.locate_opt("opt-125m", REAL_DATA)


def test_real_opt125m_loads_and_runs(real_opt):
    model = H.load_opt(real_opt)
    assert model.config.vocab_size == 50272 and O.param_count(model.config) == 125_239_296
    logits = forward(model, np.asarray([[2, 31414, 232]], np.int32))
    assert logits.shape == (1, 3, 50272) and np.isfinite(logits).all()


def test_real_opt125m_tokenizer_ids(real_opt):
    if not (real_opt / "vocab.json").is_file():
        pytest.skip(f"no vocab.json/merges.txt in {real_opt}")
    tok = OPTTokenizer.from_folder(real_opt)
    assert tok.vocab_size == 50265
    assert tok.encode("Hello world").tolist() == [2, 31414, 232]
    for text, i in [(".", 4), (" the", 5), (",", 6), (" to", 7), (" and", 8), (" of", 9), (" a", 10)]:
        assert tok.encode(text).tolist() == [2, i]
