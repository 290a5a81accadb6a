"""`modelcollapse check-config`, `config-schema` and `modelcollapse paper provenance|numbers|timings|build`."""

from __future__ import annotations

from modelcollapse import io
from modelcollapse.commands import add_config_source, check_output, command_line, config_from_args, write_texts


def check_config(args, argv):
    from modelcollapse.config import load_config

    from modelcollapse.config import run_name

    run = run_name(load_config(args.config), [args.config])
    print(f"{args.config}: ok (run '{run}': results/{run}/, figures/{run}/, paper/{run}/)")


def schema(args, argv):
    """The whole config schema as the checks use it (schemas/<family>.yaml with each config class's
    knobs filled in), as YAML on stdout: every key, its type, bounds and description."""
    import yaml

    from modelcollapse.config import schema as full

    out = full()
    if args.block is not None:
        if args.block not in out["properties"]:
            raise ValueError(f"--block {args.block!r} is no config key; expected one of {sorted(out['properties'])}")
        out = out["properties"][args.block]
    print(yaml.safe_dump(out, sort_keys=False, width=110), end="")


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


def numbers(args, argv):
    """generated/numbers.tex: an \\input of every family's numbers file, so that main.tex reads them
    all with one line and a new family's numbers need no edit of main.tex."""
    from pathlib import Path

    names = [Path(p).name for p in args.inputs]
    bad = [n for n in names if not n.endswith("_numbers.tex")]
    if bad:
        raise ValueError(f"expected generated *_numbers.tex files, got {', '.join(bad)}")
    lines = ["% The paper's numbers files (written by `modelcollapse paper numbers`).\n"]
    write_texts(argv, [args.out], lambda: ["".join(lines + [f"\\input{{generated/{n}}}\n" for n in names])],
                inputs=list(args.inputs))


def build(args, argv):
    from modelcollapse.paper import build_pdf

    check_output(args.out, ".pdf")
    build_pdf(args.tex, args.out, generated=args.generated, figures=args.figures)


def register(subparsers) -> None:
    p = subparsers.add_parser("check-config", help="validate a workflow config file")
    p.add_argument("config")
    p.set_defaults(func=check_config)

    p = subparsers.add_parser("config-schema", help="print the config's JSON schema (every key, its type, bounds, "
                                                    "description) as YAML")
    p.add_argument("--block", help="only this top-level key's part (e.g. gmm)")
    p.set_defaults(func=schema)

    steps = subparsers.add_parser("paper", help="paper inputs and PDF").add_subparsers(dest="step", required=True)
    p = steps.add_parser("provenance", help="the reproducibility appendix for a config")
    add_config_source(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=provenance)
    p = steps.add_parser("timings", help="the appendix's table of job wall times from benchmark files")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="Snakemake benchmark .tsv files (results/timings/*.tsv)")
    p.set_defaults(func=timings)
    p = steps.add_parser("numbers", help="generated/numbers.tex: one \\input per numbers file, for main.tex")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+", help="the run's generated *_numbers.tex files, in the order to read them")
    p.set_defaults(func=numbers)
    p = steps.add_parser("build", help="latexmk the paper into a PDF")
    p.add_argument("--tex", required=True)
    p.add_argument("--generated", help="the run's generated .tex folder (default: generated/ beside --tex)")
    p.add_argument("--figures", help="the run's figures folder (default: figures/ beside --tex's folder)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=build)
