"""The recursive VAE experiment (Shumailov et al., Nature 2024, the MNIST VAE): one chain of generations.

Generation 0 trains a VAE on the real training images. Generation g >= 1 trains a FRESH VAE
(new initialisation) on data made by generation g-1, in one of two synthetic modes:
- `fresh` (the paper's code): every training batch is replaced by decoder means of z ~ N(0, I)
  drawn anew from generation g-1, so the model never sees the same synthetic image twice;
- `fixed`: generation g-1 draws one synthetic set of `synthetic_size` images, which generation
  g trains on for all its epochs: the finite-sample case the theory is about.
Data regimes (modelcollapse.regimes): `replace` and `mix` work in both modes (mix: a share
`real_fraction` of every batch (fresh) or of the training set (fixed) is real); `accumulate` and
`accumulate_subsample` pool the synthetic SETS of all earlier generations, so they need `fixed`.
An epoch is ceil(training-set size / batch) steps; in `fresh` mode the size is the real
training set's, as the paper's loader still iterated over MNIST while swapping every batch.

After each generation the chain scores `eval_samples` generated images (see `evaluate`) and
writes a checkpoint (model, optimizer state, metrics) atomically; a chain started again
resumes after its last finished generation. Every random draw comes from
fold_in(fold_in(key(seed), chain), generation) and a fixed tag, and the checkpoint stores the
exact float32 state, so a resumed chain ends with the same bytes as an uninterrupted one.
Synthetic sets of earlier generations (accumulate) are redrawn from their checkpoints on resume.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar
import functools
import math
from functools import partial
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from modelcollapse import checkpoint, knobs
from modelcollapse.knobs import knob
from modelcollapse.runtime import jit_with_cpu_options
from modelcollapse import regimes
from modelcollapse.regimes import Regime, split_sizes
from modelcollapse.vae import classifier, metrics as image_metrics, models
from modelcollapse.vae.train import (METRICS, decoder_means, elbo_loss, encode_means, epoch_permutations,
                                     epoch_rows, make_optimizer, sample_images, shuffled_batches, train as train_vae)

ARCHITECTURES = ("mlp", "conv")
SYNTHETIC_MODES = ("fresh", "fixed")
# Key tags: one per use, so adding a use never shifts another's random numbers.
_INIT, _TRAIN, _SYNTH, _SUBSET, _EVAL = range(5)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VAEConfig:

    INDEX0: ClassVar[str] = "real-data model"  # what index 0 of the results is (regimes.INDEX0)
    architecture: str = knob("mlp", help="mlp (suits 8x8 digits) or conv (the paper's 28x28 convolutional VAE).",
                             type="string", enum=list(ARCHITECTURES))
    latent: int = knob(8, help="Latent dimensions (the paper's 20).", type="integer", minimum=1, maximum=1024)
    hidden: tuple[int, ...] = knob((256, 128), help="mlp: encoder hidden widths; the decoder mirrors them.",
                                   type="array", minItems=1, items={"type": "integer", "minimum": 1, "maximum": 65536})
    channels: tuple[int, ...] = knob((64, 128), help="conv: the two encoder convolutions' channels (the paper's "
                                     "[64, 128]).", type="array", minItems=2, maxItems=2,
                                     items={"type": "integer", "minimum": 1, "maximum": 4096})
    generations: int = knob(20, help="Trainings after generation 0 (on real data).", type="integer", minimum=1,
                            maximum=1000)
    epochs: int = knob(30, help="Epochs per generation; an epoch is ceil(training-set size / batch_size) steps "
                       "(the paper: 30).", type="integer", minimum=1, maximum=10000)
    batch_size: int = knob(256, help="Training batch (the paper's 256).", type="integer", minimum=1, maximum=65536)
    learning_rate: float = knob(1e-3, help="Adam learning rate (the paper's 1.0e-3).", type="number",
                                exclusiveMinimum=0, maximum=1)
    weight_decay: float = knob(1e-5, help="Coupled L2 weight decay as torch.optim.Adam (the paper's 1.0e-5).",
                               type="number", minimum=0, maximum=1)
    synthetic: str = knob("fresh", help="fresh: every batch newly decoded from the previous generation (the "
                          "paper); fixed: one synthetic set per generation.", type="string",
                          enum=list(SYNTHETIC_MODES))
    synthetic_size: int = knob(0, help="fixed: images drawn per generation; 0 = as many as the real training set.",
                               type="integer", minimum=0, maximum=10000000)
    eval_samples: int = knob(1000, help="Generated images scored per generation (classifier metrics).",
                             type="integer", minimum=10, maximum=100000)
    latent_samples: int = knob(100, help="Generated images encoded by the generation-0 encoder for the latent "
                               "density (the paper's 100); at most eval_samples.", type="integer", minimum=2,
                               maximum=100000)
    grid_images: int = knob(16, block=False, help="Generated images stored per generation for the sample grids.",
                            type="integer", minimum=1, maximum=100000)

    def __post_init__(self):
        knobs.check(self)
        if self.latent_samples > self.eval_samples or self.grid_images > self.eval_samples:
            raise ValueError(f"latent_samples ({self.latent_samples}) and grid_images ({self.grid_images}) must be "
                             f"at most eval_samples = {self.eval_samples} (they are taken from those samples)")


def config_from_block(block) -> VAEConfig:
    """The VAEConfig of the workflow's `vae` config block (its knobs; the other keys, such as dataset
    and regimes, say which data and regimes the chains run); ValueError names the bad setting."""
    return knobs.from_block(VAEConfig, block)


# Synthetic sets held as images (`fixed`) offer what host points do; images streamed per batch
# (`fresh`) keep no pool, only the per-batch real share, drawn from the training images.
_OFFERS = {"fixed": regimes.HostPointOps.offers, "fresh": frozenset({"original_subset"})}


def check_regime(regime: Regime, synthetic: str) -> None:
    """Reject regime / synthetic-mode pairs that have no meaning for images, before any work."""
    regimes.check(regime, _OFFERS[synthetic], family=f"the VAE with synthetic: {synthetic}", hint={
        "truth": ": images have no truth to sample, the real share is a subset of the training images "
                 "(real_source: only 'original' is available)",
        "pool": ": pooling needs synthetic: fixed"})


def build_model(cfg: VAEConfig, image_shape, seed: int) -> nnx.Module:
    return models.build_vae(cfg.architecture, image_shape=tuple(image_shape), latent=cfg.latent,
                            hidden=cfg.hidden, channels=cfg.channels, seed=seed)


def _int_seed(key) -> int:
    """An int seed for NNX initialisation from a key (nnx.Rngs takes ints or keys; ints keep the
    model's own RNG streams independent of our key layout)."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


# ----------------------------------------------------------------------------------------------
# Batches: pure functions of (key, step, *batch_args) for `vae.train.train`. The data are jit
# arguments (never closure constants) and each function object is built once per (architecture,
# mode, sizes), so one compilation serves every generation with the same shapes. Real rows come in
# shuffled epochs, permutations drawn once per generation from its shuffle key (`epoch_permutations`).

@functools.lru_cache(maxsize=16)
def _batch_fn(graphdef, mode: str, n_real: int, batch_size: int):
    """fixed: shuffled epochs of `images`; fresh: `n_real` real rows (their own shuffled epochs)
    then decoder means of z ~ N(0, I) from the previous generation's frozen state."""
    if mode == "fixed":
        return shuffled_batches(batch_size)

    def fresh(key, step, images, perms, previous):
        synthetic = decoder_means(graphdef, previous, key, batch_size - n_real)
        if n_real == 0:
            return synthetic
        real = images[epoch_rows(perms, step, n_real)]
        return jnp.concatenate([real, synthetic], axis=0)
    return fresh


def train_generation(model: nnx.Module, cfg: VAEConfig, *, data: dict, mode: str, n_real: int,
                     steps: int, key: jax.Array) -> tuple[nnx.Module, optax.OptState, dict[str, np.ndarray]]:
    """Train `model` for `steps` Adam steps on batches drawn from `data`; returns (model,
    optimizer state, per-step 'loss', 'recon' and 'kl' [steps])."""
    graphdef = nnx.graphdef(model)
    k_steps, k_shuffle = jax.random.split(key)
    n_images, per_step = len(data["images"]), cfg.batch_size if mode == "fixed" else n_real
    # fresh replace reads no real rows: a token [1, 1] keeps one signature
    perms = (epoch_permutations(k_shuffle, n_images, per_step, steps) if per_step else jnp.zeros((1, 1), jnp.int32))
    batch_args = (jnp.asarray(data["images"]), perms) + ((data["previous"],) if mode == "fresh" else ())
    # The config holds the paper's weight decay, which torch adds to the gradient of a loss SUMMED
    # over the batch; our loss is the per-example mean, so the same relative decay is wd / batch.
    optimizer = make_optimizer(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay / cfg.batch_size)
    model, history = train_vae(model, batch_fn=_batch_fn(graphdef, mode, n_real, cfg.batch_size),
                               steps=steps, optimizer=optimizer, key=k_steps, batch_args=batch_args)
    return model, history.pop("opt_state"), history


# ----------------------------------------------------------------------------------------------
# Scoring a generation.

KDE_GRID = np.linspace(-4.0, 4.0, 161)  # latent means of a unit-prior VAE lie well inside +-4
N_CLASSES = 10
PR_K = 3  # neighbours behind precision / recall (Kynkaanniemi et al. 2019's default)


@dataclasses.dataclass(frozen=True)
class Scorer:
    """What every generation of a chain is scored against."""
    model0: nnx.Module  # the chain's generation-0 VAE; its encoder is the paper's yardstick
    classifier: nnx.Module  # trained once on real data (modelcollapse.vae.classifier)
    real_features: np.ndarray  # [n_test, F] classifier features of the real test images
    validation: np.ndarray  # [n_val, H, W, 1] real validation images (ELBO on real data)

    @functools.cached_property
    def real_radii(self) -> np.ndarray:
        """k-NN radii of the real features (k = PR_K): the same for every generation, so drawn once."""
        return image_metrics.knn_radii(self.real_features, k=PR_K)


def evaluate(model: nnx.Module, scorer: Scorer, cfg: VAEConfig, key: jax.Array) -> dict[str, np.ndarray]:
    """Metrics of one generation from `cfg.eval_samples` decoder means of z ~ N(0, I):
    latent means of the first `latent_samples` under generation 0's encoder (the paper's figure)
    and their pooled std; the classifier's class histogram, its entropy (nats; log 10 = no mode
    lost) and mean confidence; precision / recall (k = 3) and Frechet distance in classifier
    features against the real test set (as many generated images as test images, at most
    eval_samples); the negative ELBO of real validation images (nats per image) and its two terms,
    reconstruction and KL; the active latent units of this generation's encoder on the real
    validation images (Burda, Grosse & Salakhutdinov 2016: units whose posterior mean varies over
    the data with variance above ACTIVE_UNIT_VARIANCE): the diagnostics of posterior collapse."""
    k_sample, k_val = jax.random.split(key)
    real_terms = _mean_terms(model, scorer.validation, k_val, cfg.batch_size)
    samples = np.asarray(sample_images(model, k_sample, cfg.eval_samples))
    latent_means = np.asarray(encode_means(scorer.model0, samples[: cfg.latent_samples]))
    probs = np.asarray(classifier.predict_proba(scorer.classifier, samples))
    hist = image_metrics.class_histogram(probs.argmax(axis=1), N_CLASSES)
    n_pr = min(len(scorer.real_features), cfg.eval_samples)
    features = np.asarray(classifier.features(scorer.classifier, samples[:n_pr]))
    precision, recall = image_metrics.precision_recall(scorer.real_features, features, k=PR_K,
                                                       real_radii=scorer.real_radii)
    return {
        "latent_means": latent_means.astype(np.float32),
        "latent_std": np.float64(latent_means.std()),
        "density": _density(latent_means.ravel()),
        "class_hist": np.asarray(hist, np.float64),
        "class_entropy": np.float64(image_metrics.entropy(hist)),
        "confidence": np.float64(image_metrics.mean_confidence(probs)),
        "precision": np.float64(precision),
        "recall": np.float64(recall),
        "frechet": np.float64(image_metrics.frechet_distance(scorer.real_features, features)),
        "real_nelbo": np.float64(real_terms["loss"]),
        "real_recon": np.float64(real_terms["recon"]),
        "real_kl": np.float64(real_terms["kl"]),
        "active_units": np.int64(active_units(model, scorer.validation)),
        "grid_images": samples[: cfg.grid_images, ..., 0].astype(np.float32),
    }


def _density(values: np.ndarray) -> np.ndarray:
    """KDE on KDE_GRID; a fully collapsed generation (all means equal) gets a narrow fixed kernel,
    since Scott's rule needs a spread."""
    bandwidth = None if np.std(values) > 1e-6 else 0.01
    return image_metrics.kde(values, KDE_GRID, bandwidth=bandwidth).astype(np.float64)


def _mean_terms(model, images, key, batch_size) -> dict[str, float]:
    """Mean negative ELBO (one posterior sample per image) over `images` and its terms, 'loss',
    'recon' and 'kl' (nats per image), in fixed-size batches."""
    graphdef, state = nnx.split(model)
    total, n = dict.fromkeys(METRICS, 0.0), len(images)
    for i, start in enumerate(range(0, n, batch_size)):
        x = images[start:start + batch_size]
        loss, terms = _batch_terms(graphdef, state, jnp.asarray(x), jax.random.fold_in(key, i))
        for name, value in dict(loss=loss, **terms).items():
            total[name] += float(value) * len(x)
    return {name: value / n for name, value in total.items()}


@partial(jit_with_cpu_options, static_argnums=0)
def _batch_terms(graphdef, state, x, key):
    return elbo_loss(nnx.merge(graphdef, state), x, key)


ACTIVE_UNIT_VARIANCE = 0.01  # Burda et al. 2016's threshold on Var_x E[z_i | x]


def active_units(model: nnx.Module, images: np.ndarray) -> int:
    """Latent units whose posterior mean varies over `images` with variance above ACTIVE_UNIT_VARIANCE."""
    means = np.asarray(encode_means(model, images), np.float64)
    return int(np.sum(means.var(axis=0) > ACTIVE_UNIT_VARIANCE))


def reference_scores(scorer: Scorer) -> dict[str, np.ndarray]:
    """The same distances between real validation and real test images: what 'no collapse' reads."""
    n = min(len(scorer.real_features), len(scorer.validation))
    features = np.asarray(classifier.features(scorer.classifier, scorer.validation[:n]))
    precision, recall = image_metrics.precision_recall(scorer.real_features, features, k=PR_K,
                                                       real_radii=scorer.real_radii)
    return {"reference_precision": np.float64(precision), "reference_recall": np.float64(recall),
            "reference_frechet": np.float64(image_metrics.frechet_distance(scorer.real_features, features))}


# ----------------------------------------------------------------------------------------------
# The chain.

def _training_data(g, cfg, regime, real, previous, pool, key):
    """(data, mode, n_real, n_items) for generation g: what `_batch_fn` draws batches from."""
    if g == 0:
        return {"images": real}, "fixed", 0, len(real)
    if cfg.synthetic == "fresh":
        n_real, _ = split_sizes(regime, cfg.batch_size)
        return {"images": real, "previous": nnx.state(previous)}, "fresh", n_real, len(real)
    size = cfg.synthetic_size or len(real)
    k = jax.random.fold_in(key, _SUBSET)
    inputs = regimes.RegimeInputs(regimes.HostPointOps(), k, k, real,
                                  np.concatenate([real] + pool) if regimes.uses_pool(regime) else None,
                                  pool[-1], size, g, None)
    images = regimes.build(regime, inputs)
    return {"images": images}, "fixed", 0, len(images)


def _synthetic_set(model, cfg, n_real_images, key) -> np.ndarray:
    """Generation g's fixed synthetic set, drawn from generation g-1 (`model`)."""
    size = cfg.synthetic_size or n_real_images
    return np.asarray(sample_images(model, jax.random.fold_in(key, _SYNTH), size))


_checkpoint_path = checkpoint.generation_path


def run_chain(cfg: VAEConfig, *, seed: int, chain: int, regime: Regime, train_images: np.ndarray,
              scorer_parts: dict, checkpoint_dir, identity: dict | None = None,
              log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Run (or resume) one chain; returns per-generation metrics stacked along axis 0 ([G + 1, ...]).

    scorer_parts: classifier, real_features, validation (see Scorer); generation 0's model is
    added once trained. Checkpoints go to `checkpoint_dir/<key>/generation_NNN.npz` (see
    `checkpoint.resume`), keyed by the settings, `identity` (e.g. the data set's name) and the
    SHA-256 of what the chain reads: the training images, the classifier's parameters and the
    validation images. A retrained classifier or other data therefore never resumes from
    checkpoints scored with the old ones.
    """
    check_regime(regime, cfg.synthetic)
    image_shape = train_images.shape[1:]
    chain_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), chain), 0)
    keys = [jax.random.fold_in(chain_key, g) for g in range(cfg.generations + 1)]

    def template():
        return nnx.eval_shape(lambda: build_model(cfg, image_shape, 0))

    # What the chain reads, hashed into its checkpoints' key. Not real_features: it is computed from the
    # classifier (hashed) and the test set (fixed by the data set's name and checksums), and on a GPU its
    # last bits may differ from run to run, which must not stop a killed chain from resuming.
    inputs = {"train_images": train_images} | {
        name: nnx.state(part) if isinstance(part, nnx.Module) else part
        for name, part in scorer_parts.items() if name != "real_features"}
    identity = dict(identity or {}) | {"seed": seed, "chain": chain, "config": dataclasses.asdict(cfg),
                                       "regime": dataclasses.asdict(regime), "n_train": len(train_images),
                                       "inputs_sha256": checkpoint.fingerprint(inputs)}
    # from here on checkpoint_dir is this run's keyed folder, checkpoint_dir/<key>/
    start, checkpoint_dir = checkpoint.resume(checkpoint_dir, identity, cfg.generations, log)
    per_generation, models_kept = [], {}
    for g in range(start):
        model = template()
        trees, _ = checkpoint.load(_checkpoint_path(checkpoint_dir, g), {"model": nnx.state(model), "metrics": None})
        nnx.update(model, trees["model"])
        models_kept[g] = model
        per_generation.append(trees["metrics"])
    scorer = Scorer(model0=models_kept.get(0), **scorer_parts) if start else None
    pool = []
    if regimes.uses_pool(regime):  # redraw earlier sets: same keys, same bytes
        pool = [_synthetic_set(models_kept[g - 1], cfg, len(train_images), keys[g]) for g in range(1, start)]
    previous = models_kept.get(start - 1)
    models_kept = {0: models_kept[0]} if 0 in models_kept else {}

    for g in range(start, cfg.generations + 1):
        if g >= 1 and cfg.synthetic == "fixed":
            pool.append(_synthetic_set(previous, cfg, len(train_images), keys[g]))
            if not regimes.uses_pool(regime):
                pool = pool[-1:]
        data, mode, n_real, n_items = _training_data(g, cfg, regime, train_images, previous, pool, keys[g])
        steps = cfg.epochs * math.ceil(n_items / cfg.batch_size)
        model = build_model(cfg, image_shape, _int_seed(jax.random.fold_in(keys[g], _INIT)))
        model, opt_state, history = train_generation(model, cfg, data=data, mode=mode, n_real=n_real,
                                                    steps=steps, key=jax.random.fold_in(keys[g], _TRAIN))
        losses = history["loss"]
        if not np.all(np.isfinite(losses)):
            raise RuntimeError(f"chain {chain}, generation {g}: training loss became {losses[-1]} "
                               f"(first non-finite at step {int(np.argmin(np.isfinite(losses)))})")
        if g == 0:
            scorer = Scorer(model0=model, **scorer_parts)
        metrics = evaluate(model, scorer, cfg, jax.random.fold_in(keys[g], _EVAL))
        last_epoch = slice(-max(1, steps // cfg.epochs), None)  # the training loss and its terms
        metrics |= {f"final_{name}": np.float64(history[name][last_epoch].mean()) for name in METRICS}
        checkpoint.save(_checkpoint_path(checkpoint_dir, g),
                        {"model": nnx.state(model), "optimizer": opt_state, "metrics": metrics},
                        {"generation": g, "steps": steps, "identity": identity})
        per_generation.append(metrics)
        log(f"generation {g}: loss {metrics['final_loss']:.2f}, latent std {metrics['latent_std']:.3f}, "
            f"class entropy {metrics['class_entropy']:.3f}, precision {metrics['precision']:.3f}, "
            f"recall {metrics['recall']:.3f}, Frechet {metrics['frechet']:.2f}, real recon "
            f"{metrics['real_recon']:.1f} + KL {metrics['real_kl']:.2f}, active units {metrics['active_units']}")
        previous = model

    out = {name: np.stack([m[name] for m in per_generation]) for name in per_generation[0]}
    out.update(reference_scores(scorer))
    out["generation"] = np.arange(cfg.generations + 1)
    out["kde_grid"] = KDE_GRID
    return out
