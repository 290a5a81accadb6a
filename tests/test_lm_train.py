"""GPT training and sequence likelihood: learning a Markov language to its known entropy rate,
best-state selection, NaN detection, determinism, the schedule against its closed form, batches,
the decay mask, silent progress, no recompilation, and log-likelihoods against the full logits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from modelcollapse.lm import likelihood, model as M, train as T

V = 8
TINY = M.GPTConfig(vocab_size=V, context=16, n_layers=1, d_model=32, n_heads=2)
OPT = T.OptimizerConfig(learning_rate=1e-2, warmup_steps=10)


def markov(n, length, seed):
    """n sequences where token v is followed by (v + 1) % V or (v + 3) % V with probability 1/2 each:
    under the true law every transition has probability exactly 1/2, so the best possible expected
    next-token loss is ln 2 (the entropy rate), far below the uniform model's ln V."""
    r = np.random.default_rng(seed)
    x = np.zeros((n, length), np.int32)
    x[:, 0] = r.integers(0, V, n)
    for t in range(1, length):
        x[:, t] = (x[:, t - 1] + np.where(r.random(n) < 0.5, 1, 3)) % V
    return x


TRAIN, VAL = markov(1024, 17, 0), markov(128, 17, 1)


def _train(model=None, **kwargs):
    args = dict(train_blocks=TRAIN, validation_blocks=VAL, key=jax.random.key(0), batch_size=32, steps=120,
                optimizer=OPT, eval_every=40, steps_per_call=10, progress=False)
    return T.train(model or M.GPT(TINY, rngs=nnx.Rngs(0)), **(args | kwargs))


@pytest.fixture(scope="module")
def trained():
    return _train()


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


# -- learning and selection


def test_learns_the_markov_language_to_its_entropy_rate(trained):
    # 120 steps of 32 blocks (3.75 epochs): the validation loss goes from ~ln 8 = 2.08 to within
    # 0.05 nats of ln 2 = 0.69. Below ln 2 only by chance: the 2,048 validation transitions each
    # cost exactly ln 2 under the truth, so a model can beat it only by fitting the validation
    # set's own coin flips, by far less than 0.02.
    losses = [row.val_loss for row in trained.history]
    assert losses[0] < math.log(V) - 0.5
    assert math.log(2) - 0.02 < trained.best_val_loss < math.log(2) + 0.05
    assert trained.history[-1].train_loss < losses[0]


def test_history_rows_and_best_state(trained):
    h = trained.history
    assert [row.step for row in h] == [40, 80, 120]
    assert trained.best_val_loss == min(row.val_loss for row in h)
    assert trained.best_step == h[int(np.argmin([row.val_loss for row in h]))].step
    for row in h:
        assert row.val_ppl == pytest.approx(math.exp(row.val_loss), rel=1e-12)
        assert row.lr == pytest.approx(float(T.lr_schedule(OPT, 120)(row.step - 1)), rel=1e-6)
    # The best state's validation loss, recomputed independently by the likelihood module.
    model = M.GPT(TINY, rngs=nnx.Rngs(5))
    loglik = likelihood.sequence_log_likelihood(model, VAL, batch_size=64, state=trained.best_state)
    assert -loglik.sum() / (VAL.shape[0] * (VAL.shape[1] - 1)) == pytest.approx(trained.best_val_loss, rel=1e-5)


def test_keeps_the_best_state_when_validation_gets_worse():
    # Memorising 8 blocks of uniform noise: validation blocks are fresh noise, on which the best
    # possible loss is ln V (the untrained model's), so validation gets worse as training memorises.
    noise = np.random.default_rng(2).integers(0, V, (72, 17)).astype(np.int32)
    result = _train(train_blocks=noise[:8], validation_blocks=noise[8:], batch_size=8, steps=100, eval_every=10,
                    optimizer=T.OptimizerConfig(learning_rate=1e-2, warmup_steps=0))
    losses = [row.val_loss for row in result.history]
    assert result.history[-1].train_loss < 0.5 * math.log(V)  # it did memorise
    assert losses[-1] > min(losses) + 0.1
    assert result.best_step < 100 and result.best_val_loss == min(losses)
    model = M.GPT(TINY, rngs=nnx.Rngs(0))
    ll = likelihood.sequence_log_likelihood(model, noise[8:], batch_size=64, state=result.best_state)
    assert -ll.sum() / (64 * 16) == pytest.approx(result.best_val_loss, rel=1e-5)


def test_nan_loss_names_the_step():
    # An inf in the embedding makes the very first loss NaN; a huge learning rate blows the
    # parameters up at the first update, so the loss of step 1 is the first non-finite one.
    model = M.GPT(TINY, rngs=nnx.Rngs(0))
    model.wte.embedding[...] = model.wte.embedding[...].at[0, 0].set(jnp.inf)
    with pytest.raises(FloatingPointError, match="at step 0 "):
        _train(model, steps=20)
    huge = T.OptimizerConfig(learning_rate=1e30, warmup_steps=0, clip_norm=1e30)
    with pytest.raises(FloatingPointError, match="at step 1 "):
        _train(steps=20, optimizer=huge)


def test_same_key_same_parameters_bitwise(trained):
    again = _train()
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(again.best_state), _leaves(trained.best_state)))
    other = _train(key=jax.random.key(1), steps=40)  # any other key: a few steps already differ
    assert not np.array_equal(_leaves(other.best_state)[0], _leaves(trained.best_state)[0])


def test_steps_per_call_does_not_change_the_result(trained):
    # The same steps and batches, run 7 at a time then singly up to each evaluation (40 = 5 x 7 + 5)
    # instead of 10 per call. Bitwise equality is not promised (XLA may fuse a scan body
    # differently); float32 rounding over 120 Adam steps stays far below 1e-4.
    other = _train(steps_per_call=7)
    assert [r.step for r in other.history] == [40, 80, 120]
    for a, b in zip(_leaves(other.best_state), _leaves(trained.best_state)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_model_is_not_modified_and_no_recompilation(trained):
    model = M.GPT(TINY, rngs=nnx.Rngs(0))
    before = _leaves(nnx.state(model))
    sizes = T._run._cache_size(), T._evaluate._cache_size()
    result = _train(model, steps=40, key=jax.random.key(3), optimizer=T.OptimizerConfig(learning_rate=3e-3))
    assert all(np.array_equal(a, b) for a, b in zip(before, _leaves(nnx.state(model))))
    # Another step count, key and optimizer setting: the same compiled programs.
    assert (T._run._cache_size(), T._evaluate._cache_size()) == sizes
    nnx.update(model, result.best_state)  # the result restores into a model of the same config
    assert not np.array_equal(_leaves(nnx.state(model))[0], before[0])


@pytest.mark.parametrize("progress", [True, None])
def test_progress_bar_is_silent_without_a_terminal(capsys, progress):
    _train(steps=10, eval_every=10, progress=progress)
    assert capsys.readouterr().err == ""


# -- the pieces


def test_lr_schedule_closed_form():
    opt = T.OptimizerConfig(learning_rate=2.0, warmup_steps=4, final_lr_fraction=0.25)
    lr = T.lr_schedule(opt, 14)  # warm-up steps 0..3, cosine over steps 4..13
    got = [float(lr(s)) for s in range(14)]
    expected = [2.0 * (s + 1) / 4 for s in range(4)]
    expected += [0.5 + 0.5 * 1.5 * (1 + math.cos(math.pi * (s - 4) / 9)) for s in range(4, 14)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[-1] == pytest.approx(0.5) and got[3] == pytest.approx(2.0)
    assert float(T.lr_schedule(T.OptimizerConfig(learning_rate=1.0, warmup_steps=0), 5)(0)) == 1.0


@pytest.mark.parametrize("n, batch", [(10, 4), (7, 7)])
def test_batches_cover_every_block_once_per_epoch(n, batch):
    blocks = jnp.arange(n, dtype=jnp.int32)[:, None] * jnp.ones((1, 3), jnp.int32)  # row i is all i
    batch_fn = jax.jit(T.make_batch_fn(blocks, batch))
    key = jax.random.key(0)
    rows = np.concatenate([np.asarray(batch_fn(key, s))[:, 0] for s in range(-(-3 * n // batch))])
    for e in range(3):
        assert sorted(rows[e * n:(e + 1) * n]) == list(range(n))
    assert list(rows[:n]) != list(rows[n:2 * n])  # reshuffled each epoch
    np.testing.assert_array_equal(batch_fn(key, 1), batch_fn(key, 1))


def test_decay_mask_selects_linear_kernels():
    model = M.GPT(M.GPTConfig(vocab_size=V, context=16, n_layers=2, d_model=32, n_heads=2), rngs=nnx.Rngs(0))
    mask = T.decay_mask(nnx.state(model, nnx.Param))
    flat = {tuple(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey)): v
            for path, v in jax.tree_util.tree_leaves_with_path(mask)}
    assert len(flat) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))
    decayed = sorted(path for path, v in flat.items() if v)
    assert decayed == sorted(("blocks", str(i), layer, "kernel") for i in range(2)
                             for layer in ("fc1", "fc2", "out", "qkv"))


def test_steps_for_epochs_and_argument_checks():
    assert T.steps_for_epochs(5, n_blocks=100, batch_size=32) == 16  # ceil(500 / 32)
    assert T.steps_for_epochs(0.01, n_blocks=100, batch_size=32) == 1
    with pytest.raises(ValueError, match="exactly one"):
        _train(epochs=1.0)
    with pytest.raises(ValueError, match="block_size"):
        _train(train_blocks=np.zeros((40, 18), np.int32))
    with pytest.raises(ValueError, match="batch_size"):
        _train(batch_size=2000)
    with pytest.raises(ValueError, match="learning_rate"):
        T.OptimizerConfig(learning_rate=0.0)


# -- sequence likelihood


def _direct_log_likelihood(model, tokens, first):
    """float64 numpy from the full logits of one unbatched forward pass."""
    apply_full, _ = M.model_fns(model)
    logits = np.asarray(jax.jit(apply_full)(nnx.state(model), jnp.asarray(tokens[:, :-1])), np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0]  # [N, T - 1]
    return picked[:, first - 1:].sum(-1)


@pytest.mark.parametrize("prefix_length", [0, 1, 6])
def test_sequence_log_likelihood_equals_direct_computation(trained, prefix_length):
    model = M.GPT(TINY, rngs=nnx.Rngs(0))
    nnx.update(model, trained.best_state)  # a trained model: log-probabilities far from uniform
    tokens = markov(23, 12, 3)
    got = likelihood.sequence_log_likelihood(model, tokens, batch_size=8, prefix_length=prefix_length)
    expected = _direct_log_likelihood(model, tokens, max(1, prefix_length))
    assert got.shape == (23,)
    # float32 sums of ~11 terms of size ~1: rounding ~1e-6; 1e-4 still catches a shifted position.
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    ppl = likelihood.sequence_perplexity(model, tokens, batch_size=8, prefix_length=prefix_length)
    np.testing.assert_allclose(ppl, np.exp(-expected / (12 - max(1, prefix_length))), rtol=1e-4)
    # A trained model puts ~1/2 on each of the two successors: perplexity ~2 (uniform would be 8).
    assert np.all(ppl < 2.5)


def test_sequence_log_likelihood_compiles_once_per_batch_shape():
    model = M.GPT(TINY, rngs=nnx.Rngs(0))
    likelihood.sequence_log_likelihood(model, markov(5, 10, 0), batch_size=4)
    size = likelihood._batch_log_likelihood._cache_size()
    out = likelihood.sequence_log_likelihood(model, markov(13, 10, 1), batch_size=4)
    assert out.shape == (13,) and likelihood._batch_log_likelihood._cache_size() == size
    with pytest.raises(ValueError, match="prefix_length"):
        likelihood.sequence_log_likelihood(model, markov(2, 10, 0), prefix_length=10)
    with pytest.raises(ValueError, match="length"):
        likelihood.sequence_log_likelihood(model, markov(2, 18, 0))


def test_learns_the_synthetic_languages_markov_structure():
    """Smoke scale: a small GPT on the synthetic language closes most of the gap between the
    unigram entropy (what a context-free model gets) and the entropy rate (the best possible)."""
    from modelcollapse.lm.synthetic import SyntheticLanguage

    lang = SyntheticLanguage(vocab_size=50, n_successors=4, seed=1)
    train_blocks = np.asarray(lang.corpus(jax.random.key(0), n_tokens=24_000, block_size=33))
    val_blocks = np.asarray(lang.corpus(jax.random.key(1), n_tokens=4_000, block_size=33))
    model = M.GPT(M.GPTConfig(vocab_size=50, context=32, n_layers=1, d_model=32, n_heads=2), rngs=nnx.Rngs(0))
    result = T.train(model, train_blocks=train_blocks, validation_blocks=val_blocks, key=jax.random.key(2),
                     batch_size=16, steps=300, optimizer=T.OptimizerConfig(learning_rate=1e-2, warmup_steps=20),
                     eval_every=100, progress=False)
    gap = lang.unigram_entropy - lang.entropy_rate
    # validation predicts tokens 1..32 of stationary blocks: their true loss is the entropy rate
    assert result.best_val_loss < lang.entropy_rate + 0.25 * gap, (result.best_val_loss, lang.entropy_rate,
                                                                   lang.unigram_entropy)
