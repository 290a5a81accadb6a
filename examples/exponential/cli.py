"""`python -m examples.exponential.cli simulate|figure`: the exponential family's commands.

Shaped like a `modelcollapse.commands` module (`register(subparsers)`, commands `(args, argv)`), so
moving the family into the package is: copy this file to `src/modelcollapse/commands/exponential.py`
(the CLI finds every module there). Until then `main` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

import numpy as np

from modelcollapse import io, regimes
from modelcollapse.commands import (add_knob_flags, add_platform, check_inputs, check_output, knob_values,
                                    nonnegative_int)

PROGRAM = "python -m examples.exponential.cli"
CONFIG = "examples.exponential.exponential:ExponentialConfig"  # the knobs, and the flags of `simulate`


def _record(paths, argv, **kwargs) -> None:
    """`modelcollapse.commands.record`, with this program's name in the recorded command."""
    command = PROGRAM + " " + " ".join(shlex.quote(str(a)) for a in argv)
    record = io.provenance(command=command, seed=kwargs.get("seed"), config=kwargs.get("config") or {},
                           inputs=list(kwargs.get("inputs", ())))
    for path in [paths] if isinstance(paths, str) else paths:
        io.write_provenance(path, record)


def regime_from_args(args) -> dict:
    """{name: ..., **params} from --regime NAME and --regime-param KEY=VALUE (values read as JSON)."""
    regime = {"name": args.regime}
    for item in args.regime_param:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--regime-param must be KEY=VALUE, got {item!r}")
        try:
            regime[key] = json.loads(value)
        except json.JSONDecodeError:
            regime[key] = value  # a bare word, e.g. real_source=fresh
    return regime


def simulate(args, argv):
    from examples.exponential import exponential, window  # noqa: F401  (window registers its regime)
    from modelcollapse import family, runtime

    check_output(args.out, ".npz")
    regime = regime_from_args(args)
    cfg = exponential.ExponentialConfig(**knob_values(args, CONFIG), regime=regimes.Regime.from_config(regime))
    meta = regimes.metadata(cfg.regime, index0=cfg.INDEX0)
    runtime.configure(args.platform)
    metrics = family.simulate(exponential.family(cfg.rate), args.seed, sample_size=cfg.sample_size,
                              generations=cfg.generations, replicates=cfg.replicates, regime=cfg.regime)
    meta |= {"rate": cfg.rate, "sample_size": cfg.sample_size}
    io.save_npz(args.out, metrics | meta)
    _record(args.out, argv, seed=args.seed, config=knob_values(args, CONFIG) | {"regime": regime,
                                                                                 "platform": args.platform})


def figure(args, argv):
    import matplotlib.pyplot as plt

    from examples.exponential import exponential
    from modelcollapse.plots.style import RC, colors, save

    check_output(args.out, ".pdf")
    check_inputs(args.results)
    runs = [io.load_npz(path) for path in args.results]
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.4))
        for run, color in zip(runs, colors(len(runs))):
            n = np.arange(run["log_scale"].shape[1])
            axes[0].plot(n, run["log_scale"].mean(0), color=color, label=str(run["regime_label"]))
            axes[1].plot(n, run["kl"].mean(0), color=color)
        m = int(runs[0]["sample_size"])
        n = np.arange(max(run["log_scale"].shape[1] for run in runs))
        axes[0].plot(n, exponential.expected_log_scale(n, m, 1 / float(runs[0]["rate"])), "k--", lw=0.8,
                     label="replace, theory")
        axes[1].plot(n, exponential.expected_kl(n, m), "k--", lw=0.8)
        axes[0].set(xlabel="generation n", ylabel=r"mean $\log s_n$")
        axes[1].set(xlabel="generation n", ylabel="mean KL(truth || model n)", yscale="log")
        axes[0].legend(frameon=False)
        fig.tight_layout()
        written = save(fig, args.out)
    _record([str(p) for p in written], argv, inputs=args.results)


def register(subparsers) -> None:
    steps = subparsers.add_parser("exponential", help="exponential-rate MLE chains (the Extend-it example)"
                                  ).add_subparsers(dest="step", required=True)
    p = steps.add_parser("simulate", help="run R chains under one regime; writes .npz")
    p.add_argument("--seed", type=nonnegative_int, required=True)
    add_knob_flags(p, "exponential", CONFIG)
    p.add_argument("--regime", default="replace", help="a built-in or registered regime (e.g. window)")
    p.add_argument("--regime-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the regime, repeatable (e.g. k=5, real_fraction=0.1)")
    add_platform(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=simulate)
    p = steps.add_parser("figure", help="mean log-scale and KL per generation, replace theory dashed")
    p.add_argument("--results", nargs="+", required=True, help="simulate outputs, one line each")
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.set_defaults(func=figure)


def main(argv: list[str] | None = None) -> int:
    """As `modelcollapse.cli.main`, with only this family: `python -m examples.exponential.cli simulate ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    # The family's own subcommands sit one level down; accept them directly (`simulate ...`).
    args = parser.parse_args(["exponential", *argv])
    try:
        args.func(args, argv)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"{PROGRAM} {args.step}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
