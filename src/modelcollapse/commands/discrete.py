"""`modelcollapse discrete simulate|summarize|absorption|figure|table|verify|verify-figure|verify-numbers`:
resampling a discrete distribution (the verify steps: the verification run of issue 21)."""

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
SELECTORS = {"main": ("--sample-size",), "absorption": (), "verify": ()}


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

    if args.part == "verify":
        return _simulate_verify(args, argv)
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


def _simulate_verify(args, argv):
    """The verify sub-block's one job: the neutral chain and one chain family per verifier width,
    stacked in one .npz ([S, ...] arrays, S = 1 + len(taus), in `labels` order)."""
    import numpy as np

    from modelcollapse import discrete, regimes, runtime

    config = block_config(args, "discrete", selectors=SELECTORS["verify"])
    if config is None:
        raise ValueError("--part picks a job of the config block: give --config-json or --config")
    if args.keep != "metrics":
        raise ValueError("--keep applies to the main and absorption parts, not --part verify")
    check_output(args.out, ".npz")
    block = config["discrete"]
    cfgs = {label: discrete.config_from_block(block, part="verify", label=label)
            for label in discrete.verify_regimes(block)}
    first = next(iter(cfgs.values()))
    r, g, k = first.replicates, first.generations, first.num_symbols
    check_memory(16.0 * r * g * k + 10.0 * len(cfgs) * r * (g + 2 * k),
                 what=f"discrete simulate --part verify with replicates {r}, generations {g}, num_symbols {k}",
                 lower="discrete.verify's replicates, generations or num_symbols")
    runtime.configure(config["platform"])
    seed, q = config["seed"], first.probs
    runs, weights, taus = [], [], []
    for label, cfg in cfgs.items():
        runs.append(discrete.simulate_verify(seed, probs=q, sample_size=cfg.sample_size, generations=g,
                                             replicates=r, regime=cfg.regime))
        weights.append(discrete.acceptance_weights(cfg.regime, k))
        taus.append(dict(regimes.spec(cfg.regime)[1]).get("tau", np.inf))
    arrays = {name: np.stack([getattr(run, name) for run in runs]) for name in discrete.VerifyChains._fields}
    meta = {"labels": np.array(list(cfgs)), "taus": np.array(taus, np.float64), "b": float(block["verify"]["b"]),
            "weights": np.stack(weights), "probs": q, "sample_size": first.sample_size, "generations": g,
            "num_symbols": k, "exponent": float(first.exponent)}
    io.save_npz(args.out, arrays | meta)
    record(args.out, argv, seed=seed, config={"verify": block["verify"], "exponent": block["exponent"],
                                              "platform": config["platform"]})


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


def _figure(plot, first: str, second: str, out: str, argv) -> None:
    """A figure drawn by `plot(rows, rows, out)` from two CSV files, with its provenance."""
    check_output(out, ".pdf")
    check_inputs([first, second])
    record(plot(read_csv(first), read_csv(second), out), argv, inputs=[first, second])


def figure(args, argv):
    from modelcollapse.plots import discrete as plot

    _figure(plot.plot, args.summary, args.ranks, args.out, argv)


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import discrete as tables

    def build():
        rows, absorbed = read_csv(args.summary), read_csv(args.absorption)
        return (tables.table_tex(rows, args.generations), tables.absorption_table_tex(absorbed),
                macro_lines(tables.numbers(rows, absorbed)))

    write_texts(argv, (args.table, args.absorption_table, args.numbers), build,
                inputs=[args.summary, args.absorption], config={"generations": args.generations})


def verify(args, argv):
    """The verification run's summaries: per chain family and generation, and per symbol, beside the exact law."""
    from modelcollapse import discrete

    check_output(args.out, ".csv")
    check_output(args.symbols_out, ".csv")
    check_inputs([args.input])
    data = load_npz(args.input)
    if "labels" not in data:
        raise ValueError(f"{args.input} is not a verification run (written by `discrete simulate --part verify`)")
    m, g = int(data["sample_size"]), int(data["generations"])
    rows, symbol_rows = [], []
    for i, label in enumerate(data["labels"]):
        keys = {"regime": str(label), "tau": float(data["taus"][i]), "b": float(data["b"]),
                "num_symbols": int(data["num_symbols"]), "exponent": float(data["exponent"]), "sample_size": m,
                "generations": g, "replicates": int(data["final"].shape[1])}
        by_generation, by_symbol = discrete.summarize_verify(data["first_zero"][i], data["top"][i], data["final"][i],
                                                             probs=data["probs"], sample_size=m,
                                                             weights=data["weights"][i])
        rows += [keys | {k: _cell(k, v[n]) for k, v in by_generation.items()} for n in range(g + 1)]
        symbol_rows += [keys | {k: _cell(k, v[j]) for k, v in by_symbol.items()} for j in range(len(by_symbol["q"]))]
    io.write_csv(args.out, rows)
    io.write_csv(args.symbols_out, symbol_rows)
    record([args.out, args.symbols_out], argv, inputs=[args.input])


def verify_figure(args, argv):
    from modelcollapse.plots import discrete_verify as plot

    _figure(plot.plot, args.summary, args.symbols, args.out, argv)


def verify_numbers(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import discrete as tables

    write_texts(argv, (args.numbers,),
                lambda: (macro_lines(tables.verify_numbers(read_csv(args.summary), read_csv(args.symbols))),),
                inputs=[args.summary, args.symbols])


def register(subparsers) -> None:
    steps = subparsers.add_parser("discrete", help="resampling a discrete (Zipf) distribution: Wright-Fisher "
                                                   "chains").add_subparsers(dest="step", required=True)
    p = steps.add_parser("simulate", help="run R chains for one M; writes per-generation metrics as .npz",
                         description="One job of the config's discrete block (--config-json, as the rules run it: "
                                     "--part and its selector pick the job, the block sets everything else) or of "
                                     "the flags (--seed, --sample-size, --generations, --replicates required).")
    add_config_source(p, required=False)
    p.add_argument("--part", choices=sorted(SELECTORS),
                   help="with the block: main (selector --sample-size; the default), absorption, or verify (the "
                        "verification run: every chain of the verify sub-block in one .npz)")
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
    p = steps.add_parser("verify", help="the verification run (simulate --part verify) by generation and by "
                                        "symbol, against the exact law of Wright-Fisher with selection; writes CSVs")
    p.add_argument("--out", required=True, help="CSV by chain family (label) and generation")
    p.add_argument("--symbols-out", required=True, help="CSV by chain family and symbol: fixation at the end")
    p.add_argument("input")
    p.set_defaults(func=verify)
    p = steps.add_parser("verify-figure", help="the verification figure from the CSVs of `discrete verify`")
    p.add_argument("--summary", required=True, help="the --out CSV of `discrete verify`")
    p.add_argument("--symbols", required=True, help="the --symbols-out CSV of `discrete verify`")
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=verify_figure)
    p = steps.add_parser("verify-numbers", help="the paper's numbers of the verification run")
    p.add_argument("--summary", required=True, help="the --out CSV of `discrete verify`")
    p.add_argument("--symbols", required=True, help="the --symbols-out CSV of `discrete verify`")
    p.add_argument("--numbers", required=True)
    p.set_defaults(func=verify_numbers)
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
    verify = d["verify"]
    for label in discrete.verify_regimes(d):
        library_check("discrete.verify", discrete.config_from_block, d, part="verify", label=label,
                      fields=key_names("discrete.verify", verify))
    library_check("discrete.verify", discrete.check_verify_size, verify["num_symbols"], verify["sample_size"],
                  fields=key_names("discrete.verify", verify))
