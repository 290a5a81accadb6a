"""CLI subcommands, one module per experiment family, each with `register(subparsers)`.

A command function takes `(args, argv)`, checks its arguments before any computation, and
raises ValueError / FileNotFoundError / RuntimeError with a message naming the argument;
`modelcollapse.cli.main` turns those into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable
from pathlib import Path

from modelcollapse import io


def command_line(argv: list[str]) -> str:
    """The command as a user would retype it, recorded in provenance."""
    return "python -m modelcollapse " + " ".join(shlex.quote(str(a)) for a in argv)


def record(paths, argv: list[str], *, seed: int | None = None, config=None, inputs: Iterable = ()) -> None:
    """Write one provenance record (inputs hashed once) beside each output in `paths`."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    record_ = io.provenance(command=command_line(argv), seed=seed, config=config or {}, inputs=list(inputs))
    for path in paths:
        io.write_provenance(path, record_)


def tidy_rows(keys: dict, stats: dict) -> list[dict]:
    """One row per generation: the identifying `keys`, then each per-generation statistic of `stats`."""
    return [keys | {k: (int(v[g]) if k == "generation" else float(v[g])) for k, v in stats.items()}
            for g in range(len(stats["generation"]))]


def write_summary(args, argv, summarize_file, *, order: tuple[str, ...], check=None) -> None:
    """The `summarize` step every family shares: checks, one tidy CSV of all `args.inputs`, provenance.

    summarize_file(data) -> (identifying keys, per-generation statistics) for one loaded .npz;
    `check(rows)` may reject a mix of inputs; rows are sorted by `order`, then generation.
    """
    check_output(args.out, ".csv")
    check_inputs(args.inputs)
    rows = []
    for path in args.inputs:
        try:
            rows.extend(tidy_rows(*summarize_file(io.load_npz(path))))
        except KeyError as err:  # not this family's results, or written by an older version of the step
            raise ValueError(f"{path}: no array {err.args[0]!r}; is it a result of this family's simulate/chain "
                             f"step, and was that step rerun after an update?") from None
    if check is not None:
        check(rows)
    rows.sort(key=lambda r: tuple(r[k] for k in order + ("generation",)))
    io.write_csv(args.out, rows)
    record(args.out, argv, inputs=args.inputs)


def add_summarize(steps, func, help: str) -> argparse.ArgumentParser:
    """The `summarize` subcommand every family has: --out CSV and the .npz inputs."""
    p = steps.add_parser("summarize", help=help)
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=func)
    return p


def write_texts(argv, outputs, build, *, inputs, config=None) -> None:
    """The `table` step every family shares: check the .tex outputs and the inputs, build every
    text (`build()` -> one string per output; a bad request raises before anything is written),
    write them atomically, one provenance record beside each."""
    outputs = list(outputs)
    for path in outputs:
        check_output(path, ".tex")
    check_inputs(inputs)
    texts = build()
    for path, text in zip(outputs, texts, strict=True):
        io.write_text(path, text)
    record(outputs, argv, config=config, inputs=inputs)


def add_table(steps, func, help: str = "the paper's table and numbers from the summary CSV"):
    """The `table` subcommand's shared options (--summary, --generations, --table, --numbers); a
    family adds its own to the returned parser."""
    p = steps.add_parser("table", help=help)
    p.add_argument("--summary", required=True)
    p.add_argument("--generations", type=nonnegative_int, nargs="+", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--numbers", required=True)
    p.set_defaults(func=func)
    return p


def distinct_runs(*keys: str):
    """A `write_summary` check: every input is a different run (by `keys`) over the same generations."""
    def check(rows):
        runs = {tuple(r[k] for k in keys) for r in rows}
        if len(runs) * len({r["generation"] for r in rows}) != len(rows):
            raise ValueError(f"inputs must be distinct ({', '.join(keys)}) runs with the same generations")
    return check


def figure_inputs(args, *, from_summary: bool, summary_from: str, results_from: str) -> list[str]:
    """Check a `figure` command's sources before drawing: kinds drawn from the summary CSV read
    --summary only, the others --results only. Returns the input paths (for provenance)."""
    check_output(args.out, ".pdf")
    if from_summary:
        if not args.summary or args.results:
            raise ValueError(f"--kind {args.kind} reads --summary (the CSV of `{summary_from}`), not --results")
        inputs = [args.summary]
    else:
        if not args.results or args.summary:
            raise ValueError(f"--kind {args.kind} reads --results (the .npz files of `{results_from}`), "
                             f"not --summary")
        inputs = list(args.results)
    check_inputs(inputs)
    return inputs


def add_config_source(parser: argparse.ArgumentParser) -> None:
    """--config FILE | --config-json TEXT: steps that read the whole workflow config."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="a workflow config YAML file")
    source.add_argument("--config-json", help="the effective config as JSON (what Snakemake passes)")


def config_from_args(args, *, blocks: tuple[str, ...] | None = None) -> dict:
    """The validated config of `add_config_source`'s options. With `blocks`, --config-json may
    hold only those family blocks and the shared top-level keys (seed, platform, data_dir)."""
    import json

    from modelcollapse.config import check_config, load_config

    if args.config_json is not None:
        config = json.loads(args.config_json)
        check_config(config, blocks=blocks)
        return config
    return load_config(args.config)


def check_output(path: str, suffix: str) -> None:
    if Path(path).suffix != suffix:
        raise ValueError(f"output {path} must end in {suffix}")


def check_inputs(paths: Iterable[str]) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return value


def add_platform(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", choices=["auto", "cpu", "gpu", "tpu"], default="auto",
                        help="JAX backend (default: auto)")


def add_regime(parser: argparse.ArgumentParser) -> None:
    """The data-regime options every family's `simulate` takes (see modelcollapse.regimes)."""
    parser.add_argument("--regime", choices=["replace", "accumulate", "accumulate_subsample", "mix"],
                        default="replace")
    parser.add_argument("--real-fraction", type=float, default=0.0, help="mix: share of real data per generation")
    parser.add_argument("--real-source", choices=["original", "fresh"], default="original",
                        help="mix: real data source")


def regime_from_args(args):
    """A Regime from `add_regime`'s options; --real-fraction / --real-source only with --regime mix."""
    from modelcollapse.regimes import Regime

    mix = args.regime == "mix"
    if not mix and (args.real_fraction != 0.0 or args.real_source != "original"):
        raise ValueError(f"--real-fraction / --real-source apply only to --regime mix, not {args.regime!r}")
    return Regime(name=args.regime, real_fraction=args.real_fraction if mix else 0.0,
                  real_source=args.real_source if mix else "original")
