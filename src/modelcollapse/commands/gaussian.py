"""`modelcollapse gaussian simulate|summarize|figure|table`: the 1-D Gaussian chains."""

from __future__ import annotations

from modelcollapse import io
from modelcollapse.commands import add_platform, check_inputs, check_output, command_line, nonnegative_int


def simulate(args, argv):
    from modelcollapse import gaussian, runtime, theory

    cfg = gaussian.GaussianConfig(sample_size=args.sample_size, generations=args.generations,
                                  replicates=args.replicates, estimator=args.estimator)
    check_output(args.out, ".npz")
    runtime.configure(args.platform)
    chains = gaussian.simulate(args.seed, sample_size=cfg.sample_size, generations=cfg.generations,
                               replicates=cfg.replicates, estimator=cfg.estimator)
    io.save_npz(args.out, {"mean": chains.mean, "std": chains.std, "sample_size": cfg.sample_size,
                           "ddof": theory.ddof_of(cfg.estimator), "estimator": cfg.estimator})
    io.write_provenance(args.out, io.provenance(command=command_line(argv), seed=args.seed,
                                                config=vars(cfg) | {"platform": args.platform}))


def summarize(args, argv):
    from modelcollapse import gaussian

    check_output(args.out, ".csv")
    check_inputs(args.inputs)
    rows = []
    for path in args.inputs:
        data = io.load_npz(path)
        estimator, m = str(data["estimator"]), int(data["sample_size"])
        stats = gaussian.summarize(data["mean"], data["std"], sample_size=m, estimator=estimator)
        for g in range(len(stats["generation"])):
            rows.append({"estimator": estimator, "sample_size": m}
                        | {k: (int(v[g]) if k == "generation" else float(v[g])) for k, v in stats.items()})
    rows.sort(key=lambda r: (r["estimator"], r["sample_size"], r["generation"]))
    io.write_csv(args.out, rows)
    io.write_provenance(args.out, io.provenance(command=command_line(argv), seed=None, config={},
                                                inputs=args.inputs))


def figure(args, argv):
    from modelcollapse.plots import gaussian as plot

    check_output(args.out, ".pdf")
    check_inputs([args.summary])
    for path in plot.plot(io.read_csv(args.summary), args.out):
        io.write_provenance(path, io.provenance(command=command_line(argv), seed=None, config={},
                                                inputs=[args.summary]))


def table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import gaussian as tables

    check_output(args.table, ".tex")
    check_output(args.numbers, ".tex")
    check_inputs([args.summary])
    rows = io.read_csv(args.summary)
    io.write_text(args.table, tables.table_tex(rows, args.generations))
    io.write_text(args.numbers, macro_lines(tables.numbers(rows, replicates=args.replicates)))
    for path in (args.table, args.numbers):
        io.write_provenance(path, io.provenance(command=command_line(argv), seed=None,
                                                config={"generations": args.generations},
                                                inputs=[args.summary]))


def register(subparsers) -> None:
    steps = subparsers.add_parser("gaussian", help="1-D Gaussian fit-and-sample chains").add_subparsers(
        dest="step", required=True)
    p = steps.add_parser("simulate", help="run R chains for one (M, estimator); writes .npz")
    p.add_argument("--seed", type=nonnegative_int, required=True)
    p.add_argument("--sample-size", type=nonnegative_int, required=True, help="M, points per generation")
    p.add_argument("--generations", type=nonnegative_int, required=True)
    p.add_argument("--replicates", type=nonnegative_int, required=True)
    p.add_argument("--estimator", choices=["unbiased", "mle"], default="unbiased")
    add_platform(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=simulate)
    p = steps.add_parser("summarize", help="per-generation statistics and theory of several .npz; writes CSV")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=summarize)
    p = steps.add_parser("figure", help="the fit-and-sample figure from the summary CSV")
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)
    p = steps.add_parser("table", help="the paper's table and numbers from the summary CSV")
    p.add_argument("--summary", required=True)
    p.add_argument("--generations", type=nonnegative_int, nargs="+", required=True)
    p.add_argument("--replicates", type=nonnegative_int, required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--numbers", required=True)
    p.set_defaults(func=table)
