"""CLI subcommands, one module per experiment family, each with `register(subparsers)`.

A command function takes `(args, argv)`, checks its arguments before any computation (the
outputs' folders, the inputs, the memory the job needs), and raises ValueError /
FileNotFoundError / RuntimeError with a message naming the argument, file or config key;
`modelcollapse.cli.main` turns every failure into one line on stderr, a non-zero exit status,
and removes the outputs the failed command wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shlex
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from modelcollapse import io

# Argument names (argparse dests) that name files a command writes, and files it reads: a failed
# command's new outputs are removed (cli.main), and error messages name the inputs.
OUTPUT_ARGS = ("out", "table", "numbers", "examples", "absorption_table", "ranks_out", "symbols_out")
INPUT_ARGS = ("inputs", "input", "summary", "ranks", "symbols", "absorption", "results", "corpus", "base", "classifier",
              "config", "tex", "tables")


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
        data = load_npz(path)
        try:
            rows.extend(tidy_rows(*summarize_file(data)))
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


# The command being parsed (cli.build_parser): only its knob flags are built, because building them
# imports the family's library (and JAX), which the other commands do not need.
PARSING: dict[str, str | None] = {"command": None}


def add_knob_flags(parser: argparse.ArgumentParser, command: str, config_class: str, *, skip=(), plain=()) -> None:
    """One Knob flag per knob of `config_class` (`module:Class`; modelcollapse.knobs): --name-with-dashes,
    its description as help, its default, enum as choices, arrays as nargs '+'. Values are checked
    by the knob's schema (`_knob_text`). `plain`: flags allowed beside the config block too (argparse's
    store; knobs the block does not set). Built only when `command` is parsed."""
    from modelcollapse import knobs

    if PARSING["command"] not in (None, command):
        return
    for field in knobs.knobs(knobs.config_class(config_class)):
        if field.name in skip:
            continue
        schema = knobs.schema_of(field)
        array = schema.get("type") == "array"
        item = schema.get("items", {}) if array else schema
        default = None if field.default is dataclasses.MISSING else field.default
        extra = {"nargs": "+"} if array else {}
        if "enum" in item:
            extra["choices"] = item["enum"]
        shown = "" if default is None else f" (default: {' '.join(map(str, default)) if array else default})"
        parser.add_argument("--" + field.name.replace("_", "-"), type=_knob_text(field.name, item), default=default,
                            action="store" if field.name in plain else Knob,
                            help=schema["description"].replace("%", "%%") + shown, **extra)


def _knob_text(name: str, schema):
    """argparse's type for one value of knob `name`: parsed as the schema's type and checked against
    it by the same validator as the config, in the same words (argparse adds the flag's name)."""
    from modelcollapse import knobs

    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    validator = knobs.Validator(schema)

    def convert(text: str):
        try:
            value = float(text) if "number" in kinds else int(text) if "integer" in kinds else text
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {knobs.expected(schema)}, got {text!r}") from None
        if "enum" not in schema and not validator.is_valid(value):
            raise argparse.ArgumentTypeError(f"{name} must be {knobs.expected(schema)}, got {text!r}")
        return value

    return convert


def knob_values(args, config_class: str, *, skip=()) -> dict:
    """The flags of `add_knob_flags` as the class's fields."""
    from modelcollapse import knobs

    return {f.name: getattr(args, f.name) for f in knobs.knobs(knobs.config_class(config_class))
            if f.name not in skip}


def add_config_source(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--config FILE | --config-json TEXT: steps that read the whole workflow config (or, with
    required=False, steps that may instead be run with flags: see `block_config`)."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--config", help="a workflow config YAML file")
    source.add_argument("--config-json", help="the effective config as JSON (what Snakemake passes)")


class Knob(argparse.Action):
    """argparse's `store` for a flag of a step that reads a config block (`block_config`): it also
    notes the flag as given (in `knobs_given`), so that beside the block it is refused, not ignored."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.knobs_given = [*getattr(namespace, "knobs_given", []), self.option_strings[-1]]


def knobs_given(args) -> list[str]:
    """The Knob flags given on the command line, once each, in order."""
    return list(dict.fromkeys(getattr(args, "knobs_given", [])))


def block_config(args, family: str, *, selectors: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> dict | None:
    """The settings of a step that a rule runs with its family's config block (`--config-json`, as
    `config_json(family)` in workflow/rules/common.smk emits it, or `--config FILE`) and a user may
    run with flags instead.

    With a block: the validated config (the `family` block and the shared keys seed, platform,
    data_dir); the block sets every knob, so of the Knob flags only `selectors` (the rule's
    wildcards, which pick one job of the block) may be given, and all of them must be.
    Without: None, and the flags named by `required` (argparse dests) must be given.
    """
    given = knobs_given(args)
    if args.config is None and args.config_json is None:
        missing = ["--" + dest.replace("_", "-") for dest in required if getattr(args, dest, None) is None]
        if missing:
            raise ValueError(f"the following arguments are required: {', '.join(missing)} "
                             f"(or the config block: --config-json / --config)")
        return None
    refused = [flag for flag in given if flag not in selectors]
    if refused:
        raise ValueError(f"{', '.join(refused)}: the config's {family} block (and its seed, platform) sets this, "
                         f"given with --config-json / --config; drop the flag or change the block")
    missing = [flag for flag in selectors if flag not in given]
    if missing:
        raise ValueError(f"with --config-json / --config, give {', '.join(selectors)} (which job of the {family} "
                         f"block); missing {', '.join(missing)}")
    return config_from_args(args, blocks=(family,))


def config_from_args(args, *, blocks: tuple[str, ...] | None = None) -> dict:
    """The validated config of `add_config_source`'s options. With `blocks`, --config-json may
    hold only those family blocks and the shared top-level keys (seed, platform, data_dir)."""
    import json

    from modelcollapse.config import check_config, load_config

    if args.config_json is not None:
        try:
            config = json.loads(args.config_json)
        except json.JSONDecodeError as err:
            raise ValueError(f"--config-json is not valid JSON ({err}); expected the config as one JSON object") from None
        if not isinstance(config, dict):
            raise ValueError(f"--config-json must be a JSON object of config keys, got {type(config).__name__}")
        check_config(config, blocks=blocks)
        return config
    return load_config(args.config)


def check_output(path: str, suffix: str) -> None:
    """Before any work: `path` ends in `suffix`, is not a folder, and its folder can be written
    (it, or the nearest folder above it that exists, since missing folders are created)."""
    path = Path(path)
    if path.suffix != suffix:
        raise ValueError(f"output {path} must end in {suffix}")
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; expected a file path ending in {suffix}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"output {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"output {path}: folder {folder} is not writable (read-only or another user's); "
                              f"expected a writable folder")


def check_inputs(paths: Iterable[str]) -> None:
    paths = [Path(p) for p in paths]
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        raise ValueError(f"input {', '.join(folders)} is a folder; expected a file")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")


# What a truncated, emptied or foreign file raises inside np.load / zipfile.
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)


def load_npz(path, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz result (or only `names`, read on demand); a file that is missing,
    truncated or not an .npz, or that lacks one of `names`, raises an error naming the file."""
    check_inputs([path])
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):  # a bare .npy
            raise ValueError("a single array, not an .npz archive")
        with data:
            files = data.files
            missing = [name for name in names or () if name not in files]
            if missing:
                raise KeyError(missing[0])
            return {name: data[name] for name in (files if names is None else names)}
    except KeyError as err:
        raise ValueError(f"{path}: no array {err.args[0]!r}; is it the result of the right step, and was that "
                         f"step rerun after an update?") from None
    except _UNREADABLE as err:
        raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err}); is it truncated or "
                         f"from another program? Rerun the step that writes it") from None


def read_csv(path) -> list[dict[str, str]]:
    """A summary CSV's rows; a missing, empty or undecodable file raises an error naming it."""
    check_inputs([path])
    try:
        rows = io.read_csv(path)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path} is not a readable CSV file ({type(err).__name__}: {err})") from None
    if not rows:
        raise ValueError(f"{path} holds no rows; rerun the step that writes it")
    return rows


# -- memory: refuse before starting what cannot fit --------------------------------------------------

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(text: str) -> int:
    """'64G', '512m', '1000000' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", text)
    if not match:
        raise ValueError(f"MODELCOLLAPSE_MEMORY_LIMIT={text!r}: expected a size such as 64G or 512M")
    return int(float(match[1]) * _UNITS[match[2].lower()])


def memory_limit() -> tuple[int, str]:
    """The bytes a job may use here and where that number comes from: $MODELCOLLAPSE_MEMORY_LIMIT, else
    the machine's physical memory (os.sysconf, or /proc/meminfo), lowered to a cgroup's limit (a
    container's, or a Slurm job's allocation) when one is set."""
    if os.environ.get("MODELCOLLAPSE_MEMORY_LIMIT"):
        return parse_bytes(os.environ["MODELCOLLAPSE_MEMORY_LIMIT"]), "MODELCOLLAPSE_MEMORY_LIMIT"
    try:
        limit, source = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"
    except (ValueError, OSError, AttributeError):
        limit, source = _meminfo_total(), "physical memory (/proc/meminfo)"
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < limit:
            limit, source = int(text), f"the cgroup limit in {path}"
    return limit, source


def _meminfo_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**63  # unknown: do not refuse


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def check_memory(need: float, *, what: str, lower: str) -> None:
    """Refuse a job whose estimated peak memory `need` (bytes) exceeds what this machine allows:
    a ValueError naming the estimate, the limit, and the arguments to `lower`."""
    limit, source = memory_limit()
    if need > limit:
        raise ValueError(f"{what} needs about {format_bytes(need)} of memory, more than the {format_bytes(limit)} "
                         f"allowed here ({source}); lower {lower}")


# -- what a failed command leaves behind ---------------------------------------------------------------


def output_files(args) -> list[Path]:
    """Every file a command may write: its outputs, their provenance records, a figure's PNG."""
    paths = []
    for name in OUTPUT_ARGS:
        value = getattr(args, name, None)
        if not value:
            continue
        path = Path(value)
        written = [path] + ([path.with_suffix(".png")] if path.suffix == ".pdf" else [])
        paths += [p for w in written for p in (w, io.provenance_path(w))]
    return paths


def input_files(args) -> list[str]:
    found = []
    for name in INPUT_ARGS:
        value = getattr(args, name, None)
        found += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    return found


def _identity(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def snapshot(paths: Iterable[Path]) -> dict[Path, tuple | None]:
    return {p: _identity(p) for p in paths}


def remove_written(before: dict[Path, tuple | None]) -> None:
    """Remove the files of `before` that were created or replaced since it was taken (an output
    without its provenance, or the first of several outputs, must not look finished)."""
    for path, old in before.items():
        if _identity(path) != old and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()


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


def add_platform(parser: argparse.ArgumentParser, *, action: type[argparse.Action] | str = "store") -> None:
    parser.add_argument("--platform", choices=["auto", "cpu", "gpu", "tpu"], default="auto", action=action,
                        help="JAX backend (default: auto)")


def add_regime(parser: argparse.ArgumentParser) -> None:
    """The data-regime options every family's `simulate` takes (see modelcollapse.regimes); Knob
    flags, which the config block's regime key replaces."""
    parser.add_argument("--regime", choices=["replace", "accumulate", "accumulate_subsample", "mix"],
                        default="replace", action=Knob)
    parser.add_argument("--real-fraction", type=float, default=0.0, action=Knob,
                        help="mix: share of real data per generation")
    parser.add_argument("--real-source", choices=["original", "fresh"], default="original", action=Knob,
                        help="mix: real data source")


def regime_from_args(args):
    """A Regime from `add_regime`'s options; --real-fraction / --real-source only with --regime mix."""
    from modelcollapse.regimes import Regime

    mix = args.regime == "mix"
    if not mix and (args.real_fraction != 0.0 or args.real_source != "original"):
        raise ValueError(f"--real-fraction / --real-source apply only to --regime mix, not {args.regime!r}")
    return Regime(name=args.regime, real_fraction=args.real_fraction if mix else 0.0,
                  real_source=args.real_source if mix else "original")
