"""`modelcollapse gmm simulate|summarize|figure|table`: Gaussian-mixture EM chains."""

from __future__ import annotations

import dataclasses

import numpy as np

from modelcollapse import io
from modelcollapse.commands import (Knob, add_config_source, add_knob_flags, add_platform, add_regime,
                                    add_summarize, add_table, block_config, check_memory, check_output, distinct_runs,
                                    figure_inputs, knob_values, load_npz, nonnegative_int, read_csv, record,
                                    regime_from_args, write_summary, write_texts)

CONFIG = "modelcollapse.gmm.spec:GMMConfig"  # the knobs, and the flags of `simulate` (add_knob_flags)
# A choice of `modelcollapse.gmm`, repeated so that building the parser does not import JAX
# (tests/test_gmm.py checks it matches).
ENGINES = ("async", "lockstep")


def _job(args):
    """(GMMConfig, seed, platform) of the config block (--config-json, as the rules run it; --data
    picks the job) or of the flags; raises ValueError naming the bad argument or config key."""
    from modelcollapse import gmm

    config = block_config(args, "gmm", selectors=("--data",), required=("seed", "sample_size", "generations",
                                                                         "replicates"))
    if config is None:
        return _config(args), args.seed, args.platform
    return gmm.config_from_block(config["gmm"], data=args.data), config["seed"], config["platform"]


def _config(args):
    """GMMConfig from the command line; raises ValueError naming the bad argument."""
    from modelcollapse import gmm

    return gmm.GMMConfig(**knob_values(args, CONFIG), regime=regime_from_args(args))


def memory_needed(cfg) -> float:
    """Estimated peak bytes of `simulate`: the per-generation fits (weights [R, G+1, K], means
    [R, G+1, K, 2], covariances [R, G+1, K, 2, 2] in float32, five [R, G+1] diagnostics) about three
    times over, each generation's points and responsibilities [R, N, 2 + K] a few times, and for
    the pooling regimes every point drawn, [R, N (G+1), 2] (twice for accumulate)."""
    from modelcollapse import regimes

    r, g, n, k = cfg.replicates, cfg.generations, cfg.sample_size, cfg.n_components
    fits = 3 * (4.0 * 7 * k + 25) * r * (g + 1)
    working = 4 * 4.0 * r * n * (2 + k)
    pool = (2 if cfg.regime.name == "accumulate" else 1) * 8.0 * r * n * (g + 1) if regimes.uses_pool(cfg.regime) else 0
    return fits + working + pool


def simulate(args, argv):
    from modelcollapse import gmm, regimes, runtime

    cfg, seed, platform = _job(args)
    check_output(args.out, ".npz")
    check_memory(memory_needed(cfg), what=f"gmm simulate with --replicates {cfg.replicates}, --generations "
                 f"{cfg.generations}, --sample-size {cfg.sample_size}",
                 lower="--replicates, --generations or --sample-size")
    if not 1 <= args.slots <= cfg.replicates and args.slots != 0:
        raise ValueError(f"--slots must be 0 (automatic) or in [1, replicates = {cfg.replicates}], got {args.slots}")
    runtime.configure(platform)
    chains = gmm.simulate(seed, **{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)},
                          engine=args.engine, slots=args.slots or None)
    true = gmm.truth(cfg.data)
    snap = chains.snapshot_generations
    meta = regimes.metadata(cfg.regime, index0=cfg.INDEX0) | {
            "data": cfg.data, "sample_size": cfg.sample_size, "n_components": cfg.n_components, "tol": cfg.tol,
            "max_iter": cfg.max_iter, "reg_covar": cfg.reg_covar, "init": cfg.init,
            "truth_weights": true.weights, "truth_means": true.means, "truth_covs": true.covs,
            # replicate 0's fits at the snapshot generations, beside its points (the figure reads only these)
            "snapshot_weights": chains.weights[0, snap], "snapshot_means": chains.means[0, snap],
            "snapshot_covs": chains.covs[0, snap]}
    io.save_npz(args.out, chains._asdict() | meta)
    record(args.out, argv, seed=seed, config=vars(cfg) | {"engine": args.engine, "platform": platform})


def summarize(args, argv):
    import argparse

    from modelcollapse import gmm

    def one(data):
        chains = argparse.Namespace(**{name: data[name] for name in gmm.GMMChains._fields})
        stats = gmm.summarize(chains, data=str(data["data"]), sample_size=int(data["sample_size"]),
                              max_iter=int(data["max_iter"]))
        keys = {"data": str(data["data"]), "regime": str(data["regime_label"]),
                "sample_size": int(data["sample_size"]), "n_components": int(data["n_components"]),
                "replicates": int(data["weights"].shape[0]), "modes": int(data["truth_weights"].shape[0]),
                "tol": float(data["tol"]), "max_iter": int(data["max_iter"]), "reg_covar": float(data["reg_covar"]),
                "init": str(data["init"])}
        return keys, stats

    write_summary(args, argv, one, order=("data", "regime"), check=distinct_runs("data", "regime"))


def figure(args, argv):
    from modelcollapse.plots import gmm as plot

    inputs = figure_inputs(args, from_summary=args.kind == "distance", summary_from="gmm summarize",
                           results_from="gmm simulate")
    if args.kind == "distance":
        written = plot.plot_distance(read_csv(args.summary), args.out)
    else:
        written = plot.plot_snapshots([_snapshots(path) for path in inputs], args.out)
    record(written, argv, inputs=inputs)


def _snapshots(path) -> dict[str, np.ndarray]:
    """Only the arrays the snapshot grid draws (np.load reads an .npz member on access)."""
    return load_npz(path, ("data", "regime_label", "snapshot_generations", "snapshot_points", "snapshot_weights",
                           "snapshot_means", "snapshot_covs"))


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import gmm as tables

    def build():
        rows = read_csv(args.summary)
        return (tables.table_tex(rows, args.generations),
                macro_lines(tables.numbers(rows, replicates=args.replicates, generations=args.generations)))

    write_texts(argv, (args.table, args.numbers), build, inputs=[args.summary],
                config={"generations": args.generations})


def register(subparsers) -> None:
    steps = subparsers.add_parser("gmm", help="Gaussian-mixture EM fit-and-sample chains").add_subparsers(
        dest="step", required=True)
    p = steps.add_parser("simulate", help="run R chains for one data set and regime; writes .npz",
                         description="One job of the config's gmm block (--config-json, as the rules run it: --data "
                                     "picks the job, the block sets everything else but --engine and --slots) or "
                                     "of the flags (--seed, --sample-size, --generations, --replicates required).")
    add_config_source(p, required=False)
    p.add_argument("--seed", type=nonnegative_int, action=Knob)
    add_knob_flags(p, "gmm", CONFIG)
    add_regime(p)
    p.add_argument("--engine", choices=ENGINES, default="async")
    p.add_argument("--slots", type=nonnegative_int, default=0, help="async engine slots (0: automatic)")
    add_platform(p, action=Knob)
    p.add_argument("--out", required=True)
    p.set_defaults(func=simulate)
    add_summarize(steps, summarize, "per-generation statistics of several .npz; writes CSV")
    p = steps.add_parser("figure", help="the L2-distance figure (from the CSV) or the snapshot grid (from .npz)")
    p.add_argument("--kind", choices=["distance", "snapshots"], required=True)
    p.add_argument("--summary", help="distance: the summary CSV")
    p.add_argument("--results", nargs="+", help="snapshots: simulate outputs, one row of panels each")
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)
    p = add_table(steps, table)
    p.add_argument("--replicates", type=nonnegative_int, required=True)


def check_block(g) -> None:
    """Every job this family's rules start from its config block, built as the jobs build them
    (`config.check_config` calls this; ConfigError names the key)."""
    from modelcollapse.config import MAX_POOL_BYTES, ConfigError, key_names, library_check, regime_at
    from modelcollapse import gmm, regimes
    if not any(s <= g["generations"] for s in g["snapshots"]):
        raise ConfigError(f"config key 'gmm.snapshots': none of {g['snapshots']} is at most gmm.generations = "
                          f"{g['generations']}; the figure and the table need at least one")
    regime = regime_at(g["regime"], "gmm.regime")
    if regimes.uses_pool(regime):
        # float32 2-D points, N (G + 1) per chain; accumulate also keeps a [d, pool] training view.
        copies = 2 if regime.name == "accumulate" else 1
        need = copies * 4 * 2 * g["replicates"] * g["sample_size"] * (g["generations"] + 1)
        if need > MAX_POOL_BYTES:
            raise ConfigError(f"config key 'gmm.regime': {regime.name} stores every point, {need / 2**30:.1f} GiB "
                              f"for replicates x sample_size x generations; lower one of them "
                              f"(limit {MAX_POOL_BYTES / 2**30:.0f} GiB)")
    fields = key_names("gmm", g)
    for data in gmm.DATASETS:  # the gmm rules run every data set; GMMConfig runs check_components
        library_check("gmm", gmm.config_from_block, g, data=data, fields=fields)
