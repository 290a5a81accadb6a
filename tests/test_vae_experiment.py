"""The recursive VAE chain: training data per regime and synthetic mode, resume after a kill,
and the checks that reject meaningless settings before any work."""

import numpy as np
import pytest
from flax import nnx

from conftest import Killed, assert_same_files, kill_at
from modelcollapse import checkpoint
from modelcollapse.regimes import Regime
from modelcollapse.vae import classifier, experiment


@pytest.fixture(scope="module")
def parts():
    from sklearn.datasets import load_digits

    images = (load_digits().images[:, :, :, None] / 16.0).astype(np.float32)
    clf = classifier.DigitClassifier(image_shape=(8, 8, 1), rngs=nnx.Rngs(0))  # untrained: scores are still defined
    scorer = {"classifier": clf, "real_features": classifier.features(clf, images[-60:]),
              "validation": images[-100:-60]}
    return images[:96], scorer


def _cfg(**kw):
    base = dict(architecture="mlp", latent=2, hidden=(16,), generations=2, epochs=1, batch_size=32,
                eval_samples=40, latent_samples=20, grid_images=4)
    return experiment.VAEConfig(**(base | kw))


def test_training_data_per_regime_and_mode(parts):
    train, _ = parts
    key = __import__("jax").random.key(0)
    pool = [np.full((50, 8, 8, 1), -1.0, np.float32), np.full((50, 8, 8, 1), -2.0, np.float32)]
    data, mode, n_real, n = experiment._training_data(0, _cfg(), Regime(), train, None, [], key)
    assert mode == "fixed" and n == len(train) and data["images"] is train
    fixed = _cfg(synthetic="fixed", synthetic_size=50)
    data, _, _, n = experiment._training_data(2, fixed, Regime(name="mix", real_fraction=0.2), train, None, pool, key)
    images = data["images"]
    assert n == 50 and np.sum(images[:, 0, 0, 0] >= 0) == 10  # 20% of the set is real
    assert np.all(images[images[:, 0, 0, 0] < 0] == -2.0)  # the rest is the latest synthetic set
    data, _, _, n = experiment._training_data(2, fixed, Regime(name="accumulate"), train, None, pool, key)
    assert n == len(train) + 100
    np.testing.assert_array_equal(data["images"], np.concatenate([train] + pool))  # all data so far
    data, _, _, n = experiment._training_data(2, fixed, Regime(name="accumulate_subsample"), train, None, pool, key)
    assert n == 50
    assert set(np.unique(data["images"][:, 0, 0, 0])) <= set(np.unique(np.concatenate([train] + pool)[:, 0, 0, 0]))
    model = experiment.build_model(_cfg(), (8, 8, 1), 0)
    data, mode, n_real, n = experiment._training_data(1, _cfg(), Regime(name="mix", real_fraction=0.25), train,
                                                      model, [], key)
    assert mode == "fresh" and n_real == 8 and n == len(train)  # 25% of each batch of 32 is real


@pytest.mark.parametrize("regime, synthetic, match", [
    (Regime(name="accumulate"), "fresh", "needs synthetic: fixed"),
    (Regime(name="mix", real_fraction=0.5, real_source="fresh"), "fresh", "only 'original'"),
])
def test_meaningless_regimes_are_rejected(regime, synthetic, match):
    with pytest.raises(ValueError, match=match):
        experiment.check_regime(regime, synthetic)


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="architecture must be one of"):
        _cfg(architecture="resnet")
    with pytest.raises(ValueError, match="latent_samples and grid_images must not exceed eval_samples"):
        _cfg(latent_samples=100)


@pytest.mark.parametrize("synthetic, regime", [("fresh", Regime(name="mix", real_fraction=0.25)),
                                               ("fixed", Regime(name="accumulate"))])
def test_killed_chain_resumes_to_identical_files(parts, tmp_path, synthetic, regime):
    train, scorer = parts
    cfg = _cfg(synthetic=synthetic, synthetic_size=64)
    run = dict(seed=0, chain=1, regime=regime, train_images=train, scorer_parts=scorer)
    whole = experiment.run_chain(cfg, checkpoint_dir=tmp_path / "whole", log=lambda s: None, **run)
    with pytest.raises(Killed):
        experiment.run_chain(cfg, checkpoint_dir=tmp_path / "killed", log=kill_at("generation 1"), **run)
    lines = []
    resumed = experiment.run_chain(cfg, checkpoint_dir=tmp_path / "killed", log=lines.append, **run)
    (folder,) = (tmp_path / "killed").iterdir()  # keyed by settings and inputs (checkpoint.resume)
    assert lines[0] == f"resuming after generation 1 (checkpoints in {folder})"
    for name in whole:
        np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)
    assert_same_files(tmp_path / "whole" / folder.name, folder, [f"generation_{g:03d}.npz" for g in range(3)])
    assert whole["grid_images"].shape == (3, 4, 8, 8)
    assert whole["density"].shape == (3, len(experiment.KDE_GRID))
    np.testing.assert_allclose(whole["class_hist"].sum(axis=1), 1.0)
    assert np.all((whole["precision"] >= 0) & (whole["precision"] <= 1))


def test_changed_settings_start_afresh(parts, tmp_path):
    train, scorer = parts
    run = dict(seed=0, chain=0, regime=Regime(), train_images=train, scorer_parts=scorer, checkpoint_dir=tmp_path)
    experiment.run_chain(_cfg(generations=1), log=lambda s: None, **run)
    (old,) = tmp_path.iterdir()
    lines = []
    experiment.run_chain(_cfg(generations=1, epochs=2), log=lines.append, **run)
    assert "other settings" in lines[0] and not lines[1].startswith("resuming")
    (new,) = set(tmp_path.iterdir()) - {old}  # the old settings' checkpoints are kept beside
    assert checkpoint.load_meta(new / "generation_001.npz")["identity"]["config"]["epochs"] == 2
    assert checkpoint.load_meta(old / "generation_001.npz")["identity"]["config"]["epochs"] == 1


def test_fresh_batches_put_the_real_share_first_and_decode_the_rest():
    import jax
    import jax.numpy as jnp

    model = experiment.build_model(_cfg(), (8, 8, 1), 0)
    graphdef, state = nnx.split(model)
    batch = experiment._batch_fn(graphdef, "fresh", 6, 64)
    x = np.asarray(batch(jax.random.key(0), 3, jnp.full((100, 8, 8, 1), 7.0), jax.random.key(1), state))
    assert x.shape == (64, 8, 8, 1)
    assert np.all(x[:6] == 7.0)  # real rows (the test's marker value)
    assert np.all((x[6:] > 0) & (x[6:] < 1))  # decoder means of the previous generation
    assert experiment._batch_fn(graphdef, "fresh", 6, 64) is batch  # one object: one compilation


@pytest.mark.parametrize("mode,n_real,per_step", [("fixed", 0, 4), ("fresh", 4, 6)])
def test_real_rows_come_once_per_epoch_with_the_keys_train_passes(mode, n_real, per_step):
    # vae.train gives a batch function a different key every step; the epochs of real rows must
    # still be permutations (they come from the generation's fixed shuffle key).
    import jax
    import jax.numpy as jnp

    model = experiment.build_model(_cfg(), (8, 8, 1), 0)
    graphdef, state = nnx.split(model)
    batch = experiment._batch_fn(graphdef, mode, n_real, per_step)
    images = jnp.arange(12.0).reshape(12, 1, 1, 1) * jnp.ones((1, 8, 8, 1))
    extra = (state,) if mode == "fresh" else ()
    rows = [np.asarray(batch(jax.random.fold_in(jax.random.key(0), step), step, images, jax.random.key(1), *extra))
            [:4, 0, 0, 0] for step in range(6)]  # two epochs of 3 steps x 4 real rows
    for epoch in (rows[:3], rows[3:]):
        assert sorted(np.concatenate(epoch).astype(int)) == list(range(12))
