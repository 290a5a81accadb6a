"""`python -m modelcollapse ...` / `modelcollapse ...`: every experiment step as a command.

Snakemake rules call exactly these commands, so running one by hand gives the same files.
Arguments are checked before any computation; errors print one line naming the argument
and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from modelcollapse import io

EXIT_USAGE = 2


def _command_line(argv: list[str]) -> str:
    return "python -m modelcollapse " + " ".join(shlex.quote(a) for a in argv)


# -- check-config ------------------------------------------------------------------------------

def cmd_check_config(args, argv):
    from modelcollapse.config import load_config

    load_config(args.config)
    print(f"{args.config}: ok")


# -- gaussian ----------------------------------------------------------------------------------

def cmd_gaussian_simulate(args, argv):
    from modelcollapse import gaussian, runtime, theory

    cfg = gaussian.GaussianConfig(sample_size=args.sample_size, generations=args.generations,
                                  replicates=args.replicates, estimator=args.estimator)
    _check_output(args.out, ".npz")
    runtime.configure(args.platform)
    chains = gaussian.simulate(args.seed, sample_size=cfg.sample_size, generations=cfg.generations,
                               replicates=cfg.replicates, estimator=cfg.estimator)
    io.save_npz(args.out, {"mean": chains.mean, "std": chains.std, "sample_size": cfg.sample_size,
                           "ddof": theory.ddof_of(cfg.estimator), "estimator": cfg.estimator})
    io.write_provenance(args.out, io.provenance(command=_command_line(argv), seed=args.seed,
                                                config=vars(cfg) | {"platform": args.platform}))


def cmd_gaussian_summarize(args, argv):
    from modelcollapse import gaussian

    _check_output(args.out, ".csv")
    _check_inputs(args.inputs)
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
    io.write_provenance(args.out, io.provenance(command=_command_line(argv), seed=None, config={},
                                                inputs=args.inputs))


def cmd_gaussian_figure(args, argv):
    from modelcollapse.plots import gaussian as plot

    _check_output(args.out, ".pdf")
    _check_inputs([args.summary])
    for path in plot.plot(io.read_csv(args.summary), args.out):
        io.write_provenance(path, io.provenance(command=_command_line(argv), seed=None, config={},
                                                inputs=[args.summary]))


def cmd_gaussian_table(args, argv):
    from modelcollapse.paper import macro_lines
    from modelcollapse.tables import gaussian as table

    _check_output(args.table, ".tex")
    _check_output(args.numbers, ".tex")
    _check_inputs([args.summary])
    rows = io.read_csv(args.summary)
    io.write_text(args.table, table.table_tex(rows, args.generations))
    io.write_text(args.numbers, macro_lines(table.numbers(rows, replicates=args.replicates)))
    for path in (args.table, args.numbers):
        io.write_provenance(path, io.provenance(command=_command_line(argv), seed=None,
                                                config={"generations": args.generations},
                                                inputs=[args.summary]))


# -- paper -------------------------------------------------------------------------------------

def cmd_paper_provenance(args, argv):
    from modelcollapse import runtime
    from modelcollapse.config import check_config, load_config
    from modelcollapse.paper import provenance_tex

    if args.config_json is not None:
        config = json.loads(args.config_json)
        check_config(config)
    else:
        config = load_config(args.config)
    _check_output(args.out, ".tex")
    runtime.configure(config["platform"])
    record = io.provenance(command=_command_line(argv), seed=config["seed"], config=config)
    io.write_text(args.out, provenance_tex(record, config))
    io.write_provenance(args.out, record)


def cmd_paper_build(args, argv):
    from modelcollapse.paper import build_pdf

    _check_output(args.out, ".pdf")
    build_pdf(args.tex, args.out)


# -- helpers -----------------------------------------------------------------------------------

def _check_output(path: str, suffix: str) -> None:
    if Path(path).suffix != suffix:
        raise ValueError(f"output {path} must end in {suffix}")


def _check_inputs(paths) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelcollapse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a workflow config file")
    p.add_argument("config")
    p.set_defaults(func=cmd_check_config)

    gauss = sub.add_parser("gaussian", help="1-D Gaussian fit-and-sample chains").add_subparsers(
        dest="step", required=True)
    p = gauss.add_parser("simulate", help="run R chains for one (M, estimator); writes .npz")
    p.add_argument("--seed", type=_positive_int, required=True)
    p.add_argument("--sample-size", type=_positive_int, required=True, help="M, points per generation")
    p.add_argument("--generations", type=_positive_int, required=True)
    p.add_argument("--replicates", type=_positive_int, required=True)
    p.add_argument("--estimator", choices=["unbiased", "mle"], default="unbiased")
    p.add_argument("--platform", choices=["auto", "cpu", "gpu", "tpu"], default="auto")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_gaussian_simulate)
    p = gauss.add_parser("summarize", help="per-generation statistics and theory of several .npz; writes CSV")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=cmd_gaussian_summarize)
    p = gauss.add_parser("figure", help="the fit-and-sample figure from the summary CSV")
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=cmd_gaussian_figure)
    p = gauss.add_parser("table", help="the paper's table and numbers from the summary CSV")
    p.add_argument("--summary", required=True)
    p.add_argument("--generations", type=_positive_int, nargs="+", required=True)
    p.add_argument("--replicates", type=_positive_int, required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--numbers", required=True)
    p.set_defaults(func=cmd_gaussian_table)

    paper = sub.add_parser("paper", help="paper inputs and PDF").add_subparsers(dest="step", required=True)
    p = paper.add_parser("provenance", help="the reproducibility appendix for a config")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="a config YAML file")
    source.add_argument("--config-json", help="the effective config as JSON (what Snakemake passes)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_paper_provenance)
    p = paper.add_parser("build", help="latexmk the paper into a PDF")
    p.add_argument("--tex", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_paper_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        args.func(args, argv)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"modelcollapse {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0
