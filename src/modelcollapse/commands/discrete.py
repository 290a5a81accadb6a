"""`modelcollapse discrete simulate|summarize|absorption|figure|table`: resampling a discrete distribution."""

from __future__ import annotations

import dataclasses

from modelcollapse import io
from modelcollapse.commands import (Knob, add_config_source, add_knob_flags, add_platform, add_regime,
                                    add_summarize, add_table, block_config, check_inputs, check_memory, check_output,
                                    knob_values, load_npz, nonnegative_int, read_csv, record, regime_from_args,
                                    write_texts)

CONFIG = "modelcollapse.discrete:DiscreteConfig"  # the knobs, and the flags of `simulate` (add_knob_flags)
# Keys every chain summary row starts with, in the sort order of the CSV.
ROW_KEYS = ("regime", "num_symbols", "exponent", "sample_size", "replicates")
# The flags that pick one job of the config block, per part of it (the rules' wildcards).
SELECTORS = {"main": ("--sample-size",), "absorption": ()}


def _job(args):
    """(DiscreteConfig, seed, platform) of the config block (--config-json, as the rules run it) or
    of the flags; raises ValueError naming the bad argument or config key."""
    from modelcollapse import discrete

    config = block_config(args, "discrete", selectors=SELECTORS[args.part or "main"],
                          required=("seed", "sample_size", "generations", "replicates"))
    if config is None:
        if args.part is not None:
            raise ValueError("--part picks a job of the config block: give --config-json or --config")
        return _config(args), args.seed, args.platform
    cfg = discrete.config_from_block(config["discrete"], part=args.part or "main", sample_size=args.sample_size)
    return cfg, config["seed"], config["platform"]


def _config(args):
    """DiscreteConfig from the command line; raises ValueError naming the bad argument."""
    from modelcollapse import discrete

    return discrete.DiscreteConfig(**knob_values(args, CONFIG), regime=regime_from_args(args))


def memory_needed(cfg) -> float:
    """Estimated peak bytes of `simulate`: four per-generation metrics [R, G+1] (4 bytes each) about
    three times over (device, host, .npz buffer), and a few [R, K] arrays (counts, probabilities,
    first_zero, the final p, a pool's counts)."""
    r, g, k = cfg.replicates, cfg.generations, cfg.num_symbols
    return 3 * 4 * 4.0 * r * (g + 1) + 8 * 4.0 * r * k


def simulate(args, argv):
    from modelcollapse import discrete, regimes, runtime

    cfg, seed, platform = _job(args)
    check_output(args.out, ".npz")
    check_memory(memory_needed(cfg), what=f"discrete simulate with --replicates {cfg.replicates}, --generations "
                 f"{cfg.generations}, --num-symbols {cfg.num_symbols}",
                 lower="--replicates, --generations or --num-symbols")
    runtime.configure(platform)
    q = cfg.probs
    result = discrete.simulate_metrics(seed, probs=q, sample_size=cfg.sample_size,
                                       generations=cfg.generations, replicates=cfg.replicates, regime=cfg.regime)
    meta = {"probs": q, "sample_size": cfg.sample_size, "generations": cfg.generations,
            "num_symbols": cfg.num_symbols, "exponent": float(cfg.exponent),
            } | regimes.metadata(cfg.regime, index0=cfg.INDEX0)
    arrays = result._asdict()
    if args.keep == "final":  # an absorption run needs only where each chain ended
        arrays = {name: arrays[name] for name in ("final", "first_zero")}
    io.save_npz(args.out, arrays | meta)
    record(args.out, argv, seed=seed, config=dataclasses.asdict(cfg) | {"platform": platform})


def _regime_of(data):
    from modelcollapse import regimes

    return regimes.from_metadata(data)


def _cell(name: str, value):
    return int(value) if name in ("generation", "rank", "symbol") else float(value)


def summarize(args, argv):
    from modelcollapse import discrete

    check_output(args.out, ".csv")
    if args.ranks_out:
        check_output(args.ranks_out, ".csv")
        if not args.rank_generations:
            raise ValueError("--ranks-out needs --rank-generations")
    check_inputs(args.inputs)
    loaded = [(path, load_npz(path)) for path in args.inputs]
    for path, data in loaded:
        if "survivors" not in data:
            raise ValueError(f"{path} holds no per-generation metrics (simulated with --keep final)")
        too_late = [g for g in args.rank_generations or [] if g > int(data["generations"])]
        if too_late:
            raise ValueError(f"--rank-generations {too_late} exceed the {int(data['generations'])} "
                             f"generations of {path}")
    rows, rank_rows = [], []
    for path, data in loaded:
        regime, m, q = _regime_of(data), int(data["sample_size"]), data["probs"]
        keys = {"regime": regime.label, "num_symbols": int(data["num_symbols"]), "exponent": float(data["exponent"]),
                "sample_size": m, "replicates": int(data["survivors"].shape[0])}
        stats = discrete.summarize(data, probs=q, sample_size=m, regime=regime)
        for g in range(len(stats["generation"])):
            rows.append(keys | {k: _cell(k, v[g]) for k, v in stats.items()})
        if args.ranks_out:
            ranks = discrete.summarize_ranks(data["first_zero"], probs=q, sample_size=m, at=args.rank_generations,
                                             regime=regime)
            for i in range(len(ranks["rank"])):
                rank_rows.append(keys | {k: _cell(k, v[i]) for k, v in ranks.items()})
    rows.sort(key=lambda r: tuple(r[k] for k in ROW_KEYS + ("generation",)))
    io.write_csv(args.out, rows)
    written = [args.out]
    if args.ranks_out:
        rank_rows.sort(key=lambda r: tuple(r[k] for k in ROW_KEYS + ("generation", "rank")))
        io.write_csv(args.ranks_out, rank_rows)
        written.append(args.ranks_out)
    record(written, argv, config={"rank_generations": args.rank_generations}, inputs=args.inputs)


def absorption(args, argv):
    from modelcollapse import discrete

    check_output(args.out, ".csv")
    check_inputs([args.input])
    data = load_npz(args.input)
    if _regime_of(data).name != "replace":
        raise ValueError(f"{args.input}: the absorption summary needs regime 'replace', got {str(data['regime'])!r}")
    m, g = int(data["sample_size"]), int(data["generations"])
    stats = discrete.summarize_absorption(data["final"], probs=data["probs"], sample_size=m, generations=g)
    keys = {"num_symbols": int(data["num_symbols"]), "exponent": float(data["exponent"]), "sample_size": m,
            "generations": g, "replicates": int(data["final"].shape[0])}
    rows = [keys | {k: _cell(k, v[i]) for k, v in stats.items()} for i in range(len(stats["symbol"]))]
    io.write_csv(args.out, rows)
    record(args.out, argv, inputs=[args.input])


def figure(args, argv):
    from modelcollapse.plots import discrete as plot

    check_output(args.out, ".pdf")
    check_inputs([args.summary, args.ranks])
    written = plot.plot(read_csv(args.summary), read_csv(args.ranks), args.out)
    record(written, argv, inputs=[args.summary, args.ranks])


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import discrete as tables

    def build():
        rows, absorbed = read_csv(args.summary), read_csv(args.absorption)
        return (tables.table_tex(rows, args.generations), tables.absorption_table_tex(absorbed),
                macro_lines(tables.numbers(rows, absorbed)))

    write_texts(argv, (args.table, args.absorption_table, args.numbers), build,
                inputs=[args.summary, args.absorption], config={"generations": args.generations})


def register(subparsers) -> None:
    steps = subparsers.add_parser("discrete", help="resampling a discrete (Zipf) distribution: Wright-Fisher "
                                                   "chains").add_subparsers(dest="step", required=True)
    p = steps.add_parser("simulate", help="run R chains for one M; writes per-generation metrics as .npz",
                         description="One job of the config's discrete block (--config-json, as the rules run it: "
                                     "--part and its selector pick the job, the block sets everything else) or of "
                                     "the flags (--seed, --sample-size, --generations, --replicates required).")
    add_config_source(p, required=False)
    p.add_argument("--part", choices=sorted(SELECTORS),
                   help="with the block: main (selector --sample-size; the default) or absorption")
    p.add_argument("--seed", type=nonnegative_int, action=Knob)
    add_knob_flags(p, "discrete", CONFIG)
    add_regime(p)
    p.add_argument("--keep", choices=["metrics", "final"], default="metrics",
                   help="metrics: per-generation metrics [R, G+1] and the final p; final: only the final p and "
                        "first_zero (enough for `discrete absorption`, much smaller)")
    add_platform(p, action=Knob)
    p.add_argument("--out", required=True)
    p.set_defaults(func=simulate)
    p = add_summarize(steps, summarize, "per-generation statistics and exact theory of several .npz; writes CSV")
    p.add_argument("--ranks-out", help="also write P(symbol lost) by rank at --rank-generations to this CSV")
    p.add_argument("--rank-generations", type=nonnegative_int, nargs="+")
    p = steps.add_parser("absorption", help="which symbol each chain of one .npz fixed on, against theory; "
                                            "writes CSV")
    p.add_argument("--out", required=True)
    p.add_argument("input")
    p.set_defaults(func=absorption)
    p = steps.add_parser("figure", help="the surviving-symbols figure from the summary CSVs")
    p.add_argument("--summary", required=True)
    p.add_argument("--ranks", required=True, help="the --ranks-out CSV of summarize")
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)
    p = add_table(steps, table, help="the paper's tables and numbers from the summary CSVs")
    p.add_argument("--absorption", required=True, help="the CSV of `discrete absorption`")
    p.add_argument("--absorption-table", required=True)


def check_block(d) -> None:
    """Every job this family's rules start from its config block, built as the jobs build them
    (`config.check_config` calls this; ConfigError names the key)."""
    from modelcollapse import discrete
    from modelcollapse.config import check_within_generations, key_names, library_check, regime_at

    check_within_generations(d, "discrete")
    regime_at(d["regime"], "discrete.regime")  # names the key of a bad regime before the jobs are built
    absorption = d["absorption"]
    # The jobs themselves, as `discrete simulate --config-json` builds them (one per M, and the absorption run);
    # DiscreteConfig runs check_alphabet and check_pool, and `fields` names the key its message starts with.
    for m in d["sample_sizes"]:
        library_check("discrete", discrete.config_from_block, d, sample_size=m, fields=key_names("discrete", d))
    library_check("discrete.absorption", discrete.config_from_block, d, part="absorption",
                  fields=key_names("discrete.absorption", absorption))
