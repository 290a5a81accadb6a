"""Checkpoints that cannot give wrong results or lose work (issue 15, findings 1, 3, 6 and 8's stale files).

- 1: a chain's checkpoints are valid only for the exact inputs (SHA-256 of the training data, the
  classifier, the corpus, the base model) and settings that made them: after an input changes, a
  rerun equals a fresh run byte for byte.
- 3: a truncated, emptied or bit-flipped checkpoint is named in a warning, moved aside, and the
  chain continues from the last good generation to the same bytes; a damaged single checkpoint
  (classifier, base model) is a `CheckpointError` naming the file, never a zip/EOF traceback.
- 6: other settings' checkpoints are kept (their own folder), and a return to the old settings
  resumes from them.
- 8: `.generation_NNN.npz.*.tmp` files left by a killed save are removed on resume.
"""

import numpy as np
import pytest
from flax import nnx

from conftest import LM_BLOCK, Killed, kill_at
from modelcollapse import checkpoint
from modelcollapse.lm import experiment as lm_experiment
from modelcollapse.lm import metrics as lm_metrics
from modelcollapse.lm.model import GPTConfig
from modelcollapse.lm.train import OptimizerConfig
from modelcollapse.regimes import Regime
from modelcollapse.vae import classifier, experiment


# ---------------------------------------------------------------- damaging a file


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _flip(path, where=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": _truncate, "emptied": _empty, "bit-flipped": _flip}


def _saved(tmp_path):
    path = tmp_path / "ck.npz"
    tree = {"w": np.arange(64, dtype=np.float32).reshape(8, 8), "b": np.ones(8, np.float32)}
    checkpoint.save(path, {"model": tree, "metrics": {"loss": np.float64(1.5)}}, {"generation": 3})
    return path, tree


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_is_a_checkpoint_error_naming_it(tmp_path, damage):
    path, tree = _saved(tmp_path)
    DAMAGE[damage](path)
    for read in (checkpoint.verify, checkpoint.load_meta, lambda p: checkpoint.load(p, {"model": tree}),
                 lambda p: checkpoint.load_flat(p, "metrics")):
        with pytest.raises(checkpoint.CheckpointError, match=str(path)):
            read(path)
    assert issubclass(checkpoint.CheckpointError, ValueError)  # the CLI turns it into a one-line error


def test_every_single_bit_flip_is_caught_or_harmless(tmp_path):
    """Flip one bit at each of 97 places spread over the file: the read fails with CheckpointError,
    or (a flip in a zip field that no reader uses) returns exactly the saved content."""
    path, tree = _saved(tmp_path)
    original = path.read_bytes()
    caught = 0
    for i in range(97):
        path.write_bytes(original)
        _flip(path, i / 97)
        try:
            trees, meta = checkpoint.load(path, {"model": tree, "metrics": None})
        except checkpoint.CheckpointError:
            caught += 1
            continue
        assert meta == {"generation": 3}
        for name in tree:
            np.testing.assert_array_equal(trees["model"][name], tree[name])
        assert float(trees["metrics"]["loss"]) == 1.5
    assert caught >= 70  # most bytes are content, CRC-32 or the digest (78 of 97 when written); the rest zip fields no reader uses


def test_altered_content_with_a_valid_zip_fails_the_sha256(tmp_path):
    """A file rewritten with other values but a consistent zip (CRC-32 recomputed) is caught by the digest."""
    import zipfile

    path, _ = _saved(tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    name = "model/b.npy"
    members[name] = members[name][:-4] + np.float32(2.0).tobytes()
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    with pytest.raises(checkpoint.CheckpointError, match="SHA-256"):
        checkpoint.verify(path)


def test_fingerprint_is_content():
    a = {"x": np.arange(6, dtype=np.float32), "y": {"z": np.ones((2, 2))}}
    same = {"x": np.arange(6, dtype=np.float32), "y": {"z": np.ones((2, 2))}}
    assert checkpoint.fingerprint(a) == checkpoint.fingerprint(same)
    changed = {"x": np.arange(6, dtype=np.float32), "y": {"z": np.full((2, 2), np.nextafter(1.0, 2.0))}}
    assert checkpoint.fingerprint(a) != checkpoint.fingerprint(changed)
    assert checkpoint.fingerprint(a) != checkpoint.fingerprint({"x": a["x"].astype(np.float64), "y": a["y"]})
    assert checkpoint.fingerprint(a) != checkpoint.fingerprint({"x": a["x"].reshape(2, 3), "y": a["y"]})


# ---------------------------------------------------------------- VAE chains


@pytest.fixture(scope="module")
def parts():
    from sklearn.datasets import load_digits

    images = (load_digits().images[:, :, :, None] / 16.0).astype(np.float32)
    return images[:96], images


def _scorer(images, seed=0):
    clf = classifier.DigitClassifier(image_shape=(8, 8, 1), rngs=nnx.Rngs(seed))
    return {"classifier": clf, "real_features": classifier.features(clf, images[-60:]),
            "validation": images[-100:-60]}


def _cfg(**kw):
    base = dict(architecture="mlp", latent=2, hidden=(16,), generations=2, epochs=1, batch_size=32,
                eval_samples=40, latent_samples=20, grid_images=4)
    return experiment.VAEConfig(**(base | kw))


def _vae(parts, directory, log=lambda s: None, cfg=None, scorer=None):
    train, images = parts
    return experiment.run_chain(cfg or _cfg(), seed=0, chain=1, regime=Regime(), train_images=train,
                                scorer_parts=scorer or _scorer(images), checkpoint_dir=directory, log=log)


def _assert_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _folders(directory):
    return sorted(p for p in directory.iterdir() if p.is_dir())


def _folder_of(directory):
    """The folder holding a chain's generation files (whatever the layout under `directory`)."""
    (first,) = directory.rglob("generation_000.npz")
    return first.parent


def _checkpoints(directory):
    """{path: bytes} of every checkpoint under `directory`."""
    return {p: p.read_bytes() for p in sorted(directory.rglob("generation_*.npz"))}


def _copy_tree(src, dst):
    for p in src.rglob("*"):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())


@pytest.fixture(scope="module")
def whole(parts, tmp_path_factory):
    """An uninterrupted chain (generations 0-2) and its checkpoint folder."""
    directory = tmp_path_factory.mktemp("whole")
    return _vae(parts, directory), directory


def test_retrained_classifier_reruns_equal_a_fresh_run(parts, whole, tmp_path):
    """Finding 1: the same chain scored with another classifier must not resume from checkpoints scored
    with the first one (the old code resumed after generation 2 and returned the old metrics)."""
    _, images = parts
    first, directory = whole
    rerun_dir = tmp_path / "rerun"
    _copy_tree(directory, rerun_dir)  # the finished chain's checkpoints, as the old classifier left them
    other = _scorer(images, seed=1)  # "retrained": other parameters, other features
    lines = []
    rerun = _vae(parts, rerun_dir, log=lines.append, scorer=other)
    fresh = _vae(parts, tmp_path / "fresh", scorer=other)
    assert not any(line.startswith("resuming") for line in lines), lines
    _assert_equal(rerun, fresh)
    assert not np.array_equal(rerun["frechet"], first["frechet"])  # the scores did change
    # both sets are kept, each in its own folder, byte-identical to the fresh run's
    assert len(_folders(rerun_dir)) == 2
    (fresh_folder,) = _folders(tmp_path / "fresh")
    for g in range(3):
        name = f"generation_{g:03d}.npz"
        assert (rerun_dir / fresh_folder.name / name).read_bytes() == (fresh_folder / name).read_bytes()


def test_other_training_images_rerun_equal_a_fresh_run(parts, whole, tmp_path):
    train, images = parts
    _, directory = whole
    _copy_tree(directory, tmp_path / "rerun")
    changed = train.copy()
    changed[0, 0, 0, 0] += 1 / 16  # one pixel of one training image
    lines = []
    run = dict(seed=0, chain=1, regime=Regime(), scorer_parts=_scorer(images), log=lines.append)
    rerun = experiment.run_chain(_cfg(), train_images=changed, checkpoint_dir=tmp_path / "rerun", **run)
    assert not any(line.startswith("resuming") for line in lines), lines
    fresh = experiment.run_chain(_cfg(), train_images=changed, checkpoint_dir=tmp_path / "fresh", **run)
    _assert_equal(rerun, fresh)


@pytest.mark.parametrize("damage, generation", [("truncated", 1), ("emptied", 2), ("bit-flipped", 1),
                                                ("bit-flipped", 0)])
def test_damaged_checkpoint_resumes_from_the_last_good_generation(parts, whole, tmp_path, damage, generation):
    """Finding 3: no traceback; the bad file is named and moved aside; the chain continues from the
    last good generation and ends with the same bytes as the uninterrupted run."""
    reference, directory = whole
    _copy_tree(directory, tmp_path)
    folder = _folder_of(tmp_path)
    bad = folder / f"generation_{generation:03d}.npz"
    DAMAGE[damage](bad)
    lines = []
    resumed = _vae(parts, tmp_path, log=lines.append)
    _assert_equal(reference, resumed)
    warning = [line for line in lines if line.startswith("warning")]
    assert len(warning) == 1 and str(bad) in warning[0] and f"continue from generation {generation}" in warning[0]
    if generation:
        assert f"resuming after generation {generation - 1} (checkpoints in {folder})" in lines
    else:
        assert not any(line.startswith("resuming") for line in lines)
    assert (folder / f"generation_{generation:03d}.npz.corrupt").is_file()  # moved aside, not deleted
    ref_folder = _folder_of(directory)
    for g in range(3):
        name = f"generation_{g:03d}.npz"
        assert (folder / name).read_bytes() == (ref_folder / name).read_bytes(), name


def test_changed_settings_keep_the_old_checkpoints_and_resume_them_later(parts, whole, tmp_path):
    """Finding 6: a config edit must not delete work; going back to the old settings resumes it."""
    reference, directory = whole
    _copy_tree(directory, tmp_path)
    old = _folder_of(tmp_path)
    before = _checkpoints(tmp_path)
    lines = []
    _vae(parts, tmp_path, cfg=_cfg(generations=1, epochs=2), log=lines.append)
    after = _checkpoints(tmp_path)
    assert {p: after.get(p) for p in before} == before  # every checkpoint still there, untouched
    assert any("kept 1 checkpoint folder(s) of other settings" in line and old.name in line for line in lines), lines
    (new,) = [p for p in _folders(tmp_path) if p != old]
    assert checkpoint.load_meta(new / "generation_001.npz")["identity"]["config"]["epochs"] == 2
    assert '"epochs": 2' in (new / "identity.json").read_text()
    lines = []
    back = _vae(parts, tmp_path, log=lines.append)  # the original settings again: nothing retrained
    assert f"resuming after generation 2 (checkpoints in {old})" in lines
    assert not any(line.startswith("generation") for line in lines)
    _assert_equal(reference, back)


def test_stale_temporary_files_are_removed_on_resume(parts, whole, tmp_path):
    """Finding 8 (part): a save killed with -9 leaves `.generation_NNN.npz.<random>.tmp`."""
    reference, directory = whole
    _copy_tree(directory, tmp_path)
    folder = _folder_of(tmp_path)
    (folder / "generation_002.npz").unlink()
    stale = [folder / ".generation_002.npz.k9x_1a2b.tmp", tmp_path / ".generation_001.npz.zz.tmp"]
    for path in stale:
        path.write_bytes(b"PK\x03\x04 half a zip")
    keep = folder / "notes.tmp"  # not ours: left alone
    keep.write_text("mine")
    lines = []
    resumed = _vae(parts, tmp_path, log=lines.append)
    assert not any(p.exists() for p in stale) and keep.exists()
    assert any(line.startswith("removed 1 temporary file") and line.endswith(f"in {folder}") for line in lines), lines
    _assert_equal(reference, resumed)


# ---------------------------------------------------------------- LM chains

BLOCK = LM_BLOCK  # the `corpus` fixture (conftest) has blocks of this many tokens


def _lm(corpus_cfg, data, directory, log=lambda s: None):
    cfg = lm_experiment.LMConfig(
        model=GPTConfig(vocab_size=24, context=2 * BLOCK, n_layers=1, d_model=16, n_heads=2),
        optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=2), generations=2, epochs=2.0, batch_size=4,
        eval_every=3, decoding="beam", num_beams=2, generate_batch=16, examples=1, kl_blocks=8)
    ref = lm_experiment.Reference(validation_rows=lm_experiment.rows(data["validation"]),
                                  test_rows=lm_experiment.rows(data["test"]), test_blocks=data["test"],
                                  rare=lm_metrics.rare_mask(data["train"], 24), truth=corpus_cfg.language())
    return lm_experiment.run_chain(cfg, seed=1, chain=0, regime=Regime(name="accumulate"), corpus=data, ref=ref,
                                   checkpoint_dir=directory, log=log)


def test_lm_changed_training_blocks_rerun_equal_a_fresh_run(corpus, tmp_path):
    """Finding 1 for the LM: other training blocks in corpus.npz (same config) must not resume the old chain."""
    corpus_cfg, data = corpus
    with pytest.raises(Killed):
        _lm(corpus_cfg, data, tmp_path / "chain", log=kill_at("generation 1"))
    changed = dict(data) | {"train": np.roll(data["train"], 1, axis=0)}
    lines = []
    rerun = _lm(corpus_cfg, changed, tmp_path / "chain", log=lines.append)
    assert not any(line.startswith("resuming") for line in lines), lines
    fresh = _lm(corpus_cfg, changed, tmp_path / "fresh")
    _assert_equal(rerun, fresh)
    lines = []
    _lm(corpus_cfg, data, tmp_path / "chain", log=lines.append)  # the old corpus: its 2 generations are kept
    assert lines[0].startswith("kept 1 checkpoint folder(s) of other settings") and "resuming after generation 1" in lines[1]


def test_lm_damaged_newest_checkpoint_resumes_to_identical_files(corpus, tmp_path):
    corpus_cfg, data = corpus
    whole = _lm(corpus_cfg, data, tmp_path / "whole")
    with pytest.raises(Killed):
        _lm(corpus_cfg, data, tmp_path / "killed", log=kill_at("generation 1"))
    folder = _folder_of(tmp_path / "killed")
    _flip(folder / "generation_001.npz", 0.3)
    lines = []
    resumed = _lm(corpus_cfg, data, tmp_path / "killed", log=lines.append)
    assert lines[0].startswith(f"warning: checkpoint {folder / 'generation_001.npz'}")
    assert lines[1] == f"resuming after generation 0 (checkpoints in {folder})"
    _assert_equal(whole, resumed)


def test_damaged_base_model_is_a_clear_error(corpus, tmp_path):
    """A single-file checkpoint the CLI reads (base model, classifier): CheckpointError naming it."""
    corpus_cfg, data = corpus
    cfg = lm_experiment.LMConfig(model=GPTConfig(vocab_size=24, context=2 * BLOCK, n_layers=1, d_model=16,
                                                 n_heads=2))
    model = lm_experiment.build_model(cfg, 0)
    path = tmp_path / "base.npz"
    checkpoint.save(path, {"model": nnx.state(model)})
    _truncate(path)
    with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint {path} is unreadable"):
        lm_experiment.load_model(cfg, path)
