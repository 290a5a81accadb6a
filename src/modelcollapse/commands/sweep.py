"""`modelcollapse sweep point|table|figure`: grids over a family's knobs (modelcollapse.sweeps)."""

from __future__ import annotations

from modelcollapse import io
from modelcollapse.commands import (add_config_source, check_inputs, check_output, config_from_args,
                                    nonnegative_int, read_csv, record)


def _sweep(args) -> tuple[dict, dict]:
    """(config, the sweep's block) of --config-json / --config; ValueError naming a missing sweep."""
    config = config_from_args(args, blocks=("sweeps",))
    if args.sweep not in config["sweeps"]:
        raise ValueError(f"--sweep {args.sweep!r} is not a sweep of the config (sweeps: "
                         f"{', '.join(config['sweeps']) or 'none'})")
    return config, config["sweeps"][args.sweep]


def point(args, argv):
    from modelcollapse import runtime, sweeps

    config, _ = _sweep(args)
    check_output(args.out, ".csv")
    point_config = sweeps.point_config(config, args.sweep, args.point)  # refuses a point off the grid
    runtime.configure(config["platform"])
    rows = sweeps.run_point(config, args.sweep, args.point)
    io.write_csv(args.out, rows)
    record(args.out, argv, seed=config["seed"], config=point_config)


def table(args, argv):
    check_output(args.out, ".csv")
    check_inputs(args.inputs)
    rows = [row for path in args.inputs for row in read_csv(path)]
    if len({r["sweep"] for r in rows}) != 1:
        raise ValueError("give the points of one sweep (their rows name more than one sweep)")
    rows.sort(key=lambda r: int(r["point"]))
    io.write_csv(args.out, rows)
    record(args.out, argv, inputs=args.inputs)


def figure(args, argv):
    from modelcollapse.plots import sweep as plot

    config = config_from_args(args, blocks=("sweeps",))
    check_output(args.out, ".pdf")
    check_inputs(args.tables)
    written = plot.phase_diagram(_panels(args, config), args.out)
    record(written, argv, inputs=args.tables)


def _panels(args, config):
    panels = []
    for path in args.tables:
        rows = read_csv(path)
        name = rows[0]["sweep"]
        spec = config["sweeps"].get(name, {}).get("figure")
        if spec is None:
            raise ValueError(f"{path}: sweep {name!r} has no `figure` block in the config (sweeps.{name}.figure)")
        panels.append((name, config["sweeps"][name]["family"], spec, rows))
    return panels


def numbers(args, argv):
    """Macros sweep.<name>.x<x>.y<y> (simulated +- s.e.) and .theory for every cell of each phase
    diagram, the same for its corners as sweep.<name>.{xlo,xhi}.{ylo,yhi}, and the axes' ends."""
    from modelcollapse.commands import write_texts
    from modelcollapse.paper import latex_number, latex_pm, macro_lines
    from modelcollapse.plots.sweep import grid_of

    config = config_from_args(args, blocks=("sweeps",))

    def build():
        out = {}
        for name, _, spec, rows in _panels(args, config):
            xs, ys, metric, theory = grid_of(rows, spec)
            se = {(float(r[spec["x"]]), float(r[spec["y"]])): float(r.get(spec["metric"] + "_se", "nan")) for r in rows}
            out[f"sweep.{name}.G"] = rows[0]["generation"]

            def cell(key, i, j):
                out[key] = latex_pm(metric[i, j], se[(xs[j], ys[i])])
                out[key + ".theory"] = latex_number(theory[i, j])

            for i, y in enumerate(ys):
                for j, x in enumerate(xs):
                    cell(f"sweep.{name}.x{x:g}.y{y:g}", i, j)
            # the grid's corners under names that do not depend on its values (the text cites these)
            for j, x_end in ((0, "xlo"), (-1, "xhi")):
                for i, y_end in ((0, "ylo"), (-1, "yhi")):
                    cell(f"sweep.{name}.{x_end}.{y_end}", i, j)
            out.update({f"sweep.{name}.xlo": f"{xs[0]:g}", f"sweep.{name}.xhi": f"{xs[-1]:g}",
                        f"sweep.{name}.ylo": f"{ys[0]:g}", f"sweep.{name}.yhi": f"{ys[-1]:g}"})
        return [macro_lines(out)]

    write_texts(argv, [args.out], build, inputs=args.tables)


def register(subparsers) -> None:
    steps = subparsers.add_parser("sweep", help="grids over a family's knobs: points, tables, phase diagrams"
                                  ).add_subparsers(dest="step", required=True)
    p = steps.add_parser("point", help="run one grid point of a sweep; writes its rows (CSV)")
    add_config_source(p)
    p.add_argument("--sweep", required=True, help="a name under the config's sweeps")
    p.add_argument("--point", type=nonnegative_int, required=True, help="the point's index in the grid (row-major)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=point)
    p = steps.add_parser("table", help="one tidy table of a sweep's points")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=table)
    p = steps.add_parser("figure", help="the phase diagram of the sweeps that have a figure block")
    add_config_source(p)
    p.add_argument("--out", required=True, help="PDF path; the PNG is written beside it")
    p.add_argument("tables", nargs="+")
    p.set_defaults(func=figure)
    p = steps.add_parser("numbers", help="the paper's macros of every phase-diagram cell")
    add_config_source(p)
    p.add_argument("--out", required=True)
    p.add_argument("tables", nargs="+")
    p.set_defaults(func=numbers)
