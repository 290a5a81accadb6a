"""The LM fidelity protocol (Nature Fig. 1): a base pretrained on a sibling language, where each
generation starts from, the blocks of the histograms, and the numbers the paper's claims are
checked by."""

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import LM_BLOCK
from modelcollapse.lm import experiment
from modelcollapse.lm.corpus import CorpusConfig, build
from modelcollapse.lm.synthetic import SyntheticLanguage
from modelcollapse.regimes import Regime
from modelcollapse.tables import lm as tables
from test_lm_experiment import _cfg, _ref


def test_sibling_language_has_the_same_transitions_with_other_weights():
    lang = SyntheticLanguage(vocab_size=50, n_successors=5, seed=3)
    sibling = SyntheticLanguage(vocab_size=50, n_successors=5, seed=3, weight_seed=7)
    np.testing.assert_array_equal(lang.tables.successors, sibling.tables.successors)
    assert np.abs(lang.tables.probs - sibling.tables.probs).max() > 0.1
    np.testing.assert_allclose(sibling.tables.probs.sum(axis=1), 1.0)
    again = SyntheticLanguage(vocab_size=50, n_successors=5, seed=3, weight_seed=7)
    np.testing.assert_array_equal(again.tables.probs, sibling.tables.probs)


def test_pretraining_split_mixes_own_and_sibling_blocks():
    kw = dict(name="synthetic", block_size=16, vocab_size=60, n_successors=6, train_tokens=64, validation_tokens=64,
              test_tokens=64, pretrain_tokens=16 * 400)
    own = build(CorpusConfig(**kw), seed=0)
    mixed = build(CorpusConfig(**kw, pretrain_weight_seed=5, pretrain_own_share=0.25), seed=0)
    for split in ("train", "validation", "test"):  # only the base's data changes
        np.testing.assert_array_equal(own[split], mixed[split])
    pre = mixed["pretrain"]
    assert pre.shape == own["pretrain"].shape
    own_rows = {tuple(r) for r in own["pretrain"][:100]}
    assert sum(tuple(r) in own_rows for r in pre) == 100  # round(0.25 x 400) of the corpus's own blocks
    lang = CorpusConfig(**kw).language()
    sibling = CorpusConfig(**kw).language(weight_seed=5)
    rest = np.array([r for r in pre if tuple(r) not in own_rows])
    assert np.isfinite(lang.token_log_probs(pre, start=None)[:, 1:]).all()  # same transitions allowed
    # the other blocks are the sibling's: more likely under its weights than under the corpus's own
    assert sibling.token_log_probs(rest, start=None)[:, 1:].sum() > lang.token_log_probs(rest, start=None)[:, 1:].sum()
    with pytest.raises(ValueError, match="pretrain_own_share"):
        CorpusConfig(**kw, pretrain_weight_seed=5, pretrain_own_share=1.5)


def _start_states(monkeypatch):
    starts = []
    real_train = experiment.train

    def spy(model, **kw):
        starts.append(jax.tree.map(np.array, nnx.state(model, nnx.Param)))
        return real_train(model, **kw)

    monkeypatch.setattr(experiment, "train", spy)
    return starts


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("init", ["base", "previous"])
def test_each_generation_starts_from_the_base_or_the_previous_model(corpus, monkeypatch, tmp_path, init):
    corpus_cfg, data = corpus
    cfg = _cfg(generations=2, init=init)
    base = experiment.build_model(cfg, 123)
    base_params = jax.tree.map(np.array, nnx.state(base, nnx.Param))
    starts = _start_states(monkeypatch)
    experiment.run_chain(cfg, seed=0, chain=0, regime=Regime(), corpus=data, ref=_ref(corpus_cfg, data),
                         checkpoint_dir=tmp_path, base_state=nnx.state(base), log=lambda s: None)
    (folder,) = tmp_path.iterdir()
    trained = [jax.tree.map(np.array, nnx.state(experiment.load_model(cfg, experiment._path(folder, g)), nnx.Param))
               for g in range(3)]
    assert _same(starts[0], base_params)  # generation 0 fine-tunes the base either way
    for g in (1, 2):
        assert _same(starts[g], base_params if init == "base" else trained[g - 1]), g
        assert not _same(starts[g], base_params if init == "previous" else trained[g - 1]), g


def test_regime_b_histogram_holds_its_preserved_original_blocks(corpus, tmp_path):
    corpus_cfg, data = corpus
    out = experiment.run_chain(_cfg(generations=1), seed=0, chain=0, regime=Regime(name="mix", real_fraction=0.25),
                               corpus=data, ref=_ref(corpus_cfg, data), checkpoint_dir=tmp_path, log=lambda s: None)
    n = len(data["train"])
    kept = np.flatnonzero(out["data_ppl"][1] == out["data_ppl"][0])  # an original block scores as at generation 0
    assert len(kept) == round(0.25 * n)
    replaced = experiment.training_blocks(1, Regime(name="mix", real_fraction=0.25), data["train"],
                                          [np.zeros_like(data["train"]) - 1], jax.random.fold_in(
                                              jax.random.fold_in(jax.random.key(0), 0), 1))
    np.testing.assert_array_equal(kept, np.flatnonzero(replaced[:, 0] >= 0))


def _rows(label, test, median, q95):
    return [{"label": label, "generation": str(g), "test_ppl": str(t), "data_ppl_median": str(m),
             "data_ppl_q95": str(q)} for g, (t, m, q) in enumerate(zip(test, median, q95))]


def test_fidelity_numbers_on_known_curves():
    a_test = [10, 12, 13, 15, 14, 17, 18, 19, 20, 21, 40]  # one inversion (3 > 4); generation 10 beyond G = 9
    b_test = [10, 11, 11.5, 11.5, 12, 12, 12, 12, 12, 12.5, 12.5]
    a_median = [6, 5, 5, 4.5, 4.5, 4, 4, 4, 4, 4, 4]
    a_q95 = [8, 9, 9.5, 10, 10, 11, 11, 12, 12, 13.5, 20]
    rows = _rows("A", a_test, a_median, a_q95) + _rows("B", b_test, a_median, a_q95)
    # a second chain of A with the same values leaves the means unchanged
    rows += [r | {"chain": "1"} for r in _rows("A", a_test, a_median, a_q95)]
    out = tables.fidelity(rows, replace_label="A", mix_label="B")
    n = 10
    d = np.array([0, 0, 0, 1, -1, 0, 0, 0, 0, 0])  # ranks 1..10 with 3 and 4 swapped
    assert out["A_rho"] == pytest.approx(1 - 6 * (d ** 2).sum() / (n * (n ** 2 - 1)))
    assert out["A_g1"] == pytest.approx(1.2) and out["A_gmax"] == pytest.approx(2.1)
    assert out["B_gmax"] == pytest.approx(1.25) and out["B_below_A"] == 1.0
    assert out["A_median_below"] == 1.0 and out["A_q95_above"] == 1.0
    assert out["A_q95_growth"] == pytest.approx(13.5 / 9) and out["G"] == 9
    worse_b = _rows("A", a_test, a_median, a_q95) + _rows("B", [10, 11, 13.5] + b_test[3:], a_median, a_q95)
    assert tables.fidelity(worse_b, replace_label="A", mix_label="B")["B_below_A"] == 0.0
    no_tail = _rows("A", a_test, a_median, [8, 9, 7.9] + a_q95[3:]) + _rows("B", b_test, a_median, a_q95)
    assert tables.fidelity(no_tail, replace_label="A", mix_label="B")["A_q95_above"] == 0.0
    with pytest.raises(ValueError, match="generations 0..2"):
        tables.fidelity(_rows("A", a_test[:2], a_median[:2], a_q95[:2]) + _rows("B", b_test[:2], a_median[:2],
                                                                                   a_q95[:2]),
                        replace_label="A", mix_label="B")


def test_fidelity_macros_pick_the_beam_replace_and_mix_regimes():
    a_test = [10, 12, 13, 15]
    rows = []
    for label, regime, decoding, test in (("A", "replace", "beam", a_test), ("B", "mix", "beam", [10, 11, 11, 11]),
                                          ("C", "replace", "sample", [10, 30, 60, 90])):
        rows += [r | {"regime": regime, "decoding": decoding} for r in _rows(label, test, [6, 5, 5, 5], [8, 9, 9, 9])]
    out = tables.fidelity_numbers(rows)
    assert out["lm.fid.A_g1"] == "1.20" and out["lm.fid.A_gmax"] == "1.50"  # A, not C (sampled)
    assert out["lm.fid.B_below_A"] == "yes" and out["lm.fid.G"] == "3"
    only_a = [r for r in rows if r["label"] != "B"]
    assert set(tables.fidelity_numbers(only_a).values()) == {r"\text{n/a}"}  # no mix regime: defined, n/a
    assert tables.fidelity_numbers(only_a).keys() == out.keys()
