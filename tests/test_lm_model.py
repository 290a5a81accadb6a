"""GPT model: the forward pass against an independent numpy implementation, causality, tied
weights, the parameter-count formula, the KV cache against full recomputation (jit + scan, beam
reordering), the pure model functions, dropout and argument checks."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from modelcollapse.lm import model as M

SMALL = M.GPTConfig(vocab_size=37, context=24, n_layers=2, d_model=32, n_heads=4)
# float32 logits of size ~1 computed in two orders of summation agree to a few 1e-7; 1e-5 leaves
# room for the accumulation over 2 layers and still catches any wrong mask or position (>= 1e-2).
TOL = 1e-5


def _model(config=SMALL, seed=0, scale=None):
    """A model whose parameters are, if `scale` is given, redrawn as normal(0, scale): at GPT-2's
    init the logits are ~0.1, too small for a tolerance of 1e-5 to mean anything."""
    model = M.GPT(config, rngs=nnx.Rngs(seed))
    if scale is not None:
        state = nnx.state(model, nnx.Param)
        leaves, tree = jax.tree.flatten(state)
        keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
        leaves = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
        nnx.update(model, jax.tree.unflatten(tree, leaves))
    return model


def _tokens(shape, vocab=SMALL.vocab_size, seed=1):
    return jax.random.randint(jax.random.key(seed), shape, 0, vocab, dtype=jnp.int32)


# Jitted calls (cached by graph and shapes): op-by-op eager NNX calls cost seconds each here.
@partial(jax.jit, static_argnums=0)
def _jit_forward(graphdef, state, tokens, dropout_key=None):
    rngs = None if dropout_key is None else nnx.Rngs(dropout=dropout_key)
    return nnx.merge(graphdef, state)(tokens, deterministic=dropout_key is None, rngs=rngs)


@partial(jax.jit, static_argnums=0)
def _jit_decode(graphdef, state, tokens, cache, position):
    return nnx.merge(graphdef, state).decode(tokens, cache, position)


def forward(model, tokens, dropout_key=None):
    return _jit_forward(*nnx.split(model), tokens, dropout_key)


def decode(model, tokens, cache, position):
    return _jit_decode(*nnx.split(model), tokens, cache, jnp.int32(position))


def _numpy_forward(model, tokens):
    """GPT-2 forward pass in float64 numpy from the model's parameter arrays, written independently."""
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    c = model.config
    b, t = tokens.shape
    hd = c.d_model // c.n_heads

    def ln(x, q):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * q["scale"] + q["bias"]

    def gelu(x):  # the tanh approximation (GPT-2)
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    x = p["wte"]["embedding"][np.asarray(tokens)] + p["wpe"][:t]
    for i in range(c.n_layers):
        q = p["blocks"][i]
        h = ln(x, q["ln1"]) @ q["qkv"]["kernel"] + q["qkv"]["bias"]
        heads = []
        for j in range(c.n_heads):
            qh, kh, vh = (h[..., k * c.d_model + j * hd: k * c.d_model + (j + 1) * hd] for k in range(3))
            s = qh @ kh.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
            w = np.exp(s - s.max(-1, keepdims=True))
            heads.append((w / w.sum(-1, keepdims=True)) @ vh)
        x = x + np.concatenate(heads, -1) @ q["out"]["kernel"] + q["out"]["bias"]
        h = gelu(ln(x, q["ln2"]) @ q["fc1"]["kernel"] + q["fc1"]["bias"])
        x = x + h @ q["fc2"]["kernel"] + q["fc2"]["bias"]
    return ln(x, p["ln_f"]) @ p["wte"]["embedding"].T


# -- the forward pass


def test_forward_equals_numpy_reference():
    model = _model(scale=0.3)
    tokens = _tokens((3, SMALL.context))
    logits = forward(model, tokens)
    assert logits.shape == (3, SMALL.context, SMALL.vocab_size) and logits.dtype == jnp.float32
    expected = _numpy_forward(model, tokens)
    assert np.abs(expected).max() > 1  # the check is not on near-zero logits
    np.testing.assert_allclose(np.asarray(logits), expected, atol=TOL * 10, rtol=1e-5)


@pytest.mark.parametrize("j", [0, 5, SMALL.context - 1])
def test_changing_a_token_changes_only_later_logits(j):
    model = _model(scale=0.3)
    tokens = _tokens((2, SMALL.context))
    changed = tokens.at[:, j].set((tokens[:, j] + 1) % SMALL.vocab_size)
    a, b = np.asarray(forward(model, tokens)), np.asarray(forward(model, changed))
    np.testing.assert_array_equal(a[:, :j], b[:, :j])  # exactly: no path from the future
    assert np.all(np.abs(a[:, j:] - b[:, j:]).max(-1) > 1e-4)  # every later position sees it


def test_shorter_sequences_use_the_first_positions():
    model = _model(scale=0.3)
    tokens = _tokens((2, SMALL.context))
    np.testing.assert_allclose(forward(model, tokens[:, :7]), forward(model, tokens)[:, :7], atol=TOL)
    with pytest.raises(ValueError, match="context"):
        model(_tokens((1, SMALL.context + 1)))


def test_output_projection_is_tied_to_the_token_embedding():
    model = _model()
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    v, d = SMALL.vocab_size, SMALL.d_model
    assert [x.shape for x in params].count((v, d)) == 1
    assert not any(x.shape in {(d, v), (v,)} for x in params)  # no separate head, no output bias
    # Changing the embedding moves the logits through the output side too: d logits / d E[k] for a
    # token k that is not in the input is exactly h_t (the final hidden state), non-zero.
    tokens = jnp.zeros((1, 4), jnp.int32)
    emb = model.wte.embedding[...]
    # (A random direction: a constant one is orthogonal to the zero-mean LayerNorm output.)
    bumped = emb.at[5].add(jax.random.normal(jax.random.key(9), (SMALL.d_model,)))
    model.wte.embedding[...] = bumped
    after = forward(model, tokens)
    model.wte.embedding[...] = emb
    before = forward(model, tokens)
    np.testing.assert_array_equal(np.delete(np.asarray(after - before), 5, -1), 0.0)
    assert np.all(np.abs(np.asarray(after - before)[..., 5]) > 0.1)


@pytest.mark.parametrize("config, expected", [
    # The default size (vocab 2000), counted by hand: embeddings 2000*128 + 128*128 = 272,384;
    # per block qkv 128*384+384, out 128*128+128, fc1 128*512+512, fc2 512*128+128, LayerNorms 512
    # = 198,272; two blocks and the final LayerNorm (256): 669,184.
    (M.GPTConfig(vocab_size=2000), 669_184),
    (M.GPTConfig(vocab_size=10, context=8, n_layers=1, d_model=4, n_heads=2, d_ff=6),
     10 * 4 + 8 * 4 + (4 * 12 + 12) + (4 * 4 + 4) + (4 * 6 + 6) + (6 * 4 + 4) + 4 * 4 + 2 * 4),
])
def test_parameter_count(config, expected):
    model = M.GPT(config, rngs=nnx.Rngs(0))
    assert sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))) == expected
    assert M.param_count(config) == expected
    assert M.param_count(config, embeddings=False) == expected - (config.vocab_size + config.context) * config.d_model


# -- the KV cache


def _decode_all(model, tokens, prompt, max_length):
    """Prompt as one chunk at position 0, then one token at a time, inside jit + lax.scan."""
    b, t = tokens.shape
    _, decode_fn = M.model_fns(model)

    @jax.jit
    def run(state, tokens):
        cache = M.init_cache(model, b, max_length)
        first, cache = decode_fn(state, tokens[:, :prompt], cache, 0)

        def step(cache, position):
            token = jax.lax.dynamic_slice_in_dim(tokens, position, 1, axis=1)
            logits, cache = decode_fn(state, token, cache, position)
            return cache, logits[:, 0]

        cache, rest = jax.lax.scan(step, cache, jnp.arange(prompt, t))
        return jnp.concatenate([first, jnp.moveaxis(rest, 0, 1)], axis=1), cache

    return run(nnx.state(model), tokens)


@pytest.fixture(scope="module")
def model():
    return _model(scale=0.3)


@pytest.mark.parametrize("prompt, max_length", [(1, SMALL.context), (9, SMALL.context), (5, 16)])
def test_cached_decoding_equals_full_recompute(model, prompt, max_length):
    apply_full, _ = M.model_fns(model)
    tokens = _tokens((3, max_length), seed=prompt)
    logits, cache = _decode_all(model, tokens, prompt, max_length)
    full = apply_full(nnx.state(model), tokens)
    np.testing.assert_allclose(np.asarray(full), np.asarray(forward(model, tokens)), atol=TOL, rtol=0)
    assert np.abs(np.asarray(full)).max() > 1
    np.testing.assert_allclose(np.asarray(logits), np.asarray(full), atol=TOL, rtol=0)
    shape = (3, SMALL.n_layers, SMALL.n_heads, max_length, SMALL.d_model // SMALL.n_heads)
    assert {k: v.shape for k, v in cache.items()} == {"k": shape, "v": shape}


def test_chunk_in_the_middle_and_method_spelling(model):
    # A multi-token chunk at a position > 0 (e.g. a forced continuation), with the method spellings
    # (GPT.init_cache, GPT.decode with a traced position).
    tokens = _tokens((2, 20), seed=7)
    cache = model.init_cache(2, 20)
    a, cache = decode(model, tokens[:, :6], cache, 0)
    b, cache = decode(model, tokens[:, 6:15], cache, 6)
    c, cache = decode(model, tokens[:, 15:], cache, 15)
    np.testing.assert_allclose(np.concatenate([a, b, c], 1), forward(model, tokens), atol=TOL, rtol=0)


def test_reordering_cache_rows_follows_the_sequences(model):
    # Beam search reorders hypotheses with jax.tree.map(lambda c: c[idx], cache): after it, decoding
    # continues the reordered sequences exactly as a full recompute of those sequences does.
    tokens = _tokens((4, 12), seed=3)
    cache = M.init_cache(model, 4, 12)
    _, cache = decode(model, tokens[:, :8], cache, 0)
    idx = jnp.array([2, 2, 0, 3])
    cache = jax.tree.map(lambda c: c[idx], cache)
    logits, _ = decode(model, tokens[idx, 8:], cache, 8)
    np.testing.assert_allclose(logits, forward(model, tokens[idx])[:, 8:], atol=TOL, rtol=0)


def test_cache_arguments_are_checked(model):
    with pytest.raises(ValueError, match="max_length"):
        M.init_cache(model, 2, SMALL.context + 1)
    with pytest.raises(ValueError, match="batch_size"):
        M.init_cache(model, 0, 4)
    cache = M.init_cache(model, 1, 8)
    with pytest.raises(ValueError, match="position"):
        model.decode(_tokens((1, 3)), cache, 6)


# -- dropout and configuration


def test_dropout_acts_only_in_training_mode():
    config = M.GPTConfig(vocab_size=37, context=24, n_layers=2, d_model=32, n_heads=4, dropout=0.5)
    model = M.GPT(config, rngs=nnx.Rngs(0))
    plain = M.GPT(SMALL, rngs=nnx.Rngs(0))  # the same parameters (same seed), no dropout
    tokens = _tokens((2, 10))
    np.testing.assert_array_equal(forward(model, tokens), forward(plain, tokens))
    a = forward(model, tokens, jax.random.key(1))
    b = forward(model, tokens, jax.random.key(2))
    assert np.abs(np.asarray(a - b)).max() > 1e-3


@pytest.mark.parametrize("kwargs, name", [
    (dict(vocab_size=0), "vocab_size"), (dict(vocab_size=10, context=0), "context"),
    (dict(vocab_size=10, n_layers=0), "n_layers"), (dict(vocab_size=10, d_model=30, n_heads=4), "d_model"),
    (dict(vocab_size=10, d_ff=0), "d_ff"), (dict(vocab_size=10, dropout=1.0), "dropout"),
])
def test_config_checks(kwargs, name):
    with pytest.raises(ValueError, match=name):
        M.GPTConfig(**kwargs)


def test_default_config():
    c = M.GPTConfig(vocab_size=2000)
    assert (c.context, c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.head_dim) == (128, 2, 128, 4, 512, 0.0, 32)
