"""`python -m modelcollapse ...` / `modelcollapse ...`: every experiment step as a command.

Snakemake rules call exactly these commands, so running one by hand gives the same files.
Each family's subcommands live in `modelcollapse.commands.<family>`; adding a family is one
module there with `register(subparsers)` (found by its presence: `families`).

Every failure ends the same way: one line on stderr, `modelcollapse <command>: error: ...`, naming
the file, argument, config key or device and what was expected; a non-zero exit status (2 for a
bad argument, config, input or size, or a missing file; 1 for a failure while running: disk full, a diverged
training, a missing device); and the outputs the command had written removed, so that a failed
step never leaves a file that looks finished. `--debug` (anywhere on the command line) or
MODELCOLLAPSE_DEBUG=1 shows the Python traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys

EXIT_USAGE = 2  # bad arguments, config, inputs or sizes: fix the request
EXIT_FAILURE = 1  # the request was fine but running it failed (disk full, diverged training, no GPU, ...)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser; given `argv`, the knob flags of only its command are built (they
    import that family's library: see commands.add_knob_flags)."""
    from modelcollapse import commands

    names = families()
    parser = argparse.ArgumentParser(prog="modelcollapse", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of a failure (also MODELCOLLAPSE_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    commands.PARSING["command"] = next((a for a in argv if a in names), None) if argv is not None else None
    try:
        for family in names:
            importlib.import_module(f"modelcollapse.commands.{family}").register(sub)
    finally:
        commands.PARSING["command"] = None
    return parser


def families() -> list[str]:
    """The command modules under modelcollapse.commands, in the order `--help` lists them."""
    from modelcollapse import commands

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    from modelcollapse import commands

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MODELCOLLAPSE_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]  # accepted after the subcommand too; not part of provenance
    args = build_parser(argv).parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "step", None))))
    before = commands.snapshot(commands.output_files(args))
    try:
        args.func(args, argv)
    except KeyboardInterrupt:
        commands.remove_written(before)
        print(f"modelcollapse {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure becomes one line (the point of this function)
        commands.remove_written(before)
        if debug:
            raise
        print(f"modelcollapse {name}: error: {describe(err, args)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, (ValueError, LookupError, FileNotFoundError)) else EXIT_FAILURE
    return 0


def describe(err: BaseException, args) -> str:
    """One line for `err`: our own errors already name the argument or file; the operating
    system's are given the file and what was expected."""
    from modelcollapse import commands

    outputs = ", ".join(sorted({str(p) for p in commands.output_files(args)
                                if not str(p).endswith((".provenance.json", ".png"))}))
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.errno is not None:
        files = [str(f) for f in (err.filename, err.filename2) if f]
        where = files[-1] if files else (outputs or "a file")
        if err.errno == errno.ENOSPC:
            text = f"no space left on the device while writing {outputs or where}; free some space or write elsewhere"
        elif err.errno == errno.EDQUOT:
            text = f"disk quota exceeded while writing {outputs or where}"
        elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            text = f"cannot write {where}: {err.strerror}; expected a writable folder"
        elif err.errno == errno.EISDIR:
            text = f"{where} is a folder; expected a file"
        else:
            text = f"{err.strerror or err}: {where}"
    elif isinstance(err, MemoryError):
        text = (f"out of memory{' while computing ' + outputs if outputs else ''}; lower the replicates, "
                f"generations or sample size")
    elif isinstance(err, KeyError):
        inputs = ", ".join(commands.input_files(args))
        text = f"no key or column {err.args[0]!r} in the inputs ({inputs or 'none'}); are they the right files?"
    elif type(err).__name__ == "XlaRuntimeError" and "RESOURCE_EXHAUSTED" in str(err):
        text = f"the accelerator ran out of memory: {str(err).splitlines()[0]}"
    else:
        text = str(err) or type(err).__name__
        if type(err).__module__ not in ("builtins", "modelcollapse") and not type(err).__module__.startswith(
                "modelcollapse."):
            text = f"{type(err).__name__}: {text}"
    # One line: a multi-line message (e.g. LaTeX's errors) is joined.
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())
