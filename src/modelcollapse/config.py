"""Loading and validating the workflow config (`config/*.yaml`) before any work starts.

The JSON schema (`config.schema.yaml`, linked from `workflow/schemas/`) checks types, ranges,
enums and unknown keys; `check_config` adds the checks a schema cannot express (one key
bounded by another). Every error names the key and what was expected. Files are read strictly:
UTF-8 only, and a key given twice in one mapping is an error naming the key and both lines
(plain YAML keeps the last one silently).

Runs: every config's outputs live apart, under `results/<run>/`, `figures/<run>/` and
`paper/<run>/` (see `run_name`): the `run` key if set, else the config file's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


def schema() -> dict[str, Any]:
    text = resources.files("modelcollapse").joinpath("config.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file's mapping, read strictly: ConfigError naming the file for a missing file,
    bytes that are not UTF-8 (with the line), invalid YAML, a key given twice in one mapping (with
    the key and both lines) or a top level that is not a mapping. Does not validate the keys."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); "
                          f"save it as UTF-8") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _reject_duplicate_keys(node)
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(err).split())}") from None
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(config).__name__}")
    return config


def _reject_duplicate_keys(node, path: str = "") -> None:
    """ConfigError for the first mapping key given twice under `node` (a composed YAML node)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            dotted = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                raise ConfigError(f"config key '{dotted}' is given twice (lines {seen[key]} and {line}); "
                                  f"keep one")
            seen[key] = line
            _reject_duplicate_keys(value_node, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{path}[{i}]")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it; raises ConfigError naming the file and key."""
    config = read_yaml(path)
    try:
        check_config(config)
        run_name(config, [path])
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return config


# The run of config/config.yaml (the file every other config is a variant of).
DEFAULT_RUN = "default"
_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def run_name(config: Mapping[str, Any], configfiles: Sequence[str | Path] = ()) -> str:
    """The name of the run whose outputs this config writes (`results/<run>/`, `figures/<run>/`,
    `paper/<run>/`): the `run` key if set, else the name of the last config file given without
    its extension (config/smoke.yaml -> 'smoke', config/paper.yaml -> 'paper'), where
    config/config.yaml and no file at all give 'default'."""
    if config.get("run"):
        return str(config["run"])
    if not configfiles:
        return DEFAULT_RUN
    stem = Path(configfiles[-1]).stem
    if stem == "config":
        return DEFAULT_RUN
    if not _RUN.fullmatch(stem):
        raise ConfigError(f"config key 'run': not set, and the config file name {stem!r} cannot name the run's "
                          f"folders (letters, digits, '_', '.', '-'); set run: NAME in the file")
    return stem


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"config key '{key}': {error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        if not error.absolute_path:  # a whole block (or a shared key) is missing
            return (f"config key '{key}': {error.message}; a config file is complete by itself (nothing is filled "
                    f"in from config/config.yaml): copy the missing block from config/smoke.yaml or "
                    f"config/config.yaml")
        return f"config key '{key}': {error.message}"
    expected = error.schema.get("description")
    hint = f" (expected: {expected.strip()})" if expected else ""
    return f"config key '{key}': {error.message}{hint}"


def check_config(config: Mapping[str, Any], *, blocks: tuple[str, ...] | None = None) -> None:
    """Raise ConfigError for the first problem found (schema errors first, deepest key first).

    blocks: check only these family blocks (plus the shared top-level keys), for a step that is
    given just the part of the config it depends on (so Snakemake reruns it only when that changes).
    """
    full = schema()
    if blocks is not None:
        shared = [k for k, v in full["properties"].items() if v.get("type") != "object"]
        full = dict(full, required=[k for k in full["required"] if k in shared or k in blocks])
    validator = jsonschema.Draft202012Validator(full)
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_describe(best))
    for name, check in (("gaussian", _check_gaussian), ("discrete", _check_discrete), ("gmm", _check_gmm),
                        ("vae", _check_vae), ("lm", _check_lm)):
        if name in config:
            check(config[name])


# A pool of stored points (accumulate_subsample) costs 4 bytes x replicates x M x generations.
MAX_POOL_BYTES = 4 * 2**30


def _regime(value, key: str):
    from modelcollapse.regimes import Regime

    if isinstance(value, dict) and value.get("name") == "mix" and "real_fraction" not in value:
        raise ConfigError(f"config key '{key}': regime 'mix' needs real_fraction (share of real data, in [0, 1])")
    try:
        return Regime.from_config(value)
    except ValueError as err:
        raise ConfigError(f"config key '{key}': {err}") from None


def _supported(regime, key: str, **family) -> None:
    """regimes.check_supported with the config key in the message."""
    from modelcollapse.regimes import check_supported

    try:
        check_supported(regime, **family)
    except ValueError as err:
        raise ConfigError(f"config key '{key}': {err}") from None


def _check_pool(regime, *, key: str, replicates: int, sample_size: int, generations: int) -> None:
    need = 4 * replicates * sample_size * generations
    if regime.name == "accumulate_subsample" and need > MAX_POOL_BYTES:
        raise ConfigError(f"config key '{key}': accumulate_subsample stores every point, "
                          f"{need / 2**30:.1f} GiB for replicates x M x generations; lower one of them "
                          f"(limit {MAX_POOL_BYTES / 2**30:.0f} GiB)")


def _check_within_generations(block, family: str) -> None:
    too_late = [n for n in block["table_generations"] if n > block["generations"]]
    if too_late:
        raise ConfigError(f"config key '{family}.table_generations': {too_late} exceed "
                          f"{family}.generations = {block['generations']}; each must be at most that")


def _check_gaussian(g) -> None:
    from modelcollapse import schedules

    _check_within_generations(g, "gaussian")
    regime = _regime(g["regime"], "gaussian.regime")
    for m in g["sample_sizes"]:
        _check_pool(regime, key="gaussian.regime", replicates=g["replicates"], sample_size=m,
                    generations=g["generations"])
    block = g["regimes"]
    labels = []
    for i, value in enumerate(block["compare"]):
        key = f"gaussian.regimes.compare[{i}]"
        r = _regime(value, key)
        _check_pool(r, key=key, replicates=block["replicates"], sample_size=block["sample_size"],
                    generations=block["generations"])
        if r.label in labels:
            raise ConfigError(f"config key '{key}': regime {r.label!r} is listed twice")
        labels.append(r.label)
    sched = g["schedules"]
    for kind in sched["kinds"]:
        try:
            schedules.sample_sizes(kind, base=sched["base_sample_size"], generations=sched["generations"],
                                   power=sched["power"])
        except ValueError as err:
            raise ConfigError(f"config key 'gaussian.schedules': {err}") from None
    mv = g["multivariate"]
    if mv["sample_size"] <= max(mv["dims"]):
        raise ConfigError(f"config key 'gaussian.multivariate.sample_size': {mv['sample_size']} must exceed the "
                          f"largest of gaussian.multivariate.dims ({max(mv['dims'])}) for a full-rank covariance")
    bound = -1 / (max(mv["dims"]) - 1)
    if mv["correlation"] <= bound:
        raise ConfigError(f"config key 'gaussian.multivariate.correlation': {mv['correlation']} must exceed "
                          f"-1/(d-1) = {bound:.3g} for Sigma_0 to be positive definite at d = {max(mv['dims'])}")


def _check_discrete(d) -> None:
    import numpy as np

    from modelcollapse.regimes import POOLING

    _check_within_generations(d, "discrete")
    regime = _regime(d["regime"], "discrete.regime")
    pool = max(d["sample_sizes"]) * (d["generations"] + 1)
    limit = 2**31 if regime.name in POOLING else None  # int32 pool indices
    if limit and pool >= limit:
        raise ConfigError(f"config key 'discrete.regime': {regime.name} pools M x (generations + 1) = {pool} "
                          f"points, which must stay below {limit}; lower discrete.sample_sizes or generations")
    for key, k in (("discrete.num_symbols", d["num_symbols"]),
                   ("discrete.absorption.num_symbols", d["absorption"]["num_symbols"])):
        weights = np.arange(1, k + 1, dtype=np.float64) ** -float(d["exponent"])
        if weights[-1] / weights.sum() < 2.0**-30:
            raise ConfigError(f"config key '{key}': with exponent {d['exponent']} the rarest of {k} symbols has "
                              f"probability {weights[-1] / weights.sum():.3g} < 2^-30 (the sampler's resolution); "
                              f"use fewer symbols or a smaller discrete.exponent")


def _check_gmm(g) -> None:
    from modelcollapse.regimes import POOLING

    if g["sample_size"] < g["n_components"]:
        raise ConfigError(f"config key 'gmm.sample_size': {g['sample_size']} must be at least gmm.n_components = "
                          f"{g['n_components']} (EM needs a point per component)")
    if not any(s <= g["generations"] for s in g["snapshots"]):
        raise ConfigError(f"config key 'gmm.snapshots': none of {g['snapshots']} is at most gmm.generations = "
                          f"{g['generations']}; the figure and the table need at least one")
    regime = _regime(g["regime"], "gmm.regime")
    if regime.name in POOLING:
        # float32 2-D points, N (G + 1) per chain; accumulate also keeps a [d, pool] training view.
        copies = 2 if regime.name == "accumulate" else 1
        need = copies * 4 * 2 * g["replicates"] * g["sample_size"] * (g["generations"] + 1)
        if need > MAX_POOL_BYTES:
            raise ConfigError(f"config key 'gmm.regime': {regime.name} stores every point, {need / 2**30:.1f} GiB "
                              f"for replicates x sample_size x generations; lower one of them "
                              f"(limit {MAX_POOL_BYTES / 2**30:.0f} GiB)")


def _check_vae(v) -> None:
    _check_within_generations(v, "vae")
    if v["latent_samples"] > v["eval_samples"]:
        raise ConfigError(f"config key 'vae.latent_samples': {v['latent_samples']} must be at most "
                          f"vae.eval_samples = {v['eval_samples']} (they are encoded from those samples)")
    labels = []
    for i, value in enumerate(v["regimes"]):
        key = f"vae.regimes[{i}]"
        r = _regime(value, key)
        # the rule of vae.experiment.check_regime, stated with the config's key names
        _supported(r, key, can_pool=v["synthetic"] == "fixed",
                   pool_needs=f"vae.synthetic: fixed (got {v['synthetic']!r})",
                   real_data="images have no truth to sample (the real share is a subset of the training set):")
        if r.label in labels:
            raise ConfigError(f"config key '{key}': regime {r.label!r} is listed twice")
        labels.append(r.label)
    if not any(g <= v["generations"] for g in v["grid_generations"]):
        raise ConfigError(f"config key 'vae.grid_generations': none of {v['grid_generations']} is at most "
                          f"vae.generations = {v['generations']}")


def _check_lm(block) -> None:
    corpus, model = block["corpus"], block["model"]
    if model["context"] < 2 * corpus["block_size"] - 1:
        raise ConfigError(f"config key 'lm.model.context': {model['context']} must be at least 2 x "
                          f"lm.corpus.block_size - 1 = {2 * corpus['block_size'] - 1} (a prompt block, then a "
                          f"generated block)")
    if model["d_model"] % model["n_heads"]:
        raise ConfigError(f"config key 'lm.model.d_model': {model['d_model']} must be a multiple of "
                          f"lm.model.n_heads = {model['n_heads']}")
    if corpus["name"] == "synthetic" and corpus.get("n_successors", 32) > corpus.get("vocab_size", 2000):
        raise ConfigError("config key 'lm.corpus.n_successors': must be at most lm.corpus.vocab_size")
    labels = [entry["label"] for entry in block["regimes"]]
    for i, entry in enumerate(block["regimes"]):
        key = f"lm.regimes[{i}]"
        r = _regime(entry["regime"], key + ".regime")
        _supported(r, key + ".regime", can_pool=True,
                   real_data="the language model's real share is a subset of the original blocks:")
        if entry["label"] in labels[:i]:
            raise ConfigError(f"config key '{key}.label': {entry['label']!r} is used twice")
    for name in ("histogram_generations", "example_generations"):
        if not any(g <= block["generations"] for g in block[name]):
            raise ConfigError(f"config key 'lm.{name}': none of {block[name]} is at most lm.generations = "
                              f"{block['generations']}")
