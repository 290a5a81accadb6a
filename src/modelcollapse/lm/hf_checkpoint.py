"""Load a local Hugging Face OPT model folder (e.g. facebook/opt-125m) into `lm.opt.OPT`.

A folder holds `config.json` and the weights in one of:
- `model.safetensors` (or shards listed in `model.safetensors.index.json`), read with
  `safetensors.numpy`: torch names and layouts (Linear weight [out, in], transposed here to flax's
  kernel [in, out]);
- `flax_model.msgpack` (transformers' Flax OPT), read with `flax.serialization.msgpack_restore`:
  its nested names (`kernel` [in, out], `embedding`, LayerNorm `scale`) are first renamed to the
  torch ones, so both formats go through the same checks;
- `pytorch_model.bin` only: refused (torch pickles need torch; see `_TORCH_ONLY`).
Names may carry `model.` (OPTForCausalLM) or not (OPTModel). Every tensor the config implies must
be present with its exact shape and nothing else may be: a checkpoint of another size or
architecture fails loudly, naming the file, the tensor and the expected shape. `lm_head.weight`,
when saved, must equal the token embedding (the model's head is tied). Weights are cast to
float32 (the hub's OPT-125m is stored in float16).

Where the folder lives follows the data convention of `datasets.fetch`: `locate_opt("opt-125m")`
looks in <data_dir>/opt-125m/ (--data-dir), $MODELCOLLAPSE_DATA_DIR/opt-125m/, then the cache
<cache_dir>/data/opt-125m/. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from modelcollapse import io
from modelcollapse.datasets import fetch
from modelcollapse.lm.opt import OPT, OPTConfig

HUB = "https://huggingface.co/facebook"
_TORCH_ONLY = ("{folder} has only pytorch_model.bin (a torch pickle), which is not supported here (no torch "
               "dependency). Put model.safetensors (facebook/opt-* ship one: {hub}/<name>/tree/main) or "
               "flax_model.msgpack in the folder, or convert on a machine with torch: "
               "`python -c \"from transformers import OPTForCausalLM as M; "
               "M.from_pretrained('{folder}').save_pretrained('{folder}', safe_serialization=True)\"`.")


def expected_tensors(config: OPTConfig) -> dict[str, tuple[tuple, tuple[int, ...], bool]]:
    """{HF name (with `model.`): (path in the nnx state, torch shape, transpose?)} for `config`."""
    d, f, e, V = config.hidden_size, config.ffn_dim, config.word_embed_proj_dim, config.vocab_size
    out: dict[str, tuple[tuple, tuple[int, ...], bool]] = {}

    def linear(name, path, n_in, n_out, bias=True):
        out[f"{name}.weight"] = (path + ("kernel",), (n_out, n_in), True)  # torch Linear: [out, in]
        if bias:
            out[f"{name}.bias"] = (path + ("bias",), (n_out,), False)

    def norm(name, path):
        if config.layer_norm_elementwise_affine:
            out[f"{name}.weight"] = (path + ("scale",), (d,), False)
            out[f"{name}.bias"] = (path + ("bias",), (d,), False)

    p = "model.decoder"
    out[f"{p}.embed_tokens.weight"] = (("embed_tokens", "embedding"), (V, e), False)
    out[f"{p}.embed_positions.weight"] = (("embed_positions",), (config.max_position_embeddings + 2, d), False)
    if e != d:
        linear(f"{p}.project_in", ("project_in",), e, d, bias=False)
        linear(f"{p}.project_out", ("project_out",), d, e, bias=False)
    for i in range(config.num_hidden_layers):
        layer, path = f"{p}.layers.{i}", ("layers", i)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(f"{layer}.self_attn.{proj}", path + ("self_attn", proj), d, d)
        norm(f"{layer}.self_attn_layer_norm", path + ("self_attn_layer_norm",))
        linear(f"{layer}.fc1", path + ("fc1",), d, f)
        linear(f"{layer}.fc2", path + ("fc2",), f, d)
        norm(f"{layer}.final_layer_norm", path + ("final_layer_norm",))
    if config.final_norm:
        norm(f"{p}.final_layer_norm", ("final_layer_norm",))
    return out


def _canonical(name: str) -> str:
    # OPTModel checkpoints lack OPTForCausalLM's `model.` prefix.
    return "model." + name if name.startswith("decoder.") else name


def _read_safetensors(paths: list[Path]) -> dict[str, tuple[str, np.ndarray]]:
    from safetensors.numpy import load_file

    tensors = {}
    for path in paths:
        for name, array in load_file(str(path)).items():
            tensors[_canonical(name)] = (name, array)
    return tensors


def _read_msgpack(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Flax names -> torch names and layouts, so that one set of checks serves both formats."""
    from flax.serialization import msgpack_restore

    tree = msgpack_restore(path.read_bytes())
    if set(tree) == {"params"}:
        tree = tree["params"]
    tensors = {}
    for keys, array in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(k.key) for k in keys]
        name, array = ".".join(parts), np.asarray(array)
        leaf = {"kernel": "weight", "embedding": "weight", "scale": "weight"}.get(parts[-1], parts[-1])
        if parts[-1] == "kernel" and array.ndim == 2:
            array = array.T
        tensors[_canonical(".".join(parts[:-1] + [leaf]))] = (name, array)
    return tensors


def read_weights(folder: str | os.PathLike) -> tuple[Path, dict[str, tuple[str, np.ndarray]]]:
    """(the weights file, {canonical torch name: (name in the file, array)}) of a model folder."""
    folder = Path(folder)
    single, index, msgpack = folder / "model.safetensors", folder / "model.safetensors.index.json", \
        folder / "flax_model.msgpack"
    if single.is_file():
        io.note_input(single)
        return single, _read_safetensors([single])
    if index.is_file():
        shards = sorted({folder / s for s in json.loads(index.read_text())["weight_map"].values()})
        for shard in shards:
            io.note_input(shard)
        return index, _read_safetensors(shards)
    if msgpack.is_file():
        io.note_input(msgpack)
        return msgpack, _read_msgpack(msgpack)
    if (folder / "pytorch_model.bin").is_file():
        raise ValueError(_TORCH_ONLY.format(folder=folder, hub=HUB))
    raise FileNotFoundError(f"{folder}: no weights: expected model.safetensors (or model.safetensors.index.json "
                            f"with its shards) or flax_model.msgpack")


def state_from_tensors(config: OPTConfig, tensors: dict[str, tuple[str, np.ndarray]], *, source: str,
                       dtype=jnp.float32) -> dict:
    """The nested pure dict of `nnx.state(OPT(config))` from canonical HF tensors, every shape checked."""
    expected = expected_tensors(config)
    missing = [f"{n} {shape}" for n, (_, shape, _) in expected.items() if n not in tensors]
    if missing:
        raise ValueError(f"{source}: {len(missing)} tensor(s) missing for {_describe(config)}: "
                         + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
    unexpected = [tensors[n][0] for n in tensors if n not in expected and n != "lm_head.weight"]
    if unexpected:
        raise ValueError(f"{source}: unexpected tensor(s) for {_describe(config)}: {', '.join(sorted(unexpected)[:8])}")
    pure: dict = {}
    for name, (path, shape, transpose) in expected.items():
        file_name, array = tensors[name]
        if tuple(array.shape) != shape:
            raise ValueError(f"{source}: tensor {file_name!r} has shape {tuple(array.shape)}, expected {shape}"
                             f"{' [out, in]' if transpose else ''} for {_describe(config)}")
        node = pure
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = jnp.asarray(array.T if transpose else array, dtype)
    if "lm_head.weight" in tensors:
        file_name, head = tensors["lm_head.weight"]
        if head.shape != expected["model.decoder.embed_tokens.weight"][1] or \
                not np.array_equal(head, tensors["model.decoder.embed_tokens.weight"][1]):
            raise ValueError(f"{source}: {file_name!r} differs from the token embedding; this OPT ties its "
                             f"output head to the embedding (tie_word_embeddings), untied heads are not supported")
    return pure


def _describe(config: OPTConfig) -> str:
    return (f"OPT(layers={config.num_hidden_layers}, hidden={config.hidden_size}, heads={config.num_attention_heads},"
            f" ffn={config.ffn_dim}, vocab={config.vocab_size}, positions={config.max_position_embeddings},"
            f" embed_proj={config.word_embed_proj_dim})")


def load_opt(folder: str | os.PathLike, *, dtype=jnp.float32) -> OPT:
    """The OPT of a Hugging Face model folder (config.json + weights), parameters in `dtype`."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json (expected a Hugging Face model folder, e.g. the files "
                                f"of {HUB}/opt-125m)")
    config = OPTConfig.from_hf_json(folder / "config.json")
    source, tensors = read_weights(folder)
    pure = state_from_tensors(config, tensors, source=str(source), dtype=dtype)
    model = nnx.eval_shape(lambda: OPT(config, rngs=nnx.Rngs(0)))
    state = nnx.state(model)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model


def locate_opt(name: str = "opt-125m", data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of OPT model `name` (one holding config.json), searched as the module docstring says.

    Raises fetch.DataNotFoundError (a FileNotFoundError) naming the places searched and where to
    put the folder.
    """
    env = os.environ.get(fetch.ENV_VAR, "")
    roots = [Path(r).expanduser() for r in (data_dir, env) if r not in (None, "")]
    candidates = list(dict.fromkeys([r / name for r in roots] + [fetch.data_cache_dir() / name]))
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    target = candidates[0]
    raise fetch.DataNotFoundError(
        f"OPT model {name!r} not found. Searched (a folder with config.json):\n"
        + "".join(f"  {c}\n" for c in candidates)
        + ("  (neither --data-dir nor $MODELCOLLAPSE_DATA_DIR is set)\n" if not roots else "")
        + f"To fix: put the Hugging Face model folder at {target}/ with config.json and model.safetensors "
          f"(or flax_model.msgpack), and vocab.json + merges.txt for the tokenizer; the files come from "
          f"{HUB}/{name} (nothing is downloaded here).")
