"""`modelcollapse regression simulate|summarize|figure|numbers`: least squares on its own labels."""

from __future__ import annotations

from modelcollapse import io
from modelcollapse.commands import (add_config_source, add_summarize, check_inputs, check_memory, check_output,
                                    config_from_args, distinct_runs, read_csv, record, write_summary, write_texts)


def _job(args):
    """(RegressionConfig, seed, platform) of the config's regression block for regime --label."""
    from modelcollapse import regression
    from modelcollapse.config import ConfigError

    config = config_from_args(args, blocks=("regression",))
    try:
        cfg = regression.config_from_block(config["regression"], label=args.label, seed=config["seed"])
    except ValueError as err:
        raise ConfigError(f"config key 'regression': {err}") from None
    return cfg, config["seed"], config["platform"]


def memory_needed(cfg) -> float:
    """Peak bytes: each chain's pool of float32 rows [(G + 1) T, d + 1] for the pooling regimes (the
    fit of accumulate reads it whole, a few copies) or one generation's rows, plus the errors."""
    from modelcollapse import regimes

    rows = (cfg.generations + 1) * cfg.sample_size if regimes.uses_pool(cfg.regime) else 2 * cfg.sample_size
    return 4.0 * cfg.replicates * (4 * rows * (cfg.dim + 1) + 4 * (cfg.generations + 1))


def simulate(args, argv):
    from modelcollapse import regimes, regression, runtime

    cfg, seed, platform = _job(args)
    check_output(args.out, ".npz")
    check_memory(memory_needed(cfg), what=f"regression simulate of {cfg.regime.label} with replicates "
                 f"{cfg.replicates}, generations {cfg.generations}, sample_size {cfg.sample_size}",
                 lower="regression.replicates or regression.generations")
    runtime.configure(platform)
    error = regression.simulate(cfg, seed)
    meta = {"dim": cfg.dim, "sample_size": cfg.sample_size, "noise": cfg.noise, "design": cfg.design,
            "design_seed": cfg.design_seed} | regimes.metadata(cfg.regime, index0=cfg.INDEX0)
    io.save_npz(args.out, {"error": error} | meta)
    record(args.out, argv, seed=seed, config=vars(cfg) | {"platform": platform})


def config_of(data):
    """The RegressionConfig a result file was simulated with (from its metadata)."""
    from modelcollapse import regimes, regression

    return regression.RegressionConfig(
        dim=int(data["dim"]), sample_size=int(data["sample_size"]), noise=float(data["noise"]),
        design=str(data["design"]), generations=data["error"].shape[1] - 1, replicates=data["error"].shape[0],
        regime=regimes.from_metadata(data), design_seed=int(data["design_seed"]))


def summarize(args, argv):
    from modelcollapse import regression

    def one(data):
        cfg = config_of(data)
        keys = {"regime": cfg.regime.label, "real_fraction": cfg.regime.real_fraction, "dim": cfg.dim,
                "sample_size": cfg.sample_size, "design": cfg.design}
        return keys, regression.summarize(data["error"], cfg)

    write_summary(args, argv, one, order=("regime",), check=distinct_runs("regime", "dim", "sample_size", "design"))


def figure(args, argv):
    from modelcollapse.plots import regression as plot

    check_output(args.out, ".pdf")
    check_inputs([args.summary])
    written = plot.plot_regimes(read_csv(args.summary), args.out)
    record(written, argv, inputs=[args.summary])


def numbers(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import regression as tables

    write_texts(argv, [args.out], lambda: [macro_lines(tables.numbers(read_csv(args.summary)))],
                inputs=[args.summary])


def register(subparsers) -> None:
    steps = subparsers.add_parser("regression", help="least squares trained on its own labels").add_subparsers(
        dest="step", required=True)
    p = steps.add_parser("simulate", help="run the chains of one regime of the regression block; writes .npz")
    add_config_source(p)
    p.add_argument("--label", required=True, help="a regime label of regression.regimes (e.g. mix0.25-fresh)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=simulate)
    add_summarize(steps, summarize, "per-generation error and its exact law of several .npz; writes CSV")
    p = steps.add_parser("figure", help="error by generation per regime, theory dashed")
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)
    p = steps.add_parser("numbers", help="the paper's numbers of the regression section")
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=numbers)


def check_block(block) -> None:
    """Every job this family's rules start from its config block, built as the jobs build them
    (`config.check_config` calls this; ConfigError names the key)."""
    from modelcollapse.config import ConfigError, check_pool, key_names, library_check, regime_at
    from modelcollapse import regression

    labels = []
    for i, value in enumerate(block["regimes"]):
        key = f"regression.regimes[{i}]"
        r = regime_at(value, key)
        if r.label in labels:
            raise ConfigError(f"config key '{key}': regime {r.label!r} is listed twice")
        labels.append(r.label)
        check_pool(r, key=key, replicates=block["replicates"], sample_size=block["sample_size"] * (block["dim"] + 1),
                    generations=block["generations"] + 1)
        library_check(key, regression.config_from_block, block, label=r.label, fields=key_names("regression", block))
