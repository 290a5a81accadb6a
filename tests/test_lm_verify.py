"""The language model's verifier (issue 21): the judgement table's rates, continuations written
under it, the regime's training set, the refusals, and the numbers the paper quotes."""

import jax
import numpy as np
import pytest

from conftest import LM_BLOCK, smoke_config_refuses
from modelcollapse import regimes
from modelcollapse.lm import experiment, metrics, verifier
from modelcollapse.lm.model import GPTConfig
from modelcollapse.lm.train import OptimizerConfig
from modelcollapse.regimes import Regime
from modelcollapse.tables import lm as tables


def verify_regime(recall=1.0, false_rejection=0.0, real_fraction=0.0):
    return Regime.from_config({"name": "verify_transitions", "recall": recall, "false_rejection": false_rejection,
                               "real_fraction": real_fraction})


def test_the_table_rejects_at_its_rates():
    # 300 x 300 pairs, 8 allowed per row: each realised rate is a binomial share, within 5 s.e. of its setting.
    rng = np.random.default_rng(0)
    allowed = np.zeros((300, 300), bool)
    allowed[np.arange(300)[:, None], rng.choice(300, (300, 8))] = True
    for recall, false_rejection in ((1.0, 0.0), (0.7, 0.2), (0.3, 0.5)):
        table = verifier.rejection_table(allowed, recall=recall, false_rejection=false_rejection, seed=1)
        rates = verifier.accuracy(table, allowed)
        for rate, p, n in ((rates["verifier_recall"], recall, (~allowed).sum()),
                           (rates["verifier_false_rejection"], false_rejection, allowed.sum())):
            assert abs(rate - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12, (rates, recall, false_rejection)
    oracle = verifier.rejection_table(allowed, recall=1.0, false_rejection=0.0, seed=1)
    np.testing.assert_array_equal(oracle, ~allowed)
    np.testing.assert_array_equal(verifier.rejection_table(allowed, recall=0.5, false_rejection=0.1, seed=4),
                                  verifier.rejection_table(allowed, recall=0.5, false_rejection=0.1, seed=4))


def test_a_row_is_never_wholly_rejected():
    allowed = np.eye(6, dtype=bool)
    table = verifier.rejection_table(allowed, recall=1.0, false_rejection=1.0, seed=0)
    assert not table.any()  # every row would reject all: left unjudged
    with pytest.raises(ValueError, match="recall must be a number in"):
        verifier.rejection_table(allowed, recall=1.5, false_rejection=0.0, seed=0)


def _cfg(**kw):
    base = dict(model=GPTConfig(vocab_size=24, context=2 * LM_BLOCK, n_layers=1, d_model=16, n_heads=2),
                optimizer=OptimizerConfig(learning_rate=1e-2, warmup_steps=2), generations=2, epochs=2.0,
                batch_size=4, eval_every=3, decoding="sample", generate_batch=16, examples=1, kl_blocks=8)
    return experiment.LMConfig(**(base | kw))


def _ref(corpus_cfg, data):
    return experiment.Reference(validation_rows=experiment.rows(data["validation"]),
                                test_rows=experiment.rows(data["test"]), test_blocks=data["test"],
                                rare=metrics.rare_mask(data["train"], 24), truth=corpus_cfg.language())


@pytest.mark.parametrize("decoding", ["sample", "beam"])
def test_an_oracle_leaves_no_forbidden_transition_in_the_training_data(corpus, tmp_path, monkeypatch, decoding):
    corpus_cfg, data = corpus
    trained_on = []
    real_blocks = experiment.training_blocks

    def spy(g, regime, original, continuations, key):
        out = real_blocks(g, regime, original, continuations, key)
        trained_on.append((g, out, continuations[g - 1] if g else None))
        return out

    monkeypatch.setattr(experiment, "training_blocks", spy)
    ref, cfg = _ref(corpus_cfg, data), _cfg(decoding=decoding, num_beams=2)
    runs = {}
    for name, regime in (("oracle", verify_regime()), ("none", Regime())):
        trained_on.clear()
        runs[name] = experiment.run_chain(cfg, seed=0, chain=0, regime=regime, corpus=data, ref=ref,
                                          checkpoint_dir=tmp_path / name, log=lambda s: None)
        runs[name + "_data"] = list(trained_on)
    for g, blocks, latest in runs["oracle_data"][1:]:
        np.testing.assert_array_equal(blocks, latest)  # the regime trains on the verified continuations
        text = np.concatenate([data["train"][:, -1:], blocks], axis=1)  # each continuation follows its prompt
        assert np.isfinite(ref.truth.token_log_probs(text, start=None)[:, 1:]).all()
    assert np.all(runs["oracle"]["forbidden_share"] == 0)
    assert runs["none"]["forbidden_share"][1:].max() > 0  # the same chain without it writes some


def test_the_real_share_keeps_its_prompts_places():
    original = np.arange(40 * LM_BLOCK, dtype=np.int32).reshape(40, LM_BLOCK)
    conts = [-(g + 1) * np.ones((40, LM_BLOCK), np.int32) for g in range(2)]
    mixed = experiment.training_blocks(2, verify_regime(real_fraction=0.1), original, conts, jax.random.key(0))
    real_rows = np.flatnonzero(mixed[:, 0] >= 0)
    assert len(real_rows) == 4
    np.testing.assert_array_equal(mixed[real_rows], original[real_rows])
    assert np.all(np.delete(mixed, real_rows, axis=0) == -2)


def test_a_real_corpus_or_another_family_refuses_it_before_any_work():
    with pytest.raises(ValueError, match="verifier of the language's transitions.*on a real corpus.*synthetic"):
        experiment.check_regime(verify_regime(), truth_known=False)
    experiment.check_regime(verify_regime(), truth_known=True)
    from modelcollapse import gaussian
    with pytest.raises(ValueError, match="verifier of the language's transitions"):
        gaussian.simulate(0, sample_size=10, generations=2, replicates=2, regime=verify_regime())
    assert "verified_transitions" in regimes.needs(verify_regime())


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["lm"]["verify"].update(compare=["Z"]), r"lm\.verify\.compare.*'Z'"),
    (lambda c: c["lm"]["verify"]["regimes"][0].update(label="A"), r"lm\.verify\.regimes\[0\]\.label.*used twice"),
    (lambda c: c["lm"]["corpus"].update(name="brown"), r"lm\.verify\.regimes\[0\]\.regime"),
    (lambda c: c["lm"]["verify"]["regimes"][0]["regime"].update(recall=2), r"recall"),
])
def test_check_config_names_the_verify_keys(edit, match):
    smoke_config_refuses(edit, match)


def test_the_numbers_are_the_chains_means():
    def row(label, chain, g, ppl, recall="nan"):
        return {"label": label, "chain": str(chain), "generation": str(g), "test_ppl": str(ppl), "decoding": "beam",
                "forbidden_share": "0.5", "distinct_2": str(0.25 * (g + 1)), "unigram_entropy": "3",
                "kl_truth_model": "0.5", "data_ppl_median": "4", "repetition_penalty": "3.0", "verifier_recall": recall,
                "verifier_false_rejection": "nan" if recall == "nan" else "0.0"}
    rows = [row("A", 0, 0, 10), row("A", 0, 3, 20), row("A", 1, 0, 12), row("A", 1, 3, 30),
            row("V", 0, 0, 10, "1.0"), row("V", 0, 3, 11, "1.0")]
    out = tables.comparison_numbers(rows, block="verify")
    assert out["lm.verify.A.G0.test_ppl"] == "11.0" and out["lm.verify.A.Gmax.test_ppl"] == "25.0"
    assert out["lm.verify.A.ratio"] == "2.27" and out["lm.verify.A.chains"] == "2"
    assert out["lm.verify.V.ratio"] == "1.10" and out["lm.verify.V.verifier_recall"] == "1.00"
    assert out["lm.verify.A.verifier_recall"] == r"\text{n/a}" and out["lm.verify.V.Gmax"] == "3"
    assert out["lm.verify.V.G0.distinct_2"] == "0.250" and out["lm.verify.V.Gmax.distinct_2"] == "1.00"
