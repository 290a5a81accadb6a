"""`modelcollapse check-config` and `modelcollapse paper provenance|build`."""

from __future__ import annotations

import json

from modelcollapse import io
from modelcollapse.commands import check_output, command_line


def check_config(args, argv):
    from modelcollapse.config import load_config

    load_config(args.config)
    print(f"{args.config}: ok")


def provenance(args, argv):
    from modelcollapse import runtime
    from modelcollapse.config import check_config as check, load_config
    from modelcollapse.paper import provenance_tex

    if args.config_json is not None:
        config = json.loads(args.config_json)
        check(config)
    else:
        config = load_config(args.config)
    check_output(args.out, ".tex")
    runtime.configure(config["platform"])
    record = io.provenance(command=command_line(argv), seed=config["seed"], config=config)
    io.write_text(args.out, provenance_tex(record, config))
    io.write_provenance(args.out, record)


def build(args, argv):
    from modelcollapse.paper import build_pdf

    check_output(args.out, ".pdf")
    build_pdf(args.tex, args.out)


def register(subparsers) -> None:
    p = subparsers.add_parser("check-config", help="validate a workflow config file")
    p.add_argument("config")
    p.set_defaults(func=check_config)

    steps = subparsers.add_parser("paper", help="paper inputs and PDF").add_subparsers(dest="step", required=True)
    p = steps.add_parser("provenance", help="the reproducibility appendix for a config")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="a config YAML file")
    source.add_argument("--config-json", help="the effective config as JSON (what Snakemake passes)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=provenance)
    p = steps.add_parser("build", help="latexmk the paper into a PDF")
    p.add_argument("--tex", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=build)
