"""The recursive language-model experiment (Shumailov et al., Nature 2024, Fig. 1b,c): one chain.

Generation 0 trains on the original training blocks. For g >= 1 the data is made by generation
g-1: every 64-token block of the ORIGINAL training set is a prompt, and the model generates the
next 64 tokens (5-way beam search in the paper); the continuations form a training set of as
many blocks as the original. The regime (modelcollapse.regimes) then decides what generation g
trains on: `replace` the continuations; `mix` the continuations with a uniform random share
`real_fraction` of the rows replaced by the original blocks at those rows (the paper's regime B:
10% original data in every generation); `accumulate` the original blocks plus every earlier
generation's continuations; `accumulate_subsample` a uniform subset of that pool of the
original's size.

Training rows: a model reads rows of two consecutive blocks (128 tokens for 64-token blocks), so
it is trained on the positions that generation uses (a 64-token prompt, then 64 more). Model
selection: the parameters with the lowest loss on the ORIGINAL validation blocks (as the paper).
`init: scratch` starts every generation from a new random initialisation; `init: base`
fine-tunes every generation from the same base model (the paper fine-tuned the same pretrained
OPT-125m), trained by `pretrain` on a disjoint split.

Models: `lm.model.arch: gpt` is `lm.model`'s GPT, shaped by the block's keys; `arch: opt` is
`lm.opt`'s OPT, shaped by the config.json of the Hugging Face folder `lm.model.pretrained`
(`hf_checkpoint.locate_opt`), whose weights are the base model of `init: base` / `previous`.

Per generation: perplexity on the original test set; the perplexity of each block of the
generation's data (its continuations; generation 0: the original blocks) under the
generation-0 model (Fig. 1b,c left); distinct-n, unigram entropy and the share of tokens from
the original's rarest 50% of mass of those continuations; for the synthetic language also the
share of their transitions that the truth forbids, the true cross-entropy of the allowed ones,
and KL(truth || model) on held-out true text. A checkpoint per generation
holds the model, the metrics and the continuations it generated, so a killed chain resumes
after its last finished generation and ends with the same files.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from modelcollapse import checkpoint, knobs
from modelcollapse.knobs import knob
from modelcollapse.lm import generate as lm_generate
from modelcollapse.lm import likelihood, metrics as text_metrics, verifier
from modelcollapse.lm import model as gpt, opt
from modelcollapse.lm.model import GPT, GPTConfig
from modelcollapse.lm.opt import OPT, OPTConfig
from modelcollapse.lm.train import OptimizerConfig, train
from modelcollapse import regimes
from modelcollapse.regimes import Regime

DECODINGS = lm_generate.MODES
INITS = ("scratch", "base", "previous")
ARCHS = ("gpt", "opt")
# Each model config class: (the model, init_cache) of its module; lm.model.model_fns serves both.
_ARCH = {GPTConfig: (GPT, gpt.init_cache), OPTConfig: (OPT, opt.init_cache)}
# lm.model's GPT shape keys and the OPT config.json fields they name (arch opt: they must agree).
OPT_SHAPE_KEYS = {"n_layers": "num_hidden_layers", "d_model": "hidden_size", "n_heads": "num_attention_heads",
                  "context": "max_position_embeddings", "d_ff": "ffn_dim"}
_INIT, _TRAIN, _GENERATE, _SUBSET = range(4)
# The verifier's table is drawn from fold_in(chain key, _VERIFIER): far above any generation's index,
# which the generations' keys fold in.
_VERIFIER = 2**31 - 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class LMConfig:

    INDEX0: ClassVar[str] = "real-data model"  # what index 0 of the results is (regimes.INDEX0)
    model: GPTConfig | OPTConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    generations: int = knob(10, help="Trainings after generation 0 (the paper: 9, 'Real, 1 ... 9').", type="integer",
                            minimum=1, maximum=1000)
    epochs: float = knob(5.0, block=False, help="Epochs per generation (the paper: 5 in regime A, 10 in B); each "
                         "entry of regimes sets its own.", type="number", exclusiveMinimum=0, maximum=10000)
    batch_size: int = knob(32, help="Training rows (two blocks each) per step.", type="integer", minimum=1,
                           maximum=65536)
    eval_every: int = knob(100, help="Steps between validation losses (the best checkpoint is kept).",
                           type="integer", minimum=1)
    steps_per_call: int = knob(10, block=False, help="Training steps per jitted call.", type="integer", minimum=1)
    # How each generation writes the next one's data (HF transformers semantics): the block's
    # `decoding` keys (mode is this `decoding`), which a regime entry may override.
    decoding: str = knob("beam", block=False, help="beam (the paper: 5 beams) | sample (temperature / top-k / top-p) "
                         "| greedy.", type="string", enum=list(DECODINGS))
    num_beams: int = knob(5, block=False, help="Beams per prompt.", type="integer", minimum=1, maximum=64)
    repetition_penalty: float = knob(1.0, block=False, help="CTRL penalty on tokens already present (1: none; the "
                                     "official code: 3.0).", type="number", exclusiveMinimum=0)
    length_penalty: float = knob(1.0, block=False, help="Beam scores are sum log p / length^length_penalty.",
                                 type="number")
    temperature: float = knob(1.0, block=False, help="sample: logits / temperature.", type="number",
                              exclusiveMinimum=0)
    top_k: int | None = knob(None, block=False, help="sample: keep the k most likely tokens (null: all).",
                             type=["integer", "null"], minimum=1)
    top_p: float | None = knob(None, block=False, help="sample: nucleus mass (null: 1).", type=["number", "null"],
                               exclusiveMinimum=0, maximum=1)
    generate_batch: int = knob(256, help="Prompts per jitted generation call (memory vs speed).", type="integer",
                               minimum=1)
    init: str = knob("scratch", help="scratch: every generation from a new initialisation; base: every generation "
                     "fine-tunes one base model trained on the pretraining split (as the paper fine-tuned OPT-125m); "
                     "previous: generation 0 fine-tunes the base, every later one the previous generation's model.",
                     type="string", enum=list(INITS))
    kl_blocks: int = knob(256, block=False, help="Held-out true blocks for KL(truth || model) (synthetic language).",
                          type="integer", minimum=1)
    examples: int = knob(3, help="Prompts whose continuations every generation's model writes for the paper.",
                         type="integer", minimum=1, maximum=100)

    def __post_init__(self):
        knobs.check(self)


def check_context(context: int, block: int) -> None:
    """A generation writes `block` tokens after a `block`-token prompt: the model's context must hold
    2 x block - 1 positions. ValueError if not."""
    if context < 2 * block - 1:
        raise ValueError(f"context {context} must be at least 2 x block - 1 = {2 * block - 1} "
                         f"(a {block}-token prompt and {block} generated tokens)")


def model_config(model: dict, *, vocab_size: int, data_dir=None, checkpoint: OPTConfig | None = None):
    """The model config of an `lm.model` block on a corpus of `vocab_size` tokens.

    arch gpt (the default): GPTConfig of the block's keys. arch opt: the config.json of the folder
    `pretrained` (`hf_checkpoint.locate_opt(pretrained, data_dir)`; `checkpoint` given: that config
    instead, e.g. a stand-in while the folder is absent), `dropout` from the block; the block's GPT
    shape keys must agree with it and the corpus's ids must fit its embedding. ValueError names the key.
    """
    model = dict(model)
    arch, pretrained = model.pop("arch", "gpt"), model.pop("pretrained", None)
    if arch == "gpt":
        if pretrained is not None:
            raise ValueError(f"pretrained is {pretrained!r} but arch is gpt; a pretrained checkpoint needs arch: opt "
                             f"(the GPT's base model of init: base is trained by `lm pretrain`)")
        return GPTConfig(vocab_size=vocab_size, **model)
    if arch != "opt":
        raise ValueError(f"arch must be one of {list(ARCHS)}, got {arch!r}")
    if not pretrained:
        raise ValueError("pretrained must name the OPT checkpoint folder with arch: opt (e.g. opt-125m)")
    if checkpoint is None:
        from modelcollapse.lm.hf_checkpoint import locate_opt

        checkpoint = OPTConfig.from_hf_json(locate_opt(pretrained, data_dir) / "config.json")
    dropout = model.pop("dropout", None)
    for key, value in model.items():
        field = OPT_SHAPE_KEYS[key]
        if value != getattr(checkpoint, field):
            raise ValueError(f"{key} is {value}, but {pretrained}'s config.json has {field} = "
                             f"{getattr(checkpoint, field)} (arch opt takes its shape from the checkpoint; "
                             f"set {key}: {getattr(checkpoint, field)})")
    if vocab_size > checkpoint.vocab_size:
        raise ValueError(f"pretrained {pretrained!r} has {checkpoint.vocab_size} token embeddings, fewer than the "
                         f"corpus's vocabulary of {vocab_size} (arch opt needs corpus.tokenizer: opt)")
    return checkpoint if dropout is None else dataclasses.replace(checkpoint, dropout=dropout)


def config_from_block(block, *, vocab_size: int, epochs: float, decoding: dict | None = None, data_dir=None,
                      checkpoint: OPTConfig | None = None) -> LMConfig:
    """The LMConfig of the workflow's `lm` config block for one regime (its epochs and decoding
    overrides) on a corpus of `vocab_size` tokens; ValueError names the bad setting. arch opt reads
    the checkpoint's config.json from `data_dir` (or takes `checkpoint`; see `model_config`)."""
    decoding = block["decoding"] | (decoding or {})  # a regime may override the shared decoding
    return knobs.from_block(
        LMConfig, block, model=model_config(block["model"], vocab_size=vocab_size, data_dir=data_dir,
                                            checkpoint=checkpoint),
        optimizer=OptimizerConfig(**block["optimizer"]), epochs=epochs,
        **{"decoding" if key == "mode" else key: value for key, value in decoding.items()})


def rows(blocks: np.ndarray) -> np.ndarray:
    """Pairs of consecutive blocks as training rows: [n // 2, 2 * block] (an odd last block dropped)."""
    n = (len(blocks) // 2) * 2
    return np.ascontiguousarray(blocks[:n].reshape(n // 2, -1))


def build_model(cfg: LMConfig, seed: int) -> GPT | OPT:
    """A freshly initialised model of cfg.model's architecture (GPT or OPT)."""
    return _ARCH[type(cfg.model)][0](cfg.model, rngs=nnx.Rngs(seed))


def model_summary(config: GPTConfig | OPTConfig) -> dict[str, int]:
    """Layers, width, heads, context and parameters of either architecture (a chain's run keys)."""
    if isinstance(config, OPTConfig):
        return {"n_layers": config.num_hidden_layers, "d_model": config.hidden_size,
                "n_heads": config.num_attention_heads, "context": config.context, "n_params": opt.param_count(config)}
    return {"n_layers": config.n_layers, "d_model": config.d_model, "n_heads": config.n_heads,
            "context": config.context, "n_params": gpt.param_count(config)}


def _int_seed(key) -> int:
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


@functools.lru_cache(maxsize=8)
def _pure_fns(model_config: GPTConfig | OPTConfig):
    """(apply_full, decode_fn, init_cache) of one architecture, built once: they are static jit
    arguments, so every generation's model (same graph, new state) reuses one compilation."""
    model_cls, init_cache = _ARCH[type(model_config)]
    template = nnx.eval_shape(lambda: model_cls(model_config, rngs=nnx.Rngs(0)))
    apply_full, decode_fn = gpt.model_fns(template)
    log_probs = jax.jit(lambda state, x: jax.nn.log_softmax(apply_full(state, x), axis=-1))
    return log_probs, decode_fn, functools.partial(init_cache, template)


def continue_blocks(model: GPT | OPT, prompts: np.ndarray, cfg: LMConfig, key, *, new_tokens: int,
                    rejected: np.ndarray | None = None) -> np.ndarray:
    """Each prompt's next `new_tokens` tokens under `model` with the configured decoding: int32 [n, new];
    with a verifier's `rejected` table [V, V], its rejected transitions vetoed (`generate.veto_rejected`)."""
    _, decode_fn, make_cache = _pure_fns(cfg.model)
    decoder = lm_generate.Decoder(state=nnx.state(model), decode_fn=decode_fn, init_cache=make_cache)
    return np.asarray(lm_generate.generate(
        decoder, prompts, max_new_tokens=new_tokens, key=key, mode=cfg.decoding, temperature=cfg.temperature,
        top_k=cfg.top_k, top_p=cfg.top_p, num_beams=cfg.num_beams, repetition_penalty=cfg.repetition_penalty,
        length_penalty=cfg.length_penalty, batch_size=cfg.generate_batch, rejected=rejected), np.int32)


class _Placed(NamedTuple):
    """Original blocks with their positions: a subset of the original set, in corpus order."""

    positions: np.ndarray
    blocks: np.ndarray


class _Head(NamedTuple):
    """The first k continuations of a generation, chosen when the set is formed (`PromptAlignedOps`)."""

    blocks: np.ndarray
    k: int


class PromptAlignedOps(regimes.HostPointOps):
    """Token blocks aligned by prompt: continuation i continues the first half of original block i.

    Subsets keep corpus order. A union of a subset of the ORIGINAL blocks with a generation's
    continuations puts each real block in the place of its own prompt's continuation, so the set
    keeps one block per prompt (the paper's 10% of the original data: the same prompts, some
    answered by the original text); any other union concatenates."""

    def __init__(self, original: np.ndarray):
        self.original = original

    def subset(self, key, data, k):
        positions = np.sort(np.asarray(regimes.uniform_subset(key, len(data), k)))
        return _Placed(positions, data[positions]) if data is self.original else data[positions]

    def union(self, a, b):
        if isinstance(a, _Placed) and isinstance(b, _Head) and len(a.positions) + b.k == len(b.blocks):
            out = b.blocks.copy()
            out[a.positions] = a.blocks
            return out
        return np.concatenate([_blocks(a), _blocks(b)])

    def head(self, data, k):
        return _Head(data, k)


def _blocks(data) -> np.ndarray:
    if isinstance(data, _Placed):
        return data.blocks
    return data.blocks[: data.k] if isinstance(data, _Head) else data


def offers(truth_known: bool) -> frozenset:
    """What the language model offers regimes: a verifier of transitions only where the truth is known."""
    return PromptAlignedOps.offers | ({"verified_transitions"} if truth_known else set())


def check_regime(regime, *, truth_known: bool) -> None:
    """Reject a regime the language model cannot run on this corpus, before any work."""
    regimes.check(regime, offers(truth_known), family="the language model" + ("" if truth_known else " on a real corpus"),
                  hint={"truth": ": its real share is a subset of the original blocks (real_source: only 'original' "
                                 "is available)",
                        "verified_transitions": ": the verifier judges transitions against the synthetic language's "
                                                "truth (lm.corpus.name: synthetic)"})


def verifier_table(regime, truth, *, seed: int, chain: int) -> np.ndarray | None:
    """The rejected [V, V] table of chain `chain`'s verifier under a `verify_transitions` regime
    (`lm.verifier.rejection_table` on the truth's allowed transitions); None for other regimes."""
    if "verified_transitions" not in regimes.needs(regime):
        return None
    params = dict(regimes.spec(regime)[1])
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), chain), _VERIFIER)
    return verifier.rejection_table(truth.transition_matrix() > 0, recall=params["recall"],
                                    false_rejection=params["false_rejection"], seed=_int_seed(key))


def training_blocks(g: int, regime: Regime, original: np.ndarray, continuations: list[np.ndarray], key) -> np.ndarray:
    """Generation g's training blocks from the original blocks and the continuations of
    generations 1..g (continuations[i] made by model i for generation i + 1)."""
    if g == 0:
        return original
    k = jax.random.fold_in(key, _SUBSET)
    pool = np.concatenate([original] + continuations[:g]) if regimes.uses_pool(regime) else None
    # Under a verifier, the continuations were written under its veto (run_chain): they are the verified draws.
    verified = continuations[g - 1] if "verified_transitions" in regimes.needs(regime) else None
    inputs = regimes.RegimeInputs(PromptAlignedOps(original), k, k, original, pool,
                                  continuations[g - 1], len(original), g, None, verified)
    return _blocks(regimes.build(regime, inputs))


@dataclasses.dataclass(frozen=True)
class Reference:
    """What every generation is scored against (all from the ORIGINAL corpus)."""
    validation_rows: np.ndarray
    test_rows: np.ndarray
    test_blocks: np.ndarray
    rare: np.ndarray  # bool [V]: the original training data's rarest 50% of mass
    truth: object | None  # lm.synthetic.SyntheticLanguage, or None for real corpora


def histogram_blocks(trained_on: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """The blocks of Fig. 1's histograms: what the generation trains on, as the official data sets
    held it (regime B's includes its preserved original blocks), when that is one block per prompt;
    under `accumulate` (a growing pool) the newest continuations."""
    return trained_on if len(trained_on) == len(latest) else latest


def test_perplexity(model, ref: Reference, cfg: LMConfig) -> float:
    """Perplexity on the original test rows: exp of the mean next-token loss over every position."""
    test_ll = likelihood.sequence_log_likelihood(model, ref.test_rows, batch_size=cfg.batch_size)
    return float(np.exp(-test_ll.sum() / (ref.test_rows.shape[0] * (ref.test_rows.shape[1] - 1))))


def score(model: GPT | OPT, model0: GPT | OPT, data: np.ndarray, prompts: np.ndarray, ref: Reference, cfg: LMConfig,
          *, histogram: np.ndarray | None = None) -> dict:
    """Metrics of one generation (see the module docstring). `data`: the blocks whose text statistics
    are reported (continuations, or the original blocks at generation 0); `prompts`: their prompts
    (None at generation 0); `histogram`: the blocks whose perplexity under model0 is recorded
    (default `data`; see `histogram_blocks`)."""
    vocab = cfg.model.vocab_size
    histogram = data if histogram is None else histogram
    out = {
        "test_ppl": np.float64(test_perplexity(model, ref, cfg)),
        "data_ppl": likelihood.sequence_perplexity(model0, histogram, batch_size=cfg.batch_size).astype(np.float64),
        "unigram_entropy": np.float64(text_metrics.unigram_entropy(data, vocab)),
        "rare_share": np.float64(text_metrics.rare_share(data, ref.rare)),
    }
    for n in (1, 2, 3, 4):
        out[f"distinct_{n}"] = np.float64(text_metrics.distinct_n(data, n))
    if ref.truth is not None:
        text = data if prompts is None else np.concatenate([prompts[:, -1:], data], axis=1)
        logp = ref.truth.token_log_probs(text, start=None)[:, 1:]
        forbidden = np.isinf(logp)
        # A transition the truth forbids has log p = -inf; report how often a generation writes one,
        # and the true cross-entropy of the allowed ones (else one slip would make it infinite).
        out["forbidden_share"] = np.float64(forbidden.mean())
        out["true_xent"] = np.float64(-logp[~forbidden].mean()) if (~forbidden).any() else np.float64(np.inf)
        out["kl_truth_model"] = np.float64(_kl(model, ref, cfg))
    return out


def _kl(model: GPT | OPT, ref: Reference, cfg: LMConfig) -> float:
    """KL(truth || model) per token over positions 1..T-1 of held-out true blocks."""
    logits_fn = _pure_fns(cfg.model)[0]
    blocks = ref.test_blocks[: cfg.kl_blocks]
    state = nnx.state(model)
    total, count = 0.0, 0
    for lo in range(0, len(blocks), 32):
        x = blocks[lo:lo + 32, :-1]
        logp = np.asarray(logits_fn(state, jnp.asarray(x)))
        total += ref.truth.kl_to_model(x.ravel(), logp.reshape(-1, logp.shape[-1])) * x.size
        count += x.size
    return total / count


_path = checkpoint.generation_path


def run_chain(cfg: LMConfig, *, seed: int, chain: int, regime: Regime, corpus: dict, ref: Reference,
              checkpoint_dir, base_state=None, identity: dict | None = None,
              log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Run (or resume) one chain; returns per-generation metrics stacked along axis 0 ([G + 1, ...])
    and the example continuations [G + 1, examples, block]. Checkpoints go to
    `checkpoint_dir/<key>/generation_NNN.npz`, keyed by the settings, `identity` and the SHA-256 of
    the corpus, the reference arrays and the base model (see `checkpoint.resume`)."""
    if cfg.init != "scratch" and base_state is None:
        raise ValueError(f"init {cfg.init!r} needs the base model's state (see `pretrain`)")
    check_regime(regime, truth_known=ref.truth is not None)
    rejected = verifier_table(regime, ref.truth, seed=seed, chain=chain)
    original = corpus["train"]
    block = original.shape[1]
    check_context(cfg.model.context, block)
    chain_key = jax.random.fold_in(jax.random.key(seed), chain)
    keys = [jax.random.fold_in(chain_key, g) for g in range(cfg.generations + 1)]
    # Keyed by everything the chain reads, besides its settings: a changed corpus or base model
    # never resumes from checkpoints made with the old one (checkpoint.resume).
    inputs = {"corpus": dict(corpus), "base_state": base_state,
              "reference": {f.name: getattr(ref, f.name) for f in dataclasses.fields(ref) if f.name != "truth"}}
    truth = dataclasses.asdict(ref.truth) if dataclasses.is_dataclass(ref.truth) else repr(ref.truth)
    identity = dict(identity or {}) | {"seed": seed, "chain": chain, "regime": dataclasses.asdict(regime),
                                       "config": dataclasses.asdict(cfg), "truth": truth,
                                       "inputs_sha256": checkpoint.fingerprint(inputs)}
    # from here on checkpoint_dir is this run's keyed folder, checkpoint_dir/<key>/
    start, checkpoint_dir = checkpoint.resume(checkpoint_dir, identity, cfg.generations, log)
    per_generation, continuations, examples = [], [], []
    model0 = None
    for g in range(start):
        flat = checkpoint.load_flat(_path(checkpoint_dir, g), "outputs", "metrics")
        trees = flat["outputs"]
        per_generation.append(flat["metrics"])
        examples.append(trees["examples"])
        if "continuations" in trees:
            continuations.append(trees["continuations"])
        if g == 0:
            model0 = load_model(cfg, _path(checkpoint_dir, 0))
    previous = load_model(cfg, _path(checkpoint_dir, start - 1)) if start else None

    for g in range(start, cfg.generations + 1):
        if g >= 1 and len(continuations) < g:
            continuations.append(continue_blocks(previous, original, cfg, jax.random.fold_in(keys[g], _GENERATE),
                                                 new_tokens=block, rejected=rejected))
        data = training_blocks(g, regime, original, continuations, keys[g])
        model = build_model(cfg, _int_seed(jax.random.fold_in(keys[g], _INIT)))
        if cfg.init == "previous" and g >= 1:
            nnx.update(model, nnx.state(previous))
        elif base_state is not None:
            nnx.update(model, base_state)
        result = train(model, train_blocks=rows(data), validation_blocks=ref.validation_rows,
                       key=jax.random.fold_in(keys[g], _TRAIN), batch_size=min(cfg.batch_size, len(data) // 2),
                       epochs=cfg.epochs, optimizer=cfg.optimizer, eval_every=cfg.eval_every,
                       steps_per_call=cfg.steps_per_call, progress=None)
        nnx.update(model, result.best_state)
        if g == 0:
            model0 = model
        scored = original if g == 0 else continuations[g - 1]
        metrics = score(model, model0, scored, None if g == 0 else original, ref, cfg,
                        histogram=histogram_blocks(data, scored))
        metrics |= {"val_loss": np.float64(result.best_val_loss), "best_step": np.int64(result.best_step),
                    "steps": np.int64(result.history[-1].step)}
        example = continue_blocks(model, original[: cfg.examples], cfg, jax.random.fold_in(keys[g], _GENERATE + 10),
                                  new_tokens=block, rejected=rejected)
        outputs = {"examples": example}
        if g >= 1:
            outputs["continuations"] = continuations[g - 1]
        checkpoint.save(_path(checkpoint_dir, g), {"model": nnx.state(model), "metrics": metrics, "outputs": outputs},
                        {"generation": g, "identity": identity})
        per_generation.append(metrics)
        examples.append(example)
        log(f"generation {g}: test ppl {metrics['test_ppl']:.2f}, val loss {metrics['val_loss']:.3f} "
            f"(best step {int(metrics['best_step'])}), "
            f"data ppl under gen 0 median {np.median(metrics['data_ppl']):.2f}, "
            f"distinct-2 {metrics['distinct_2']:.3f}, rare share {metrics['rare_share']:.3f}")
        previous = model

    out = {name: np.stack([m[name] for m in per_generation]) for name in per_generation[0]}
    return out | {"generation": np.arange(cfg.generations + 1), "examples": np.stack(examples)}


def load_model(cfg: LMConfig, path) -> GPT | OPT:
    """The model saved under "model" in a checkpoint (a generation's, or `pretrain`'s base model)."""
    model = nnx.eval_shape(lambda: build_model(cfg, 0))
    trees, _ = checkpoint.load(path, {"model": nnx.state(model)})
    nnx.update(model, trees["model"])
    return model
