"""The paper's LM setting wired end to end (issue 18): `lm.model.arch: opt` with `init: base` runs a
chain through the CLI on a tiny Hugging Face-layout OPT folder (test_opt's helpers) and a tiny
wikitext-2, and generation 0 fine-tunes the checkpoint's weights, not a fresh initialisation;
OPT's tokenizer prepends `</s>` to every line (run_clm's wikitext preprocessing) and the corpus's
vocabulary is the model's padded embedding; the workflow plans no `lm_pretrain` job for arch opt
and needs the OPT folder only when a job runs."""

import json

import jax

import numpy as np
import pytest
import yaml
from flax import nnx

from conftest import ROOT
from modelcollapse import cli
from modelcollapse.datasets import text
from modelcollapse.lm import corpus as lm_corpus
from modelcollapse.lm import experiment, hf_checkpoint, opt
from modelcollapse.lm.opt_tokenizer import OPTTokenizer
from test_opt import TINY, hf_tensors, tiny_vocab_folder, write_folder
from test_workflow import _dry_run

# test_opt's tiny vocabulary has ids 0 .. 31,414; the embedding is padded past them, as OPT-125m's.
ARCH = TINY | {"vocab_size": 31416}
LINE = " the world and the world , to a world of the Hello world .\n"
WIKI = {"wiki.train.raw": (" \n = Hello = \n \n" + LINE * 12),
        "wiki.valid.raw": (" \n = World = \n" + LINE * 4),
        "wiki.test.raw": (" \n = The = \n" + LINE * 4)}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """<data_dir>/opt-tiny/ (config.json, model.safetensors, vocab.json, merges.txt) and wikitext-2-raw."""
    root = tmp_path / "data"
    tensors = hf_tensors(ARCH, seed=3)
    # Small token embeddings (the tied head): a loss near log V, which the divergence guard accepts.
    tensors["model.decoder.embed_tokens.weight"] *= 0.05
    folder = write_folder(root / "opt-tiny", ARCH, tensors)
    tiny_vocab_folder(folder)
    wiki = root / "wikitext-2-raw"
    wiki.mkdir(parents=True)
    for name, body in WIKI.items():
        (wiki / name).write_text(body, encoding="utf-8")
    import hashlib

    monkeypatch.setattr(text, "WIKITEXT2_FILES", {n: hashlib.sha256(b.encode()).hexdigest() for n, b in WIKI.items()})
    monkeypatch.delenv("MODELCOLLAPSE_DATA_DIR", raising=False)
    return root


def _config(data_dir, **lm):
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    block = config["lm"]
    block["corpus"] |= {"name": "wikitext2", "tokenizer": "opt", "block_size": 8, "pretrain_fraction": 0.0}
    del block["verify"]  # a real corpus has no truth to verify against
    block["model"] = {"arch": "opt", "pretrained": "opt-tiny", "n_layers": ARCH["num_hidden_layers"],
                      "d_model": ARCH["hidden_size"], "n_heads": ARCH["num_attention_heads"],
                      "context": ARCH["max_position_embeddings"], "dropout": 0.0}
    # A learning rate so small that generation 0's trained weights are the ones it started from.
    block["optimizer"] |= {"learning_rate": 1.0e-9, "warmup_steps": 0, "weight_decay": 0.0}
    block |= {"init": "base", "generations": 1, "chains": 1, "batch_size": 4, "eval_every": 2, "examples": 1,
              "regimes": [{"label": "A", "regime": "replace", "epochs": 1}],
              "histogram_generations": [0, 1], "example_generations": [0, 1]} | lm
    return config | {"data_dir": str(data_dir), "platform": "cpu"}


def _write(tmp_path, config):
    path = tmp_path / "opt.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_opt_chain_fine_tunes_the_checkpoint(tmp_path, data_dir, capsys):
    config = _config(data_dir)
    path = _write(tmp_path, config)
    corpus_npz, chain_npz = tmp_path / "corpus.npz", tmp_path / "A" / "chain0.npz"
    assert cli.main(["lm", "corpus", "--config", str(path), "--out", str(corpus_npz)]) == 0, capsys.readouterr().err
    built = dict(np.load(corpus_npz))
    # The model's 31,416 embedding rows (config.json), not the tokenizer's 31,415 ids.
    assert int(built["vocab_size"]) == ARCH["vocab_size"] == OPTTokenizer.from_folder(data_dir / "opt-tiny").vocab_size + 1
    assert built["train"][0, 0] == 2 and built["pretrain"].shape == (0, 8)  # </s> first; no pretraining split
    assert cli.main(["lm", "chain", "--config", str(path), "--corpus", str(corpus_npz), "--regime", "A",
                     "--chain", "0", "--out", str(chain_npz)]) == 0, capsys.readouterr().err
    out = np.load(chain_npz)
    assert out["test_ppl"].shape == (2,) and np.isfinite(out["test_ppl"]).all()
    assert int(out["vocab_size"]) == ARCH["vocab_size"]
    cfg = experiment.config_from_block(config["lm"], vocab_size=ARCH["vocab_size"], epochs=1, data_dir=data_dir)
    assert int(out["n_params"]) == opt.param_count(cfg.model) and int(out["n_layers"]) == ARCH["num_hidden_layers"]
    (gen0,) = chain_npz.parent.glob("chain0.checkpoints/*/generation_000.npz")
    params = lambda model: [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
    trained, pretrained = params(experiment.load_model(cfg, gen0)), params(hf_checkpoint.load_opt(data_dir / "opt-tiny"))
    assert len(trained) == len(pretrained)
    for got, want in zip(trained, pretrained):
        np.testing.assert_allclose(got, want, atol=1e-5)
    fresh = params(experiment.build_model(cfg, 0))  # a fresh initialisation is far from the checkpoint
    assert max(np.abs(f - w).max() for f, w in zip(fresh, pretrained)) > 0.5
    provenance = json.loads((tmp_path / "A" / "chain0.npz.provenance.json").read_text())
    assert any("model.safetensors" in json.dumps(i) for i in provenance["inputs"])


def test_opt_lines_start_with_eos_as_run_clm():
    class Chars:  # a stand-in tokenizer: </s> then one id per character
        def encode(self, row):
            return np.array([2] + [ord(c) for c in row], np.int32)

    ids = lm_corpus._encode_lines(Chars(), "a\n \nb")
    assert ids.tolist() == [2, ord("a"), ord("\n"), 2, 2, ord("b")]  # the blank line is an empty row: [</s>]


def test_missing_opt_folder_fails_in_the_job_naming_where_to_put_it(tmp_path, data_dir, capsys):
    config = _config(data_dir, model={"arch": "opt", "pretrained": "opt-125m", "n_layers": 12, "d_model": 768,
                                      "n_heads": 12, "context": 2048, "dropout": 0.1})
    path = _write(tmp_path, config)
    assert cli.main(["lm", "corpus", "--config", str(path), "--out", str(tmp_path / "c.npz")]) != 0
    err = capsys.readouterr().err
    assert "OPT model 'opt-125m' not found" in err and str(data_dir / "opt-125m") in err


def test_opt_shape_keys_must_match_the_checkpoint(data_dir):
    block = _config(data_dir)["lm"]
    block["model"]["n_layers"] = 3
    with pytest.raises(ValueError, match=r"^n_layers is 3, but opt-tiny's config.json has num_hidden_layers = 2"):
        experiment.config_from_block(block, vocab_size=ARCH["vocab_size"], epochs=1, data_dir=data_dir)


def test_dry_run_of_paper_yaml_plans_the_opt_chains_without_the_folder(workflow_copy, monkeypatch):
    monkeypatch.delenv("MODELCOLLAPSE_DATA_DIR", raising=False)
    out, files = _dry_run(workflow_copy, "--configfile", "config/paper.yaml")
    chains = sorted(f for f in files if f.startswith("results/paper/lm/wikitext2/") and f.endswith(".npz"))
    assert chains == sorted(["results/paper/lm/wikitext2/corpus.npz"] + [
        f"results/paper/lm/wikitext2/{label}/chain{c}.npz" for label in "AB" for c in range(5)] + [
        f"results/paper/lm/wikitext2/{label}/chain0.npz" for label in ("P1", "P2")])  # lm.penalty, 1 chain each
    assert "results/paper/lm/wikitext2/summary.csv" in files
    assert "results/paper/lm/wikitext2/penalty_summary.csv" in files
    assert "lm_pretrain" not in out and "base.npz" not in out
    out, files = _dry_run(workflow_copy, "--configfile", "config/brown.yaml")
    assert "results/brown/lm/brown/base.npz" in files  # the GPT setting still pretrains its base
