"""`modelcollapse gaussian simulate|summarize|figure|table`: the 1-D Gaussian chains."""

from __future__ import annotations

import numpy as np

from modelcollapse import io
from modelcollapse.commands import (Knob, add_config_source, add_knob_flags, add_platform, add_regime,
                                    add_summarize, add_table, block_config, check_inputs, check_memory, check_output,
                                    knob_values, nonnegative_int, read_csv, record, regime_from_args, write_summary,
                                    write_texts)

CONFIG = "modelcollapse.gaussian:GaussianConfig"  # the knobs, and the flags of `simulate` (add_knob_flags)

# The flags that pick one job of the config block, per part of it (the rules' wildcards).
SELECTORS = {"main": ("--sample-size", "--estimator"), "regimes": ("--label",), "schedules": ("--schedule",),
             "multivariate": ("--dim",)}


def _job(args):
    """(GaussianConfig, seed, platform) of the config block (--config-json, as the rules run it) or of
    the flags; raises ValueError naming the bad argument or config key."""
    from modelcollapse import gaussian

    config = block_config(args, "gaussian", selectors=SELECTORS[args.part or "main"],
                          required=("seed", "sample_size", "generations", "replicates"))
    if config is None:
        if args.part is not None or args.label is not None:
            raise ValueError("--part and --label pick a job of the config block: give --config-json or --config")
        return _config(args), args.seed, args.platform
    cfg = gaussian.config_from_block(config["gaussian"], part=args.part or "main", sample_size=args.sample_size,
                                     estimator=args.estimator, label=args.label, schedule=args.schedule,
                                     dim=args.dim)
    return cfg, config["seed"], config["platform"]


def _config(args):
    """GaussianConfig from the command line; raises ValueError naming the bad argument."""
    from modelcollapse import gaussian, schedules

    regime = regime_from_args(args)
    sizes = args.sample_size
    if args.schedule != "constant":
        sizes = tuple(schedules.sample_sizes(args.schedule, base=args.sample_size, generations=args.generations,
                                             power=args.power).tolist())
    return gaussian.GaussianConfig(**knob_values(args, CONFIG) | {"sample_size": sizes}, regime=regime)


def memory_needed(cfg) -> float:
    """Estimated peak bytes of `simulate` for `cfg`: the float32 trajectories [R, G+1] (d > 1: means
    [R, G+1, d] and Cholesky factors and covariances [R, G+1, d, d]) exist about four times at once
    (device result, host copy, the prepended generation 0, the .npz buffer), plus each generation's
    draws [R, M] a few times and, for the pooling regimes, the stored pool [R, M x G]."""
    from modelcollapse import regimes

    r, g, d = cfg.replicates, cfg.generations, cfg.dim
    per_generation = (2 if d == 1 else d + 2 * d * d + 2) * 4.0 * r * (g + 1)
    m = float(max(cfg.sizes))
    draws = 4.0 * r * m * d * 4 if cfg.resolved_sampler == "points" else 0.0
    pool = 4.0 * r * m * g * 2 if "pool_subset" in regimes.needs(cfg.regime) else 0.0
    return 4 * per_generation + draws + pool


def simulate(args, argv):
    from modelcollapse import gaussian, regimes, runtime

    cfg, seed, platform = _job(args)
    check_output(args.out, ".npz")
    check_memory(memory_needed(cfg), what=f"gaussian simulate with --replicates {cfg.replicates}, --generations "
                 f"{cfg.generations}, --sample-size {int(cfg.sizes[0])}"
                 + (f", --dim {cfg.dim}" if cfg.dim > 1 else ""),
                 lower="--replicates or --generations (or --sample-size)")
    runtime.configure(platform)
    shared = {f: getattr(cfg, f) for f in ("sample_size", "generations", "replicates", "estimator", "sampler")}
    meta = {"sizes": cfg.sizes, "estimator": cfg.estimator, "schedule": args.schedule,
            "dim": cfg.dim} | regimes.metadata(cfg.regime, index0=cfg.INDEX0)
    if cfg.dim == 1:
        chains = gaussian.simulate(seed, regime=cfg.regime, **shared)
        arrays = {"mean": chains.mean, "std": chains.std}
    else:  # the full [R, G+1, d, d] trajectory is large; keep what the theory speaks about
        chains = gaussian.simulate_multivariate(seed, dim=cfg.dim, correlation=cfg.correlation, **shared)
        arrays = {"mean": chains.mean, "log_det": chains.log_det, "cov0": cfg.sigma0(),
                  "trace": np.trace(chains.cov, axis1=-2, axis2=-1), "cov_final": chains.cov[:, -1]}
    io.save_npz(args.out, arrays | meta)
    record(args.out, argv, seed=seed, config=vars(cfg) | {"platform": platform})


def summarize(args, argv):
    from modelcollapse import gaussian, regimes

    def one(data):
        regime = regimes.from_metadata(data)
        estimator, sizes, dim = str(data["estimator"]), data["sizes"], int(data["dim"])
        if dim == 1:
            stats = gaussian.summarize(data["mean"], data["std"], sizes=sizes, estimator=estimator, regime=regime)
        else:
            stats = gaussian.summarize_multivariate(data["mean"], data["log_det"], data["trace"], sizes=sizes,
                                                    estimator=estimator, sigma0=data["cov0"])
        keys = {"estimator": estimator, "sample_size": int(sizes[0]), "regime": regime.label,
                "schedule": str(data["schedule"]), "dim": dim}
        return keys, stats

    def check(rows):
        if len({r["dim"] == 1 for r in rows}) > 1:
            raise ValueError("summarize one-dimensional and multivariate results separately (their columns differ)")

    write_summary(args, argv, one, order=("dim", "regime", "schedule", "estimator", "sample_size"), check=check)


FIGURES = {"main": "plot", "regimes": "plot_regimes", "schedules": "plot_schedules",
           "multivariate": "plot_multivariate"}
NUMBERS = {"regimes": "regimes_numbers", "schedules": "schedules_numbers", "multivariate": "multivariate_numbers"}


def figure(args, argv):
    from modelcollapse.plots import gaussian as plot

    check_output(args.out, ".pdf")
    check_inputs([args.summary])
    draw = getattr(plot, FIGURES[args.kind])
    written = draw(read_csv(args.summary), args.out)
    record(written, argv, inputs=[args.summary])


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import gaussian as tables

    def build():
        rows = read_csv(args.summary)
        return tables.table_tex(rows, args.generations), macro_lines(tables.numbers(rows, replicates=args.replicates))

    write_texts(argv, (args.table, args.numbers), build, inputs=[args.summary],
                config={"generations": args.generations})


def numbers(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import gaussian as tables

    if args.table and args.kind != "regimes":
        raise ValueError(f"--table is available for --kind regimes only, not {args.kind!r}")

    def build():
        rows = read_csv(args.summary)
        texts = [macro_lines(getattr(tables, NUMBERS[args.kind])(rows))]
        return texts + ([tables.regimes_table(rows)] if args.table else [])

    write_texts(argv, [args.out] + ([args.table] if args.table else []), build, inputs=[args.summary])


def register(subparsers) -> None:
    steps = subparsers.add_parser("gaussian", help="1-D Gaussian fit-and-sample chains").add_subparsers(
        dest="step", required=True)
    p = steps.add_parser("simulate", help="run R chains for one setting; writes .npz", description=(
        "One job of the config's gaussian block (--config-json, as the rules run it: --part and its selectors "
        "pick the job, the block sets everything else) or of the flags (--seed, --sample-size, --generations, "
        "--replicates required)."))
    add_config_source(p, required=False)
    p.add_argument("--part", choices=sorted(SELECTORS), help="with the block: main (selectors --sample-size, "
                   "--estimator; the default), regimes (--label), schedules (--schedule), multivariate (--dim)")
    p.add_argument("--label", action=Knob,
                   help="--part regimes: a regime label of gaussian.regimes.compare (e.g. mix0.5)")
    p.add_argument("--seed", type=nonnegative_int, action=Knob)
    add_knob_flags(p, "gaussian", CONFIG)
    p.add_argument("--schedule", choices=["constant", "linear", "superlinear"], default="constant", action=Knob,
                   help="with the flags: sample sizes M_i from --sample-size as M_0 (default: constant)")
    p.add_argument("--power", type=float, default=2.0, action=Knob, help="p of the superlinear schedule M_0 (1+i)^p")
    add_regime(p)
    add_platform(p, action=Knob)
    p.add_argument("--out", required=True)
    p.set_defaults(func=simulate)
    add_summarize(steps, summarize, "per-generation statistics and theory of several .npz; writes CSV")
    p = steps.add_parser("figure", help="the fit-and-sample figure from the summary CSV")
    p.add_argument("--summary", required=True)
    p.add_argument("--kind", choices=sorted(FIGURES), default="main")
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)
    p = steps.add_parser("numbers", help="paper numbers (and the regimes table) of a sub-experiment")
    p.add_argument("--summary", required=True)
    p.add_argument("--kind", choices=sorted(NUMBERS), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--table", help="regimes only: also write the comparison table here")
    p.set_defaults(func=numbers)
    p = add_table(steps, table)
    p.add_argument("--replicates", type=nonnegative_int, required=True)


def check_block(g) -> None:
    """Every job this family's rules start from its config block, built as the jobs build them
    (`config.check_config` calls this; ConfigError names the key)."""
    from modelcollapse.config import (ConfigError, check_pool, check_within_generations, key_names, library_check,
                                      regime_at)
    from modelcollapse import gaussian

    # Every job the rules start, built as `gaussian simulate --config-json` builds it (the library's
    # config_from_block, whose GaussianConfig runs check_sample_size, check_correlation, ...).
    check_within_generations(g, "gaussian")
    regime = regime_at(g["regime"], "gaussian.regime")
    for m in g["sample_sizes"]:
        check_pool(regime, key="gaussian.regime", replicates=g["replicates"], sample_size=m,
                    generations=g["generations"])
        for estimator in g["estimators"]:
            library_check("gaussian", gaussian.config_from_block, g, sample_size=m, estimator=estimator,
                          fields=key_names("gaussian", g))
    block = g["regimes"]
    labels = []
    for i, value in enumerate(block["compare"]):
        key = f"gaussian.regimes.compare[{i}]"
        r = regime_at(value, key)
        check_pool(r, key=key, replicates=block["replicates"], sample_size=block["sample_size"],
                    generations=block["generations"])
        if r.label in labels:
            raise ConfigError(f"config key '{key}': regime {r.label!r} is listed twice")
        labels.append(r.label)
        library_check(key, gaussian.config_from_block, g, part="regimes", label=r.label,
                      fields=key_names("gaussian.regimes", block))
    sched = g["schedules"]
    for kind in sched["kinds"]:
        library_check("gaussian.schedules", gaussian.config_from_block, g, part="schedules", schedule=kind,
                      fields=key_names("gaussian.schedules", sched))
    mv = g["multivariate"]
    for d in mv["dims"]:
        library_check("gaussian.multivariate", gaussian.config_from_block, g, part="multivariate", dim=d,
                      fields=key_names("gaussian.multivariate", mv))
