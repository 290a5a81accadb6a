"""The recursive LM protocol: data per regime, prompts and model selection from the original data,
resume after a kill, and the text metrics on known inputs."""


import jax
import numpy as np
import pytest

from conftest import LM_BLOCK, Killed, assert_same_files, kill_at
from modelcollapse import checkpoint
from modelcollapse.lm import experiment, metrics
from modelcollapse.lm.model import GPTConfig
from modelcollapse.lm.train import OptimizerConfig
from modelcollapse.regimes import Regime

BLOCK = LM_BLOCK  # the `corpus` fixture (conftest) has blocks of this many tokens


def _cfg(**kw):
    base = dict(model=GPTConfig(vocab_size=24, context=2 * BLOCK, n_layers=1, d_model=16, n_heads=2),
                optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=2), generations=2, epochs=2.0,
                batch_size=4, eval_every=3, decoding="beam", num_beams=2, generate_batch=16, examples=1,
                kl_blocks=8)
    return experiment.LMConfig(**(base | kw))


def _ref(corpus_cfg, data):
    return experiment.Reference(validation_rows=experiment.rows(data["validation"]),
                                test_rows=experiment.rows(data["test"]), test_blocks=data["test"],
                                rare=metrics.rare_mask(data["train"], 24), truth=corpus_cfg.language())


# ---------------------------------------------------------------- regimes


def test_training_blocks_per_regime():
    original = np.arange(40 * BLOCK, dtype=np.int32).reshape(40, BLOCK)
    conts = [-(g + 1) * np.ones((40, BLOCK), np.int32) for g in range(3)]
    key = jax.random.key(0)
    assert experiment.training_blocks(0, Regime(), original, conts, key) is original
    np.testing.assert_array_equal(experiment.training_blocks(2, Regime(), original, conts, key), conts[1])
    mixed = experiment.training_blocks(2, Regime(name="mix", real_fraction=0.1), original, conts, key)
    assert mixed.shape == original.shape  # the synthetic set has the real set's size
    real_rows = np.flatnonzero(mixed[:, 0] >= 0)
    assert len(real_rows) == 4  # round(0.1 * 40) original blocks, at their own rows
    np.testing.assert_array_equal(mixed[real_rows], original[real_rows])
    assert np.all(mixed[np.setdiff1d(np.arange(40), real_rows)] == -2)
    pool = experiment.training_blocks(2, Regime(name="accumulate"), original, conts, key)
    assert pool.shape == (120, BLOCK)
    np.testing.assert_array_equal(pool, np.concatenate([original, conts[0], conts[1]]))  # all data so far
    sub = experiment.training_blocks(2, Regime(name="accumulate_subsample"), original, conts, key)
    assert sub.shape == original.shape and len({tuple(r) for r in sub}) >= 3
    assert {tuple(r) for r in sub} <= {tuple(r) for r in pool}


def test_rows_pair_consecutive_blocks():
    blocks = np.arange(5 * BLOCK).reshape(5, BLOCK)
    r = experiment.rows(blocks)
    assert r.shape == (2, 2 * BLOCK)
    np.testing.assert_array_equal(r[1], np.concatenate([blocks[2], blocks[3]]))


# ---------------------------------------------------------------- the chain


def test_protocol_prompts_and_selection_use_the_original(corpus, monkeypatch, tmp_path):
    corpus_cfg, data = corpus
    seen_prompts, seen_validation = [], []
    real_continue = experiment.continue_blocks
    real_train = experiment.train

    def spy_continue(model, prompts, cfg, key, *, new_tokens, rejected=None):
        assert rejected is None  # no verifier in this regime
        seen_prompts.append(np.array(prompts))
        out = real_continue(model, prompts, cfg, key, new_tokens=new_tokens)
        assert out.shape == (len(prompts), new_tokens)
        return out

    def spy_train(model, **kw):
        seen_validation.append(np.array(kw["validation_blocks"]))
        return real_train(model, **kw)

    monkeypatch.setattr(experiment, "continue_blocks", spy_continue)
    monkeypatch.setattr(experiment, "train", spy_train)
    cfg = _cfg(generations=1)
    out = experiment.run_chain(cfg, seed=0, chain=0, regime=Regime(name="mix", real_fraction=0.25), corpus=data,
                               ref=_ref(corpus_cfg, data), checkpoint_dir=tmp_path, log=lambda s: None)
    # generation 1's data: every original training block is a prompt
    assert any(p.shape == data["train"].shape and np.array_equal(p, data["train"]) for p in seen_prompts)
    assert all(np.array_equal(v, experiment.rows(data["validation"])) for v in seen_validation)
    assert out["data_ppl"].shape == (2, len(data["train"]))
    assert out["examples"].shape == (2, 1, BLOCK)
    assert np.all(out["test_ppl"] > 1) and np.all(np.isfinite(out["kl_truth_model"]))
    assert np.all(out["kl_truth_model"] >= 0)  # a KL divergence


def test_killed_chain_resumes_to_identical_files(corpus, tmp_path):
    corpus_cfg, data = corpus
    cfg = _cfg()
    ref = _ref(corpus_cfg, data)
    regime = Regime(name="accumulate")
    whole = experiment.run_chain(cfg, seed=1, chain=2, regime=regime, corpus=data, ref=ref,
                                 checkpoint_dir=tmp_path / "whole", log=lambda s: None)
    with pytest.raises(Killed):
        experiment.run_chain(cfg, seed=1, chain=2, regime=regime, corpus=data, ref=ref,
                             checkpoint_dir=tmp_path / "killed", log=kill_at("generation 1"))
    (folder,) = (tmp_path / "killed").iterdir()  # keyed by settings and inputs (checkpoint.resume)
    assert checkpoint.latest(folder)[0] == 1
    lines = []
    resumed = experiment.run_chain(cfg, seed=1, chain=2, regime=regime, corpus=data, ref=ref,
                                   checkpoint_dir=tmp_path / "killed", log=lines.append)
    assert lines[0].startswith("resuming after generation 1") and len(lines) == 2
    assert whole.keys() == resumed.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)
    assert_same_files(tmp_path / "whole" / folder.name, folder, [f"generation_{g:03d}.npz" for g in range(3)])


def test_checkpoints_of_other_settings_are_not_resumed(corpus, tmp_path):
    corpus_cfg, data = corpus
    ref = _ref(corpus_cfg, data)
    experiment.run_chain(_cfg(generations=1), seed=0, chain=0, regime=Regime(), corpus=data, ref=ref,
                         checkpoint_dir=tmp_path, log=lambda s: None)
    lines = []
    experiment.run_chain(_cfg(generations=1, epochs=1.0), seed=0, chain=0, regime=Regime(), corpus=data, ref=ref,
                         checkpoint_dir=tmp_path, log=lines.append)
    assert "other settings" in lines[0]


def test_fresh_real_data_is_a_clear_error(corpus, tmp_path):
    corpus_cfg, data = corpus
    regime = Regime(name="mix", real_fraction=0.1, real_source="fresh")
    with pytest.raises(ValueError, match="only 'original' is available"):
        experiment.run_chain(_cfg(), seed=0, chain=0, regime=regime, corpus=data, ref=_ref(corpus_cfg, data),
                             checkpoint_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing started


def test_context_too_short_is_a_clear_error(corpus, tmp_path):
    corpus_cfg, data = corpus
    cfg = _cfg(model=GPTConfig(vocab_size=24, context=BLOCK, n_layers=1, d_model=16, n_heads=2))
    with pytest.raises(ValueError, match="context 8 must be at least 2 x block - 1 = 15"):
        experiment.run_chain(cfg, seed=0, chain=0, regime=Regime(), corpus=data, ref=_ref(corpus_cfg, data),
                             checkpoint_dir=tmp_path)


# ---------------------------------------------------------------- metrics on known inputs


def test_distinct_n_known_values():
    blocks = np.array([[1, 2, 1, 2], [1, 2, 3, 4]])
    assert metrics.distinct_n(blocks, 1) == 4 / 8
    assert metrics.distinct_n(blocks, 2) == 4 / 6  # (1,2) (2,1) (2,3) (3,4)
    assert metrics.distinct_n(blocks, 4) == 1.0
    assert metrics.distinct_n(np.zeros((3, 5), int), 3) == 1 / 9


def test_unigram_entropy_and_rare_mass():
    uniform = np.arange(8).reshape(2, 4)
    assert metrics.unigram_entropy(uniform, 8) == pytest.approx(np.log(8))
    # counts: token 0 x6, token 1 x3, token 2 x1, token 3 never: rarest half of mass = {3, 2, 1}
    ref = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 1, 2]])
    mask = metrics.rare_mask(ref, 4)
    np.testing.assert_array_equal(mask, [False, True, True, True])
    assert metrics.rare_share(np.array([[0, 1, 2, 3]]), mask) == 0.75
    assert metrics.rare_share(ref, mask) == pytest.approx(0.4)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="token ids must be in"):
        metrics.unigram_entropy(np.array([[0, 9]]), 4)
    with pytest.raises(ValueError, match="integer array"):
        metrics.distinct_n(np.zeros(3), 1)
