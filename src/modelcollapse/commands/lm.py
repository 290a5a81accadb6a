"""`modelcollapse lm corpus|pretrain|chain|summarize|figure|table`: the recursive language model.

The LM steps read their settings from the workflow config (`--config FILE` or, as Snakemake
passes it, `--config-json TEXT`): the `lm` block holds a corpus, a model, an optimizer, decoding
and several regimes, too many for flags. Running a step by hand with the same config file gives
the same files as the workflow.

With `lm.model.arch: opt` the base model of `init: base` / `previous` is the pretrained OPT
checkpoint `lm.model.pretrained` (a Hugging Face folder under data_dir, see
`lm.hf_checkpoint.locate_opt`), which `chain` reads itself: there is no `pretrain` step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from modelcollapse import io
from modelcollapse.commands import (add_config_source, add_summarize, check_inputs, check_output, config_from_args,
                                    distinct_runs, figure_inputs, load_npz, nonnegative_int, read_csv, record,
                                    write_summary, write_texts)

SCALARS = ("test_ppl", "val_loss", "unigram_entropy", "rare_share", "distinct_1", "distinct_2", "distinct_3",
           "distinct_4", "true_xent", "forbidden_share", "kl_truth_model", "data_ppl_median", "data_ppl_mean",
           "data_ppl_q90", "data_ppl_q95")


def corpus_config(block):
    from modelcollapse.lm.corpus import CorpusConfig

    return CorpusConfig(**block["corpus"])


# The comparison blocks of `lm`: each runs its own regimes ({chains, compare, regimes}) beside the main
# regimes it names in `compare`, with its own summary, figure and numbers. verify: verifiers of the
# synthetic language's transitions (issue 21); penalty: the repetition penalty of beam search (issue 13).
COMPARISONS = ("verify", "penalty")


def regime_entries(block) -> list[dict]:
    """Every regime entry of the block: lm.regimes, then each comparison block's regimes (when present)."""
    return list(block["regimes"]) + [e for name in COMPARISONS for e in block.get(name, {}).get("regimes", [])]


def regime_entry(block, label: str) -> dict:
    entries = regime_entries(block)
    labels = [entry["label"] for entry in entries]
    if label not in labels:
        raise ValueError(f"--regime {label!r} is not in config lm.regimes or lm.<{'|'.join(COMPARISONS)}>.regimes "
                         f"(labels: {', '.join(labels)})")
    return entries[labels.index(label)]


def lm_config(block, *, vocab_size: int, epochs: float, decoding: dict | None = None, data_dir=None):
    from modelcollapse.lm.experiment import config_from_block

    return config_from_block(block, vocab_size=vocab_size, epochs=epochs, decoding=decoding, data_dir=data_dir)


def is_opt(block) -> bool:
    """Whether the `lm` block's model is a pretrained OPT (lm.model.arch: opt)."""
    return block["model"].get("arch", "gpt") == "opt"


def pretrained_name(block) -> str:
    """The OPT folder of the block (its model's, or the tokenizer's when the model is a GPT)."""
    return block["model"].get("pretrained") or "opt-125m"


def corpus_cmd(args, argv):
    from modelcollapse import runtime
    from modelcollapse.lm import corpus

    config = config_from_args(args, blocks=("lm",))
    check_output(args.out, ".npz")
    runtime.configure(config["platform"])
    cfg = corpus_config(config["lm"])
    built = corpus.build(cfg, seed=config["seed"], data_dir=config.get("data_dir"),
                         pretrained=pretrained_name(config["lm"]))
    io.save_npz(args.out, built | {"name": cfg.name, "block_size": cfg.block_size})
    record(args.out, argv, seed=config["seed"], config=dataclasses.asdict(cfg))
    print("corpus " + ", ".join(f"{s}: {built[s].shape[0]} blocks" for s in corpus.SPLITS)
          + f"; vocabulary {built['vocab_size']}")


def _load_corpus(path) -> dict:
    return load_npz(path)


def pretrain(args, argv):
    """The base model of `init: base`: trained on the corpus's pretraining split."""
    import jax
    from flax import nnx

    from modelcollapse import checkpoint, runtime
    from modelcollapse.lm import experiment

    config = config_from_args(args, blocks=("lm",))
    check_output(args.out, ".npz")
    if is_opt(config["lm"]):
        raise ValueError(f"config lm.model.arch is opt: the base model is the pretrained checkpoint "
                         f"{pretrained_name(config['lm'])!r}, which `lm chain` reads; there is nothing to pretrain")
    runtime.configure(config["platform"])
    data = _load_corpus(args.corpus)
    block = config["lm"]
    # the base's own learning rate: pretraining from scratch needs a larger one than fine-tuning
    pretraining = block | {"optimizer": block["optimizer"] | {"learning_rate": block["pretrain_learning_rate"]}}
    cfg = lm_config(pretraining, vocab_size=int(data["vocab_size"]), epochs=block["pretrain_epochs"])
    key = jax.random.fold_in(jax.random.key(config["seed"]), 2**20)  # apart from every chain's keys
    model = experiment.build_model(cfg, experiment._int_seed(key))
    result = _train_base(model, train_blocks=experiment.rows(data["pretrain"]),
                   validation_blocks=experiment.rows(data["validation"]), key=jax.random.fold_in(key, 1),
                   batch_size=cfg.batch_size, epochs=cfg.epochs, optimizer=cfg.optimizer,
                   eval_every=cfg.eval_every, steps_per_call=cfg.steps_per_call, progress=None)
    nnx.update(model, result.best_state)
    checkpoint.save(args.out, {"model": nnx.state(model)}, {"best_val_loss": result.best_val_loss,
                                                            "best_step": result.best_step})
    record(args.out, argv, seed=config["seed"], config=block, inputs=[args.corpus])
    print(f"base model: validation loss {result.best_val_loss:.4f} at step {result.best_step}")


def _train_base(*args, **kwargs):
    from modelcollapse.lm.train import train

    try:
        return train(*args, **kwargs)
    except FloatingPointError as err:
        raise FloatingPointError(f"base model: {err}: config key lm.optimizer.learning_rate") from err


def chain(args, argv):
    from flax import nnx

    from modelcollapse import runtime
    from modelcollapse.lm import experiment
    from modelcollapse import regimes
    from modelcollapse.lm import metrics as text_metrics
    from modelcollapse.regimes import Regime

    config = config_from_args(args, blocks=("lm",))
    block = config["lm"]
    check_output(args.out, ".npz")
    entry = regime_entry(block, args.regime)
    regime = Regime.from_config(entry["regime"])
    runtime.configure(config["platform"])
    data = _load_corpus(args.corpus)
    cfg = lm_config(block, vocab_size=int(data["vocab_size"]), epochs=entry["epochs"], decoding=entry.get("decoding"),
                    data_dir=config.get("data_dir"))
    base_state, inputs = None, [args.corpus]
    if cfg.init != "scratch" and is_opt(block):
        from modelcollapse.lm import hf_checkpoint

        if args.base:
            raise ValueError(f"config lm.model.arch is opt: the base model is the checkpoint "
                             f"{pretrained_name(block)!r}; drop --base")
        folder = hf_checkpoint.locate_opt(pretrained_name(block), config.get("data_dir"))
        base_state = nnx.state(hf_checkpoint.load_opt(folder))
        inputs += [folder / "config.json", hf_checkpoint.read_weights(folder)[0]]
    elif cfg.init != "scratch":
        if not args.base:
            raise ValueError(f"config lm.init is {cfg.init!r}: give --base (the .npz of `lm pretrain`)")
        check_inputs([args.base])
        base_state = nnx.state(experiment.load_model(cfg, args.base))
        inputs.append(args.base)
    corpus_cfg = corpus_config(block)
    truth = corpus_cfg.language() if corpus_cfg.name == "synthetic" else None
    ref = experiment.Reference(validation_rows=experiment.rows(data["validation"]),
                               test_rows=experiment.rows(data["test"]), test_blocks=data["test"],
                               rare=text_metrics.rare_mask(data["train"], cfg.model.vocab_size), truth=truth)
    base_ppl = np.nan  # the base's zero-shot test perplexity (OPT-125m's was 115 against 34 fine-tuned)
    if base_state is not None:
        base_model = nnx.eval_shape(lambda: experiment.build_model(cfg, 0))
        nnx.update(base_model, base_state)
        base_ppl = experiment.test_perplexity(base_model, ref, cfg)
    checkpoint_dir = args.checkpoint_dir or str(Path(args.out).with_suffix("")) + ".checkpoints"
    try:
        out = experiment.run_chain(cfg, seed=config["seed"], chain=args.chain, regime=regime, corpus=data, ref=ref,
                                   checkpoint_dir=checkpoint_dir, base_state=base_state,
                                   identity={"corpus": dataclasses.asdict(corpus_cfg), "label": args.regime},
                                   log=lambda line: print(line, flush=True))
    except FloatingPointError as err:  # NaN loss or TrainingDiverged: say which chain and generation
        raise FloatingPointError(f"regime {args.regime}, chain {args.chain}, generation "
                                 f"{_failed_generation(err)}: {err}: config key lm.optimizer.learning_rate") from err
    decode = _decoder(data, config)
    shape = experiment.model_summary(cfg.model)
    texts = {"example_prompts": np.array([decode(p) for p in data["train"][: cfg.examples]]),
             "example_texts": np.array([[decode(t) for t in per_gen] for per_gen in out["examples"]])}
    meta = regimes.metadata(regime, index0=cfg.INDEX0) | {"label": args.regime,
            "epochs": cfg.epochs, "chain": args.chain, "corpus": corpus_cfg.name, "init": cfg.init,
            "decoding": cfg.decoding, "n_blocks": len(data["train"]), "vocab_size": cfg.model.vocab_size,
            "block_size": data["train"].shape[1], "n_layers": shape["n_layers"], "d_model": shape["d_model"],
            "n_heads": shape["n_heads"], "context": shape["context"], "n_params": shape["n_params"],
            "num_beams": cfg.num_beams, "repetition_penalty": cfg.repetition_penalty,
            "entropy_rate": truth.entropy_rate if truth else np.nan,
            "truth_unigram_entropy": truth.unigram_entropy if truth else np.nan, "base_test_ppl": base_ppl,
            **_verifier_rates(regime, truth, seed=config["seed"], chain=args.chain)}
    assert meta.keys() == RUN_KEYS.keys(), "chain's run settings and RUN_KEYS must name the same keys"
    io.save_npz(args.out, out | texts | meta)
    record(args.out, argv, seed=config["seed"], inputs=inputs,
           config={"lm": block, "regime": entry, "chain": args.chain})


def _failed_generation(err: BaseException) -> str:
    """The generation `run_chain` was training when `err` was raised: its loop variable `g`, read from
    the innermost run_chain frame of the traceback (the library's message names only the step)."""
    tb, generation = err.__traceback__, "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "run_chain" and isinstance(tb.tb_frame.f_locals.get("g"), int):
            generation = str(tb.tb_frame.f_locals["g"])
        tb = tb.tb_next
    return generation


# The run's settings that `chain` stores beside its arrays and `summarize` puts on every CSV row, with
# the type each has there (the order of the CSV's columns).
RUN_KEYS = {"label": str, "regime": str, "chain": int, "real_fraction": float, "epochs": float, "corpus": str,
            "init": str, "decoding": str, "n_blocks": int, "vocab_size": int, "block_size": int, "n_layers": int,
            "d_model": int, "n_heads": int, "context": int, "n_params": int, "num_beams": int,
            "repetition_penalty": float, "entropy_rate": float, "truth_unigram_entropy": float,
            "base_test_ppl": float, "verifier_recall": float, "verifier_false_rejection": float, "regime_label": str,
            "real_source": str, "regime_params": str, "index0": str}


def _verifier_rates(regime, truth, *, seed: int, chain: int) -> dict[str, float]:
    """The realised rates of the chain's transition verifier (`lm.verifier.accuracy`); NaN without one."""
    from modelcollapse.lm import experiment, verifier

    table = experiment.verifier_table(regime, truth, seed=seed, chain=chain)
    if table is None:
        return {"verifier_recall": np.nan, "verifier_false_rejection": np.nan}
    return verifier.accuracy(table, truth.transition_matrix() > 0)


def _decoder(data, config):
    from modelcollapse.lm.corpus import decoder

    return decoder(data, data_dir=config.get("data_dir"), pretrained=pretrained_name(config["lm"]))


def summarize(args, argv):
    def one(data):
        keys = {name: cast(data[name]) for name, cast in RUN_KEYS.items()}
        ppl = data["data_ppl"]  # [G + 1, n_blocks]
        stats = {"generation": data["generation"], "data_ppl_median": np.median(ppl, axis=1),
                 "data_ppl_mean": ppl.mean(axis=1), "data_ppl_q90": np.quantile(ppl, 0.9, axis=1),
                 "data_ppl_q95": np.quantile(ppl, 0.95, axis=1)}
        for name in SCALARS:
            if name not in stats:
                stats[name] = data[name] if name in data else np.full(len(data["generation"]), np.nan)
        return keys, stats

    write_summary(args, argv, one, order=("label", "chain"), check=distinct_runs("label", "chain"))


def figure(args, argv):
    from modelcollapse.plots import lm as plot

    inputs = figure_inputs(args, from_summary=args.kind != "perplexity", summary_from="lm summarize",
                           results_from="lm chain")
    if args.kind == "metrics":
        written = plot.plot_metrics(read_csv(args.summary), args.out)
    elif args.kind in COMPARISONS:
        written = plot.plot_comparison(read_csv(args.summary), args.out, block=args.kind)
    else:
        written = plot.plot_perplexity([_perplexity_arrays(p) for p in inputs], args.generations, args.out)
    record(written, argv, inputs=inputs)


def _perplexity_arrays(path) -> dict:
    return load_npz(path, ("label", "chain", "decoding", "generation", "data_ppl", "test_ppl"))


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import lm as tables

    def build():
        rows = read_csv(args.summary)
        examples = [_example_arrays(p) for p in args.results]
        return (tables.table_tex(rows), tables.examples_tex(examples, args.generations),
                macro_lines(tables.numbers(rows, examples=args.generations)))

    write_texts(argv, (args.table, args.examples, args.numbers), build, inputs=[args.summary] + args.results,
                config={"generations": args.generations})


def compare_numbers(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import lm as tables

    write_texts(argv, (args.out,),
                lambda: (macro_lines(tables.comparison_numbers(read_csv(args.summary), block=args.block)),),
                inputs=[args.summary], config={"block": args.block})


def _example_arrays(path) -> dict:
    return load_npz(path, ("label", "chain", "example_prompts", "example_texts"))


def register(subparsers) -> None:
    steps = subparsers.add_parser("lm", help="recursive language model").add_subparsers(dest="step", required=True)
    p = steps.add_parser("corpus", help="tokenize and block the corpus; writes .npz")
    add_config_source(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=corpus_cmd)

    p = steps.add_parser("pretrain", help="the base model of init: base; writes .npz")
    add_config_source(p)
    p.add_argument("--corpus", required=True, help="the .npz of `lm corpus`")
    p.add_argument("--out", required=True)
    p.set_defaults(func=pretrain)

    p = steps.add_parser("chain", help="run (or resume) one chain of generations; writes .npz")
    add_config_source(p)
    p.add_argument("--corpus", required=True, help="the .npz of `lm corpus`")
    p.add_argument("--regime", required=True, help="a label of config lm.regimes (e.g. A, B)")
    p.add_argument("--chain", type=nonnegative_int, required=True, help="chain index (its own random numbers)")
    p.add_argument("--base", help="init: base | previous with arch gpt: the .npz of `lm pretrain` (arch opt: "
                                  "the checkpoint lm.model.pretrained is read instead)")
    p.add_argument("--checkpoint-dir", help="default: <out without .npz>.checkpoints")
    p.add_argument("--out", required=True)
    p.set_defaults(func=chain)

    add_summarize(steps, summarize, "per-generation metrics of several chains; writes CSV")

    p = steps.add_parser("figure", help="perplexity panels (from .npz), tail/diversity metrics or a comparison "
                                        "block's figure (from the CSV)")
    p.add_argument("--kind", choices=["perplexity", "metrics", *COMPARISONS], required=True,
                   help="a comparison block's name draws its summary (lm.verify: verification; lm.penalty: "
                        "repetition penalties)")
    p.add_argument("--summary")
    p.add_argument("--results", nargs="+")
    p.add_argument("--generations", type=nonnegative_int, nargs="+", default=[0, 1, 2, 3, 5, 9],
                   help="perplexity: generations whose histograms are drawn")
    p.add_argument("--out", required=True)
    p.set_defaults(func=figure)

    p = steps.add_parser("table", help="perplexity table, example texts and numbers for the paper")
    p.add_argument("--summary", required=True)
    p.add_argument("--results", nargs="+", required=True, help="chain outputs (their example texts)")
    p.add_argument("--generations", type=nonnegative_int, nargs="+", default=[0, 1, 5, 9],
                   help="generations of the example-text table")
    p.add_argument("--table", required=True)
    p.add_argument("--examples", required=True)
    p.add_argument("--numbers", required=True)
    p.set_defaults(func=table)

    p = steps.add_parser("compare-numbers", help="a comparison block's paragraph numbers (from the summary CSV "
                                                 "of its chains and the compared ones)")
    p.add_argument("--block", choices=COMPARISONS, required=True, help="the comparison block (lm.<block>)")
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=compare_numbers)


def _opt_standin(model):
    """An OPTConfig of the shape an `lm.model` block with arch opt states (OPT-125m's other fields)."""
    from modelcollapse.config import library_check
    from modelcollapse.lm.experiment import OPT_SHAPE_KEYS
    from modelcollapse.lm.opt import OPTConfig

    shape = {field: model[key] for key, field in OPT_SHAPE_KEYS.items() if key in model}
    shape.setdefault("ffn_dim", 4 * shape.get("hidden_size", OPTConfig.hidden_size))
    return library_check("lm.model", OPTConfig, fields={f: f"lm.model.{k}" for k, f in OPT_SHAPE_KEYS.items()}, **shape)


def check_block(block) -> None:
    """Every job this family's rules start from its config block, built as the jobs build them
    (`config.check_config` calls this; ConfigError names the key)."""
    from modelcollapse.config import ConfigError, key_names, library_check, regime_at
    from modelcollapse.lm import experiment
    from modelcollapse.lm.corpus import CorpusConfig

    corpus, model = block["corpus"], block["model"]
    library_check("lm.model.context", experiment.check_context, model["context"], corpus["block_size"])
    corpus_fields = key_names("lm.corpus", corpus)
    corpus_cfg = library_check("lm.corpus", CorpusConfig, fields=corpus_fields, **corpus)
    if corpus_cfg.name != "synthetic" and corpus_cfg.pretrain_fraction == 0 and block["init"] != "scratch" \
            and model.get("arch", "gpt") == "gpt":
        raise ConfigError(f"config key 'lm.corpus.pretrain_fraction': 0 leaves no pretraining split for the GPT's "
                          f"base model of init {block['init']!r}; give a share, or use init: scratch or arch: opt")
    if corpus_cfg.name == "synthetic":
        library_check("lm.corpus", corpus_cfg.language, fields=corpus_fields)
    labels = [entry["label"] for entry in regime_entries(block)]
    fields = key_names("lm", block) | key_names("lm.model", model) | key_names("lm.optimizer", block["optimizer"])
    # arch opt: the checkpoint's config.json is read by the jobs (the folder may be absent now);
    # here a stand-in of the shape the block states, so every other setting is checked the same.
    checkpoint = _opt_standin(model) if model.get("arch") == "opt" else None
    keyed = [(f"lm.regimes[{i}]", e) for i, e in enumerate(block["regimes"])]
    keyed += [(f"lm.{name}.regimes[{i}]", e) for name in COMPARISONS
              for i, e in enumerate(block.get(name, {}).get("regimes", []))]
    for i, (key, entry) in enumerate(keyed):
        r = regime_at(entry["regime"], key + ".regime")
        library_check(key + ".regime", experiment.check_regime, r, truth_known=corpus_cfg.name == "synthetic")
        if entry["label"] in labels[:i]:
            raise ConfigError(f"config key '{key}.label': {entry['label']!r} is used twice")
        # A real corpus's vocabulary is known only once it is built; no check depends on its size.
        library_check(key, experiment.config_from_block, block, vocab_size=corpus_cfg.vocab_size,
                      epochs=entry["epochs"], decoding=entry.get("decoding"), checkpoint=checkpoint, fields=fields)
    for name in COMPARISONS:
        for label in block.get(name, {}).get("compare", []):
            if label not in labels[: len(block["regimes"])]:
                raise ConfigError(f"config key 'lm.{name}.compare': {label!r} is not a label of lm.regimes "
                                  f"({', '.join(labels[: len(block['regimes'])])})")
    for name in ("histogram_generations", "example_generations"):
        if not any(g <= block["generations"] for g in block[name]):
            raise ConfigError(f"config key 'lm.{name}': none of {block[name]} is at most lm.generations = "
                              f"{block['generations']}")
