"""Checkpoints: an NNX model and its optax state survive a save/load round trip exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from modelcollapse import checkpoint


class Tiny(nnx.Module):
    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.dense = nnx.Linear(3, width, rngs=rngs)
        self.norm = nnx.LayerNorm(width, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.dense(x))


def _trained(seed):
    model = Tiny(4, rngs=nnx.Rngs(seed))
    opt = optax.adam(1e-2)
    state = nnx.state(model, nnx.Param)
    opt_state = opt.init(state)
    grads = jax.tree.map(jnp.ones_like, state)
    updates, opt_state = opt.update(grads, opt_state, state)
    return model, opt, opt_state


def test_round_trip_model_optimizer_and_key(tmp_path):
    model, opt, opt_state = _trained(0)
    key = jax.random.key(7)
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"model": nnx.state(model), "opt": opt_state, "key": key}, {"generation": 3})
    fresh = nnx.eval_shape(lambda: Tiny(4, rngs=nnx.Rngs(1)))
    opt_like = jax.eval_shape(opt.init, nnx.state(fresh, nnx.Param))
    trees, meta = checkpoint.load(path, {"model": nnx.state(fresh), "opt": opt_like, "key": key})
    assert meta == {"generation": 3}
    nnx.update(fresh, trees["model"])
    x = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(fresh(x), model(x))
    for a, b in zip(jax.tree.leaves(trees["opt"]), jax.tree.leaves(opt_state)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jax.random.key_data(trees["key"]), jax.random.key_data(key))


def test_same_content_same_bytes(tmp_path):
    model, _, opt_state = _trained(0)
    for name in ("a.npz", "b.npz"):
        checkpoint.save(tmp_path / name, {"model": nnx.state(model), "opt": opt_state}, {"x": 1})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_other_model_size_is_a_clear_error(tmp_path):
    model, _, _ = _trained(0)
    checkpoint.save(tmp_path / "ck.npz", {"model": nnx.state(model)})
    other = nnx.eval_shape(lambda: Tiny(5, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"ck.npz: leaf 'model/dense/bias/value' has shape \(4,\), expected \(5,\)"):
        checkpoint.load(tmp_path / "ck.npz", {"model": nnx.state(other)})


def test_latest_finds_highest_generation(tmp_path):
    assert checkpoint.latest(tmp_path / "absent") is None
    for g in (0, 2, 10):
        (tmp_path / f"generation_{g:03d}.npz").write_bytes(b"")
    (tmp_path / ".generation_011.npz.x.tmp").write_bytes(b"")
    assert checkpoint.latest(tmp_path) == (10, tmp_path / "generation_010.npz")
