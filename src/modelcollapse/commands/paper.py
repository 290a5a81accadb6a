"""`modelcollapse check-config` and `modelcollapse paper provenance|build`."""

from __future__ import annotations

from modelcollapse import io
from modelcollapse.commands import add_config_source, check_output, command_line, config_from_args, write_texts


def check_config(args, argv):
    from modelcollapse.config import load_config

    from modelcollapse.config import run_name

    run = run_name(load_config(args.config), [args.config])
    print(f"{args.config}: ok (run '{run}': results/{run}/, figures/{run}/, paper/{run}/)")


def provenance(args, argv):
    from modelcollapse import runtime
    from modelcollapse.paper import provenance_tex

    config = config_from_args(args)
    check_output(args.out, ".tex")
    runtime.configure(config["platform"])
    record = io.provenance(command=command_line(argv), seed=config["seed"], config=config)
    io.write_text(args.out, provenance_tex(record, config))
    io.write_provenance(args.out, record)


def timings(args, argv):
    from modelcollapse.paper import timings_tex

    inputs = sorted(args.inputs)
    write_texts(argv, [args.out], lambda: [timings_tex(inputs)], inputs=inputs)


def build(args, argv):
    from modelcollapse.paper import build_pdf

    check_output(args.out, ".pdf")
    build_pdf(args.tex, args.out, generated=args.generated, figures=args.figures)


def register(subparsers) -> None:
    p = subparsers.add_parser("check-config", help="validate a workflow config file")
    p.add_argument("config")
    p.set_defaults(func=check_config)

    steps = subparsers.add_parser("paper", help="paper inputs and PDF").add_subparsers(dest="step", required=True)
    p = steps.add_parser("provenance", help="the reproducibility appendix for a config")
    add_config_source(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=provenance)
    p = steps.add_parser("timings", help="the appendix's table of job wall times from benchmark files")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="Snakemake benchmark .tsv files (results/timings/*.tsv)")
    p.set_defaults(func=timings)
    p = steps.add_parser("build", help="latexmk the paper into a PDF")
    p.add_argument("--tex", required=True)
    p.add_argument("--generated", help="the run's generated .tex folder (default: generated/ beside --tex)")
    p.add_argument("--figures", help="the run's figures folder (default: figures/ beside --tex's folder)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=build)
