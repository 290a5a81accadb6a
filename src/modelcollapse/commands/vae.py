"""`modelcollapse vae classifier|chain|summarize|figure|table`: the recursive VAE on images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from modelcollapse import io
from modelcollapse.commands import (Knob, add_config_source, add_knob_flags, add_platform, add_regime,
                                    add_summarize, add_table, block_config, check_inputs, check_output, distinct_runs,
                                    figure_inputs, knob_values, load_npz, nonnegative_float, nonnegative_int,
                                    read_csv, record, regime_from_args, write_summary, write_texts)

CONFIG = "modelcollapse.vae.experiment:VAEConfig"  # the knobs, and the flags of `chain` (add_knob_flags)
# Choices repeated here so that building the parser does not import JAX (tests check they match).
DATASETS = ("digits", "mnist", "fashion_mnist")
# Scalar per-generation metrics of `vae.experiment.evaluate` that the summary CSV carries.
SCALARS = ("latent_std", "class_entropy", "confidence", "precision", "recall", "frechet", "real_nelbo",
           "real_recon", "real_kl", "active_units", "final_loss", "final_recon", "final_kl")


def _splits(args):
    """(train, validation, test) ImageSets; validation is carved from train with the master seed."""
    from modelcollapse.datasets import images

    train = images.load_images(args.dataset, split="train", data_dir=args.data_dir)
    train, validation = images.train_validation_split(train, validation_fraction=args.validation_fraction,
                                                      seed=args.seed)
    return train, validation, images.load_images(args.dataset, split="test", data_dir=args.data_dir)


def _check_data_args(args) -> None:
    if not 0 < args.validation_fraction < 1:
        raise ValueError(f"--validation-fraction must be in (0, 1), got {args.validation_fraction}")


def classifier_cmd(args, argv):
    from flax import nnx

    from modelcollapse import checkpoint, runtime
    from modelcollapse.vae import classifier

    check_output(args.out, ".npz")
    _check_data_args(args)
    runtime.configure(args.platform)
    train, validation, test = _splits(args)
    model, report = classifier.train_classifier(
        train.images, train.labels, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, validation=(validation.images, validation.labels),
        test=(test.images, test.labels))
    # wall time is left out so that the same seed gives the same bytes (Snakemake's benchmark keeps it)
    meta = {"dataset": args.dataset, "image_shape": list(train.images.shape[1:])} | {
        k: v for k, v in report.items() if k != "seconds"}
    checkpoint.save(args.out, {"model": nnx.state(model)}, meta)
    record(args.out, argv, seed=args.seed, config=meta)
    print(f"classifier on {args.dataset}: {report}")


def load_classifier(path):
    """The classifier saved by `vae classifier`, and its metadata."""
    from flax import nnx

    from modelcollapse import checkpoint
    from modelcollapse.vae import classifier

    meta = checkpoint.load_meta(path)
    model = nnx.eval_shape(lambda: classifier.DigitClassifier(image_shape=tuple(meta["image_shape"]),
                                                              rngs=nnx.Rngs(0)))
    trees, _ = checkpoint.load(path, {"model": nnx.state(model)})
    nnx.update(model, trees["model"])
    return model, meta


def _vae_config(args):
    from modelcollapse.vae.experiment import VAEConfig

    return VAEConfig(**knob_values(args, CONFIG))


def _job(args):
    """(args with the data settings and platform filled in, VAEConfig, Regime) of the config block
    (--config-json, as the rules run it; --label picks the regime) or of the flags; raises
    ValueError naming the bad argument or config key."""
    import argparse

    from modelcollapse.regimes import Regime
    from modelcollapse.vae import experiment

    config = block_config(args, "vae", selectors=("--label",), required=("seed", "generations"))
    if config is None:
        if args.label is not None:
            raise ValueError("--label picks a regime of the config block: give --config-json or --config")
        return args, _vae_config(args), regime_from_args(args)
    block = config["vae"]
    regimes = {r.label: r for r in map(Regime.from_config, block["regimes"])}
    if args.label not in regimes:
        raise ValueError(f"--label {args.label!r} is not a regime of config vae.regimes (labels: {', '.join(regimes)})")
    args = argparse.Namespace(**vars(args) | {
        "dataset": block["dataset"], "data_dir": config.get("data_dir"), "seed": config["seed"],
        "validation_fraction": float(block["validation_fraction"]), "platform": config["platform"]})
    cfg = dataclasses.replace(experiment.config_from_block(block), grid_images=args.grid_images)
    return args, cfg, regimes[args.label]


def chain(args, argv):
    from flax import nnx

    from modelcollapse import regimes, runtime
    from modelcollapse.vae import classifier, experiment, models

    check_output(args.out, ".npz")
    args, cfg, regime = _job(args)
    _check_data_args(args)
    experiment.check_regime(regime, cfg.synthetic)
    check_inputs([args.classifier])
    runtime.configure(args.platform)
    clf, clf_meta = load_classifier(args.classifier)
    train, validation, test = _splits(args)
    if clf_meta["dataset"] != args.dataset or tuple(clf_meta["image_shape"]) != train.images.shape[1:]:
        raise ValueError(f"--classifier {args.classifier} was trained on {clf_meta['dataset']!r} "
                         f"{clf_meta['image_shape']}, not on {args.dataset!r}")
    parts = {"classifier": clf, "real_features": np.asarray(classifier.features(clf, test.images)),
             "validation": validation.images}
    checkpoint_dir = args.checkpoint_dir or str(Path(args.out).with_suffix("")) + ".checkpoints"
    out = experiment.run_chain(cfg, seed=args.seed, chain=args.chain, regime=regime, train_images=train.images,
                               scorer_parts=parts, checkpoint_dir=checkpoint_dir,
                               identity={"dataset": args.dataset, "validation_fraction": args.validation_fraction},
                               log=lambda line: print(line, flush=True))
    meta = regimes.metadata(regime, index0=cfg.INDEX0) | {
            "dataset": args.dataset, "chain": args.chain, "architecture": cfg.architecture,
            "synthetic": cfg.synthetic, "n_train": len(train.images), "latent": cfg.latent, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "n_params": models.count_params(nnx.eval_shape(
                lambda: experiment.build_model(cfg, train.images.shape[1:], 0))), "classifier_accuracy":
            float(clf_meta.get("test_accuracy", np.nan))}
    io.save_npz(args.out, out | meta)
    record(args.out, argv, seed=args.seed, inputs=[args.classifier],
           config=dataclasses.asdict(cfg) | {"regime": dataclasses.asdict(regime), "dataset": args.dataset,
                                             "platform": args.platform})


def summarize(args, argv):
    def one(data):
        keys = {"dataset": str(data["dataset"]), "regime": str(data["regime_label"]), "chain": int(data["chain"]),
                "architecture": str(data["architecture"]), "synthetic": str(data["synthetic"]),
                "n_train": int(data["n_train"]), "latent": int(data["latent"]), "epochs": int(data["epochs"]),
                "batch_size": int(data["batch_size"]), "n_params": int(data["n_params"]),
                "classifier_accuracy": float(data["classifier_accuracy"])}
        keys |= {name: float(data[name]) for name in ("reference_precision", "reference_recall",
                                                     "reference_frechet")}
        return keys, {"generation": data["generation"]} | {name: data[name] for name in SCALARS}

    write_summary(args, argv, one, order=("dataset", "regime", "chain"),
                  check=distinct_runs("dataset", "regime", "chain"))


def figure(args, argv):
    from modelcollapse.plots import vae as plot

    inputs = figure_inputs(args, from_summary=args.kind == "metrics", summary_from="vae summarize",
                           results_from="vae chain")
    if args.kind == "metrics":
        written = plot.plot_metrics(read_csv(args.summary), args.out)
    elif args.kind == "samples":
        written = plot.plot_samples([load_npz(path) for path in inputs], args.generations, args.out)
    else:
        written = plot.plot_latent_density([load_npz(path) for path in inputs], args.out)
    record(written, argv, inputs=inputs)


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import vae as tables

    def build():
        rows = read_csv(args.summary)
        return tables.table_tex(rows, args.generations), macro_lines(tables.numbers(rows, generations=args.generations))

    write_texts(argv, (args.table, args.numbers), build, inputs=[args.summary],
                config={"generations": args.generations})


def _add_data(p, *, knob: bool = False) -> None:
    """The data flags; knob: they are Knobs of a step that reads the vae block (--seed not required)."""
    action = Knob if knob else "store"
    p.add_argument("--dataset", choices=DATASETS, default="digits", action=action,
                   help="digits (scikit-learn's 8x8, ships with it), mnist or fashion_mnist (IDX files)")
    p.add_argument("--data-dir", action=action,
                   help="folder with mnist/ or fashion_mnist/ (default: $MODELCOLLAPSE_DATA_DIR)")
    p.add_argument("--seed", type=nonnegative_int, required=not knob, action=action, help="master seed")
    p.add_argument("--validation-fraction", type=nonnegative_float, default=0.1, action=action,
                   help="share of the training split held out as real validation data")


def register(subparsers) -> None:
    steps = subparsers.add_parser("vae", help="recursive VAE on images").add_subparsers(
        dest="step", required=True)
    p = steps.add_parser("classifier", help="train the image classifier the metrics use; writes .npz")
    _add_data(p)
    p.add_argument("--epochs", type=nonnegative_int, default=10)
    p.add_argument("--batch-size", type=nonnegative_int, default=128)
    p.add_argument("--learning-rate", type=nonnegative_float, default=1e-3)
    add_platform(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=classifier_cmd)

    p = steps.add_parser("chain", help="run (or resume) one chain of generations; writes .npz",
                         description="One chain of the config's vae block (--config-json, as the rules run it: "
                                     "--label picks the regime, the block and the shared keys set the data and every "
                                     "setting) or of the flags (--seed and --generations required).")
    add_config_source(p, required=False)
    _add_data(p, knob=True)
    p.add_argument("--chain", type=nonnegative_int, required=True, help="chain index (its own random numbers)")
    p.add_argument("--label", action=Knob, help="with the block: a regime label of vae.regimes (e.g. mix0.5)")
    add_regime(p)
    add_knob_flags(p, "vae", CONFIG, plain=("grid_images",))
    p.add_argument("--classifier", required=True, help="the .npz of `vae classifier` for this data set")
    p.add_argument("--checkpoint-dir", help="default: <out without .npz>.checkpoints")
    add_platform(p, action=Knob)
    p.add_argument("--out", required=True)
    p.set_defaults(func=chain)

    add_summarize(steps, summarize, "per-generation metrics of several chains; writes CSV")

    p = steps.add_parser("figure", help="sample grids or latent densities (from .npz), metrics (from the CSV)")
    p.add_argument("--kind", choices=["samples", "density", "metrics"], required=True)
    p.add_argument("--summary", help="metrics: the summary CSV")
    p.add_argument("--results", nargs="+", help="samples / density: chain outputs (chain 0 of each regime)")
    p.add_argument("--generations", type=nonnegative_int, nargs="+", default=[0, 1, 2, 5, 10, 20],
                   help="samples: the generations shown (those a chain did not reach are dropped)")
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)

    add_table(steps, table)


def check_block(v) -> None:
    """Every job this family's rules start from its config block, built as the jobs build them
    (`config.check_config` calls this; ConfigError names the key)."""
    from modelcollapse.config import ConfigError, check_within_generations, key_names, library_check, regime_at
    from modelcollapse.vae import experiment

    check_within_generations(v, "vae")
    # the job's own config class and regime check (latent_samples <= eval_samples, sizes, modes)
    cfg = library_check("vae", experiment.config_from_block, v, fields=key_names("vae", v))
    labels = []
    for i, value in enumerate(v["regimes"]):
        key = f"vae.regimes[{i}]"
        r = regime_at(value, key)
        library_check(key, experiment.check_regime, r, cfg.synthetic)
        if r.label in labels:
            raise ConfigError(f"config key '{key}': regime {r.label!r} is listed twice")
        labels.append(r.label)
    if not any(g <= v["generations"] for g in v["grid_generations"]):
        raise ConfigError(f"config key 'vae.grid_generations': none of {v['grid_generations']} is at most "
                          f"vae.generations = {v['generations']}")
