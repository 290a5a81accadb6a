"""Sweeps: a grid over any family's config knobs, one job per grid point, one tidy table.

A sweep (the config's `sweeps.<name>` block) names a family, `set`: keys of that family's block
to change for every point, and `grid`: {key: [values]}, whose product are the points. Keys are
dotted paths into the family block; an integer step indexes a list (`sample_sizes.0`,
`regimes.0.real_fraction`). Each point runs the family's main experiment on its changed block:
the family's library module defines `sweep_rows(block, seed) -> [row]`, one row per job of the
block, holding the job's identifying keys and its summary statistics at the last generation
(theory columns included). The table adds the sweep's name, the point's index and its grid values.

A point's block is checked like any block (`config.check_config`), so a grid value the family
refuses is named before any job starts.
"""

from __future__ import annotations

import copy
import importlib
import itertools
from collections.abc import Mapping
from typing import Any


def last_generation(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The last generation's values of per-generation statistics (what `sweep_rows` reports)."""
    return {k: int(v[-1]) if k == "generation" else float(v[-1]) for k, v in stats.items()}


def points(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grid's points, {key: value} each, in row-major order of the grid's keys."""
    keys = list(sweep["grid"])
    return [dict(zip(keys, values)) for values in itertools.product(*(sweep["grid"][k] for k in keys))]


def set_path(block: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `block` with the dotted `path` set to `value`; ValueError naming the path where
    it does not lead to an existing key or list entry (a sweep may change knobs, not add them)."""
    out = copy.deepcopy(dict(block))
    node, steps = out, path.split(".")
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        where = ".".join(steps[: i + 1])
        if isinstance(node, list):
            if not step.isdigit() or int(step) >= len(node):
                raise ValueError(f"{where}: the list has {len(node)} entries; give an index below that")
            step = int(step)
        elif not isinstance(node, dict) or step not in node:
            if isinstance(node, str):
                raise ValueError(f"{where}: {'.'.join(steps[:i])} is {node!r}, not a mapping; set it to a "
                                 f"mapping first (the sweep's `set`)")
            raise ValueError(f"{where}: no such key in the block")
        if last:
            node[step] = copy.deepcopy(value)
        else:
            node = node[step]
    return out


def point_block(config: Mapping[str, Any], name: str, index: int) -> dict[str, Any]:
    """The family block of point `index` of sweep `name`: the block, then `set`, then the point."""
    sweep = config["sweeps"][name]
    grid = points(sweep)
    if not 0 <= index < len(grid):
        raise ValueError(f"sweeps.{name} has {len(grid)} points (0..{len(grid) - 1}), not {index}")
    block = config[sweep["family"]]
    for path, value in {**sweep.get("set", {}), **grid[index]}.items():
        block = set_path(block, path, value)
    return block


def point_config(config: Mapping[str, Any], name: str, index: int) -> dict[str, Any]:
    """The config a point runs: the shared keys and its family's changed block (no sweeps)."""
    family = config["sweeps"][name]["family"]
    shared = {k: v for k, v in config.items() if not isinstance(v, dict)}
    return shared | {family: point_block(config, name, index)}


def rows_function(family: str):
    """The family's `sweep_rows`; ValueError if the family cannot be swept."""
    try:
        module = importlib.import_module(f"modelcollapse.{family}")
    except ModuleNotFoundError:
        raise ValueError(f"family {family!r} has no library module modelcollapse.{family}") from None
    if not hasattr(module, "sweep_rows"):
        raise ValueError(f"family {family!r} cannot be swept: modelcollapse.{family} defines no sweep_rows(block, seed)")
    return module.sweep_rows


def run_point(config: Mapping[str, Any], name: str, index: int) -> list[dict[str, Any]]:
    """The table rows of one point: its family's `sweep_rows` with the sweep, point and grid values."""
    sweep = config["sweeps"][name]
    values = points(sweep)[index]
    rows = rows_function(sweep["family"])(point_block(config, name, index), config["seed"])
    return [{"sweep": name, "family": sweep["family"], "point": index}
            | {f"grid:{k}": v for k, v in values.items()} | row for row in rows]
