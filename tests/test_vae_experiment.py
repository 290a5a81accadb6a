"""The recursive VAE chain: training data per regime and synthetic mode, resume after a kill,
and the checks that reject meaningless settings before any work."""

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import Killed, assert_same_files, kill_at
from modelcollapse import checkpoint, regimes
from modelcollapse.paper import latex_number
from modelcollapse.regimes import Regime
from modelcollapse.vae import classifier, experiment
from modelcollapse.vae.train import epoch_permutations


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
    key = jax.random.key(0)
    pool = [np.full((50, 8, 8, 1), -1.0, np.float32), np.full((50, 8, 8, 1), -2.0, np.float32)]
    data, mode, n_real, n = experiment._training_data(0, _cfg(), Regime(), train, None, [], key)
    assert mode == "fixed" and n == len(train) and data["images"] is train
    fixed = _cfg(synthetic="fixed", synthetic_size=50)
    data, _, _, n = experiment._training_data(2, fixed, Regime(name="mix", real_fraction=0.2), train, None, pool, key)
    images = data["images"]
    assert n == 50 and np.sum(images[:, 0, 0, 0] >= 0) == 10  # 20% of the set is real
    assert np.all(images[images[:, 0, 0, 0] < 0] == -2.0)  # the rest is the latest synthetic set
    subset = jax.random.fold_in(key, experiment._SUBSET)  # the real part: a uniform subset at the subset key
    np.testing.assert_array_equal(images[:10], train[np.asarray(regimes.uniform_subset(subset, len(train), 10))])
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
    with pytest.raises(ValueError, match=r"latent_samples \(\d+\) and grid_images \(\d+\) must be at most eval_samples"):
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
    perms = epoch_permutations(jax.random.key(1), 100, 6, 4)
    x = np.asarray(batch(jax.random.key(0), 3, jnp.full((100, 8, 8, 1), 7.0), perms, state))
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
    perms = epoch_permutations(jax.random.key(1), 12, 4, 6)
    rows = [np.asarray(batch(jax.random.fold_in(jax.random.key(0), step), step, images, perms, *extra))
            [:4, 0, 0, 0] for step in range(6)]  # two epochs of 3 steps x 4 real rows
    for epoch in (rows[:3], rows[3:]):
        assert sorted(np.concatenate(epoch).astype(int)) == list(range(12))


def test_active_units_count_the_encoder_means_that_vary():
    # Burda et al.'s count against NumPy: zero the mean head's weights of units 1 and 3, so their
    # posterior mean is the bias whatever the image; the other units vary with the image.
    model = experiment.build_model(_cfg(latent=5), (8, 8, 1), 0)
    kernel = np.array(model.fc_mean.kernel[...])
    kernel[:, [1, 3]] = 0.0
    model.fc_mean.kernel[...] = kernel
    x = np.random.default_rng(0).uniform(size=(300, 8, 8, 1)).astype(np.float32)
    means = np.asarray(model.encode(x)[0], np.float64)
    variances = means.var(axis=0)
    assert variances[1] == variances[3] == 0.0
    assert experiment.active_units(model, x) == int(np.sum(variances > 0.01))
    model.fc_mean.kernel[...] = np.zeros_like(kernel)
    assert experiment.active_units(model, x) == 0


def test_real_terms_add_up_and_match_the_loss_batch_by_batch():
    import jax

    from modelcollapse.vae.train import elbo_loss

    model = experiment.build_model(_cfg(), (8, 8, 1), 0)
    x = np.random.default_rng(1).uniform(size=(70, 8, 8, 1)).astype(np.float32)
    terms = experiment._mean_terms(model, x, jax.random.key(2), 32)  # batches of 32, 32 and 6
    assert terms["loss"] == pytest.approx(terms["recon"] + terms["kl"], rel=1e-5)
    want = 0.0
    for i, start in enumerate(range(0, 70, 32)):
        part = x[start:start + 32]
        want += float(elbo_loss(model, part, jax.random.fold_in(jax.random.key(2), i))[0]) * len(part)
    assert terms["loss"] == pytest.approx(want / 70, rel=1e-5)


def _summary_rows(values: dict[str, list[list[float]]]) -> list[dict[str, str]]:
    """Summary-CSV rows: values[regime][chain][generation] is the latent std; the other columns
    are filled so the table code can read them."""
    rows = []
    for regime, chains in values.items():
        for c, per_generation in enumerate(chains):
            for g, v in enumerate(per_generation):
                rows.append({"dataset": "fashion_mnist", "regime": regime, "chain": str(c), "generation": str(g),
                             "architecture": "mlp", "synthetic": "fresh", "n_train": "54000", "latent": "20",
                             "epochs": "2", "batch_size": "128", "n_params": "1000",
                             "classifier_accuracy": "0.9", "reference_precision": "0.7",
                             "reference_recall": "0.7", "reference_frechet": "1.0", "latent_std": str(v),
                             "class_entropy": str(2.0 + v), "precision": "0.5", "recall": "0.1",
                             "frechet": "100", "real_nelbo": "250", "real_kl": "20", "active_units": "20",
                             "real_recon": "230", "final_recon": "240", "final_kl": "10"})
    return rows


def test_paper_comparison_numbers_by_hand():
    from modelcollapse.tables import vae as table

    replace = [[0.5, 0.40, 0.35, 0.30, 0.26, 0.20, 0.18], [0.5, 0.44, 0.37, 0.33, 0.28, 0.22, 0.20]]
    mix = [[0.5, 0.45, 0.42, 0.40, 0.38, 0.37, 0.36], [0.5, 0.47, 0.44, 0.42, 0.41, 0.40, 0.38]]
    out = table.numbers(_summary_rows({"replace": replace, "mix10": mix}), generations=[0, 6])
    # the paper's numbering: generation 1 is the first trained on synthetic data; the ratio is 5 / 1
    assert out["vae.ratio_generation"] == "5"
    assert out["vae.R1.ratio"] == "0.500" and out["vae.R1.ratio_se"] == "0"  # 0.20/0.40 = 0.22/0.44: no spread
    assert float(out["vae.R2.ratio"]) == pytest.approx(np.mean([0.37 / 0.45, 0.40 / 0.47]), abs=1e-3)
    assert out["vae.R1.G3.latent_std"] == "0.315" and out["vae.R1.monotone"] == "every chain"
    assert out["vae.paper.G1.latent_std"] == "0.674" and out["vae.paper.ratio"] == "0.642"
    # mix minus replace at the last generation in Welch standard errors
    diff = np.mean([0.36, 0.38]) - np.mean([0.18, 0.20])
    se = np.hypot(np.std([0.36, 0.38], ddof=1) / np.sqrt(2), np.std([0.18, 0.20], ddof=1) / np.sqrt(2))
    assert float(out["vae.R2minusR1.latent_std"]) == pytest.approx(diff, abs=1e-3)
    assert float(out["vae.R2minusR1.latent_std_z"]) == pytest.approx(diff / se, abs=0.5)  # 2 digits
    replace[1][3] = 0.40  # a rise (0.37 -> 0.40) in one chain
    out = table.numbers(_summary_rows({"replace": replace, "mix10": mix}), generations=[0, 6])
    assert out["vae.R1.monotone"] == "not every chain"


def test_paper_comparison_of_a_short_run_says_not_available():
    from modelcollapse.tables import vae as table

    short = [[0.5, 0.40, 0.35], [0.5, 0.44, 0.37]]
    out = table.numbers(_summary_rows({"replace": short}), generations=[0, 2])
    assert out["vae.ratio_generation"] == "2" and out["vae.R1.ratio"] == latex_number(np.mean([0.35 / 0.40, 0.37 / 0.44]))
    assert out["vae.R1.G2.latent_std"] == "0.360" and out["vae.R1.G5.latent_std"] == r"\text{n/a}"
