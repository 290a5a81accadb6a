"""VAE models: the stride-2 convolutions and their hand-written gradients against autodiff of lax
references and a numpy loop, the paper's parameter count, the ELBO against closed forms, training
(loss decreases, determinism, chunking), the checkpoint round trip, sampling and encoding."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from modelcollapse import vae
from modelcollapse.vae import conv

EPS32 = float(np.finfo(np.float32).eps)


def _arr(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _numpy_conv_transpose(x, k):
    """PyTorch's ConvTranspose2d(k=4, s=2, p=1) written out as loops (float64): the definition."""
    b, h, w, _ = x.shape
    y = np.zeros((b, 2 * h + 2, 2 * w + 2, k.shape[3]))
    for i in range(h):
        for j in range(w):
            for a in range(4):
                for c in range(4):
                    y[:, 2 * i + a, 2 * j + c] += x[:, i, j] @ k[a, c]
    return y[:, 1:-1, 1:-1]  # drop the padding row/column on each side


def _tol(*arrays, terms):
    """float32 tolerance for sums of `terms` products: a few eps times sqrt(terms) times the magnitude."""
    scale = max(float(np.max(np.abs(a))) for a in arrays)
    return 8 * EPS32 * math.sqrt(terms) * scale


# -- the convolutions


@pytest.mark.parametrize("shape,c_out", [((2, 3, 5, 2), 3), ((3, 7, 7, 8), 4), ((2, 4, 4, 1), 5), ((2, 3, 4, 3), 16)])
def test_conv_up_forward_equals_definition(shape, c_out):
    rng = np.random.default_rng(0)
    x, k = _arr(rng, *shape), _arr(rng, 4, 4, shape[3], c_out)
    want = _numpy_conv_transpose(np.asarray(x, np.float64), np.asarray(k, np.float64))
    tol = _tol(want, terms=4 * shape[3])
    for impl in conv.UP_IMPLS:
        np.testing.assert_allclose(conv.conv_up(x, k, impl=impl), want, atol=tol, rtol=0)
    np.testing.assert_allclose(conv.conv_transpose_reference(x, k), want, atol=tol, rtol=0)


def test_conv_up_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, k = _arr(rng, 2, 5, 6, 3), _arr(rng, 4, 4, 3, 2)
    want = torch.nn.functional.conv_transpose2d(torch.tensor(np.asarray(x)).permute(0, 3, 1, 2),
                                                torch.tensor(np.asarray(k)).permute(2, 3, 0, 1), stride=2, padding=1)
    np.testing.assert_allclose(conv.conv_up(x, k), want.permute(0, 2, 3, 1).numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", conv.UP_IMPLS)
@pytest.mark.parametrize("layer", ["down", "up"])
def test_custom_vjp_equals_autodiff_of_lax_reference(layer, impl):
    # Forward and both cotangents against jax.vjp of plain lax convolutions (autodiff gradients).
    rng = np.random.default_rng(2)
    if layer == "down":
        x, k = _arr(rng, 3, 8, 6, 5), _arr(rng, 4, 4, 5, 7)
        ours = lambda x, k: conv.conv_down(x, k, impl=impl)  # noqa: E731
        ref = conv._down  # plain lax.conv_general_dilated: autodiff gradients
    else:
        x, k = _arr(rng, 3, 4, 3, 5), _arr(rng, 4, 4, 5, 7)
        ours = lambda x, k: conv.conv_up(x, k, impl=impl)  # noqa: E731
        ref = conv.conv_transpose_reference
    y, vjp = jax.vjp(ours, x, k)
    y_ref, vjp_ref = jax.vjp(ref, x, k)
    g = _arr(rng, *y.shape)
    terms = 16 * max(x.shape[3], k.shape[3]) * x.shape[0] * x.shape[1] * x.shape[2]
    np.testing.assert_allclose(y, y_ref, atol=_tol(y_ref, terms=16 * x.shape[3]), rtol=0)
    for ours_g, ref_g in zip(vjp(g), vjp_ref(g)):
        assert ours_g.shape == ref_g.shape
        np.testing.assert_allclose(ours_g, ref_g, atol=_tol(ref_g, terms=terms), rtol=0)


@pytest.mark.parametrize("c_out", [7, conv.ROW_PHASES_MIN_CHANNELS])  # 'auto' takes phases, then row_phases
def test_up_input_gradient_of_down_by_each_form(c_out):
    # conv_down's input gradient is _up of the cotangent: every form against autodiff of lax
    rng = np.random.default_rng(4)
    x, k = _arr(rng, 2, 6, 8, c_out), _arr(rng, 4, 4, c_out, 5)
    g = _arr(rng, 2, 3, 4, 5)
    ref = jax.vjp(lambda x: conv._down(x, k), x)[1](g)[0]
    for impl in conv.UP_IMPLS:
        got = jax.vjp(lambda x: conv.conv_down(x, k, impl=impl), x)[1](g)[0]
        np.testing.assert_allclose(got, ref, atol=_tol(ref, terms=16 * 5), rtol=0)


def test_add_channel_bias_gradients_equal_autodiff():
    rng = np.random.default_rng(5)
    y, b, g = _arr(rng, 3, 4, 5, 6), _arr(rng, 6), _arr(rng, 3, 4, 5, 6)
    out, vjp = jax.vjp(conv.add_channel_bias, y, b)
    np.testing.assert_array_equal(out, y + b)
    dy, db = vjp(g)
    np.testing.assert_array_equal(dy, g)
    np.testing.assert_allclose(db, jnp.sum(g, axis=(0, 1, 2)), atol=_tol(g, terms=60), rtol=0)


def test_conv_gradients_under_jit_and_grad_of_a_scalar():
    # A scalar loss through down then up: jax.grad of ours equals jax.grad of the lax references.
    rng = np.random.default_rng(3)
    x, k1, k2 = _arr(rng, 2, 8, 8, 3), _arr(rng, 4, 4, 3, 4), _arr(rng, 4, 4, 4, 2)

    def loss(f_down, f_up):
        return lambda x, k1, k2: jnp.sum(jnp.sin(f_up(jax.nn.relu(f_down(x, k1)), k2)))
    ours = jax.jit(jax.grad(loss(conv.conv_down, conv.conv_up), argnums=(0, 1, 2)))(x, k1, k2)
    ref = jax.grad(loss(conv._down, conv.conv_transpose_reference), argnums=(0, 1, 2))(x, k1, k2)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, atol=_tol(b, terms=16 * 16 * 4 * 128), rtol=0)


def test_vae_steps_compile_without_ynnpack_on_the_cpu_and_agree_with_plain_jit():
    """The VAE's compiled functions turn XLA's YNNPACK fusions off on the CPU (runtime.CPU_WITHOUT_YNNPACK,
    1.5x faster conv training); the numbers they compute are XLA's own kernels' and match a plain jit."""
    from modelcollapse.runtime import jit_with_cpu_options

    def f(x, k):
        return jnp.sum(conv.conv_down(x, k) ** 2)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((2, 8, 8, 16)), jnp.float32)  # big enough for XLA to pick YNNPACK
    k = jnp.asarray(rng.standard_normal((4, 4, 16, 32)), jnp.float32)
    tuned, plain = jit_with_cpu_options(jax.grad(f, argnums=1)), jax.jit(jax.grad(f, argnums=1))
    np.testing.assert_allclose(tuned(x, k), plain(x, k), rtol=1e-5, atol=1e-5)
    assert tuned.__name__ == "f"
    if jax.default_backend() == "cpu":
        assert "__ynn_fusion" in plain.lower(x, k).compile().as_text()  # XLA's default here: the case being opted out of
        assert "__ynn_fusion" not in tuned.lower(x, k).compile().as_text()
    assert tuned._cache_size() == 1  # attributes are the jitted function's


def test_map_in_batches_pads_to_one_shape_and_drops_the_padding():
    from modelcollapse.runtime import map_in_batches

    seen = []

    def fn(batch):
        seen.append(batch.shape)
        return batch * 2

    x = np.arange(14.0).reshape(7, 2)
    np.testing.assert_array_equal(map_in_batches(fn, x, 3), x * 2)
    assert seen == [(3, 2)] * 3  # 7 rows: two full batches and one padded with copies of row 0
    with pytest.raises(ValueError, match="N >= 1"):
        map_in_batches(fn, x[:0], 3)


def test_conv_argument_checks():
    x, k = jnp.zeros((1, 7, 8, 2)), jnp.zeros((4, 4, 2, 3))
    with pytest.raises(ValueError, match="even"):
        conv.conv_down(x, k)
    with pytest.raises(ValueError, match="kernel"):
        conv.conv_up(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 3)))
    with pytest.raises(ValueError, match="impl"):
        conv.conv_up(jnp.zeros((1, 4, 4, 2)), k, impl="fast")


# -- models


def test_paper_conv_vae_has_647081_parameters():
    # The original PyTorch model's count (module docstring of vae.models has the sum by layer).
    # eval_shape: the abstract model (shapes only) has the same parameters, without computing them
    model = nnx.eval_shape(lambda: vae.build_vae("conv", image_shape=(28, 28, 1), latent=20, channels=(64, 128)))
    assert vae.count_params(model) == 647_081
    # and our MLP default, by the formula: sum of (in + 1) * out over the seven dense layers
    mlp = vae.build_vae("mlp", image_shape=(8, 8, 1), latent=8, hidden=(256, 128))
    sizes = [(64, 256), (256, 128), (128, 8), (128, 8), (8, 128), (128, 256), (256, 64)]
    assert vae.count_params(mlp) == sum((a + 1) * b for a, b in sizes)


@pytest.mark.parametrize("arch,shape,latent", [("mlp", (8, 8, 1), 8), ("conv", (28, 28, 1), 20),
                                               ("conv", (16, 12, 1), 3)])
def test_shapes(arch, shape, latent):
    model = vae.build_vae(arch, image_shape=shape, latent=latent, hidden=(32, 16), channels=(4, 8))
    graphdef, state = nnx.split(model)

    @jax.jit  # one compilation instead of one per eager operation
    def run(state, x):
        m = nnx.merge(graphdef, state)
        mean, logvar = m.encode(x)
        return mean, logvar, m.decode(mean)
    mean, logvar, logits = run(state, jnp.full((5,) + shape, 0.5))
    assert mean.shape == logvar.shape == (5, latent)
    assert logits.shape == (5,) + shape
    assert np.all(np.isfinite(logits))
    assert model.latent == latent


def test_torch_style_init_bounds():
    # Every weight and bias lies in +-1/sqrt(fan_in) with torch's fan_in (ConvTranspose: c_out * 16).
    model = vae.build_vae("conv", image_shape=(4, 4, 1), latent=2)  # the paper's channels, small dense layers
    bounds = {"encoder": [1 * 16, 64 * 16], "decoder": [64 * 16, 1 * 16]}
    for part, fans in bounds.items():
        for layer, fan in zip(getattr(model, part), fans):
            for p in (layer.kernel[...], layer.bias[...]):
                assert float(jnp.max(jnp.abs(p))) <= 1 / math.sqrt(fan)
            # >= 1024 uniform kernel entries all below 0.9 of the bound: probability 0.9^1024 ~ 1e-47
            assert float(jnp.max(jnp.abs(layer.kernel[...]))) > 0.9 / math.sqrt(fan)


def test_build_vae_argument_checks():
    with pytest.raises(ValueError, match="architecture"):
        vae.build_vae("resnet", image_shape=(8, 8, 1), latent=2)
    with pytest.raises(ValueError, match="divisible"):
        vae.build_vae("conv", image_shape=(10, 10, 1), latent=2, channels=(4, 8))
    with pytest.raises(ValueError, match="latent"):
        vae.build_vae("mlp", image_shape=(8, 8, 1), latent=0)
    with pytest.raises(ValueError, match="hidden"):
        vae.build_vae("mlp", image_shape=(8, 8, 1), latent=2, hidden=())


# -- loss and training


class _Fixed(nnx.Module):
    """A 'VAE' with a given posterior and decoder logits, to check elbo_loss against closed forms."""

    def __init__(self, mean, logvar, logits):
        self.m, self.v, self.l = nnx.Param(mean), nnx.Param(logvar), nnx.Param(logits)

    def encode(self, x):
        return self.m[...], self.v[...]

    def decode(self, z):
        return self.l[...]


def test_elbo_equals_closed_form():
    rng = np.random.default_rng(4)
    mean, logvar = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    logits, x = rng.standard_normal((3, 2, 2, 1)), rng.random((3, 2, 2, 1))
    model = _Fixed(*(jnp.asarray(a, jnp.float32) for a in (mean, logvar, logits)))
    loss, aux = vae.elbo_loss(model, jnp.asarray(x, jnp.float32), jax.random.key(0))
    p = 1 / (1 + np.exp(-logits))
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    # KL(N(m, s^2) || N(0, 1)) per dimension: log(1/s) + (s^2 + m^2)/2 - 1/2
    kl = np.sum(-0.5 * logvar + 0.5 * (np.exp(logvar) + mean**2) - 0.5, axis=1)
    np.testing.assert_allclose(aux["recon"], bce.mean(), rtol=1e-5)
    np.testing.assert_allclose(aux["kl"], kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, (bce + kl).mean(), rtol=1e-5)
    assert float(aux["kl"]) >= 0


def test_kl_nonnegative_and_zero_at_prior():
    model = vae.build_vae("mlp", image_shape=(8, 8, 1), latent=8)
    x = jax.random.uniform(jax.random.key(1), (16, 8, 8, 1))
    _, aux = vae.elbo_loss(model, x, jax.random.key(2))
    assert float(aux["kl"]) >= 0
    zero = _Fixed(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros((2, 1, 1, 1)))
    assert float(vae.elbo_loss(zero, jnp.zeros((2, 1, 1, 1)), jax.random.key(0))[1]["kl"]) == 0.0


def test_coupled_weight_decay_matches_torch_adam_first_step():
    # torch.optim.Adam's first step with weight_decay: g' = g + wd * theta, update = -lr * g'/(|g'| + eps).
    opt = vae.make_optimizer(learning_rate=0.1, weight_decay=0.5)
    theta, g = jnp.array([1.0, -2.0, 0.0]), jnp.array([0.3, 0.0, -1e-3])
    upd, _ = opt.update(g, opt.init(theta), theta)
    gp = np.array(g) + 0.5 * np.array(theta)
    # rtol: float32 bias corrections 1 - 0.999 and 1 - 0.9 carry relative errors up to ~6e-5 (eps32 / 0.001)
    np.testing.assert_allclose(upd, -0.1 * gp / (np.abs(gp) + 1e-8), rtol=1e-4)
    with pytest.raises(ValueError, match="weight_decay"):
        vae.make_optimizer(weight_decay=-1.0)


def _digits_like(n, shape, seed=0):
    return jax.random.bernoulli(jax.random.key(seed), 0.3, (n,) + shape).astype(jnp.float32)


@pytest.mark.parametrize("arch,shape,latent", [("mlp", (8, 8, 1), 4), ("conv", (8, 8, 1), 4)])
def test_loss_decreases_on_a_fixed_batch(arch, shape, latent):
    model = vae.build_vae(arch, image_shape=shape, latent=latent, hidden=(64, 32), channels=(8, 16))
    x = _digits_like(32, shape)
    # single steps: one compilation (the chunked paths are checked against them below)
    trained, hist = vae.train(model, batch_fn=lambda k, i, x: x, batch_args=(x,), steps=50, key=jax.random.key(0),
                              steps_per_call=1)
    assert hist["loss"].shape == (50,)
    # Known levels: untrained logits ~0 cost log 2 per pixel; the best model that ignores z costs the
    # batch's pixel entropy sum_pixels H(mean_pixel). 50 Adam steps must close most of that gap.
    p = np.clip(np.asarray(x).mean(0), 1e-6, 1 - 1e-6)
    floor = float(np.sum(-p * np.log(p) - (1 - p) * np.log(1 - p)))
    first, last = hist["loss"][:5].mean(), hist["loss"][-5:].mean()
    assert abs(first - x[0].size * math.log(2)) < 0.05 * first
    assert last < first - 0.6 * (first - floor), (first, last, floor)
    assert np.all(hist["kl"] >= 0)
    # the caller's model is unchanged
    for a, b in zip(_params(model), _params(vae.build_vae(arch, image_shape=shape, latent=latent, hidden=(64, 32),
                                                          channels=(8, 16))), strict=True):
        np.testing.assert_array_equal(a, b)


def _params(model):
    return [np.asarray(a) for a in jax.tree.leaves(nnx.state(model))]


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_training_is_deterministic_and_independent_of_chunking(arch):
    shape = (8, 8, 1)
    data = _digits_like(40, shape, seed=5)
    fn, args = vae.data_batches(data, batch_size=16, key=jax.random.key(9), steps=6)

    def run(per_call, key=0):
        model = vae.build_vae(arch, image_shape=shape, latent=3, hidden=(16,), channels=(4, 8), seed=1)
        return vae.train(model, batch_fn=fn, batch_args=args, steps=6, key=jax.random.key(key),
                         steps_per_call=per_call)
    (m1, h1), (m2, _) = run(3), run(3)
    for a, b in zip(_params(m1), _params(m2)):
        np.testing.assert_array_equal(a, b)  # same key: bitwise
    # steps_per_call changes how steps are compiled (scan, tail chunk), not which steps run:
    # the same numbers up to float32 rounding through 6 Adam steps
    for per_call in (1, 5):  # 5: a chunk of 5 and a tail of one step (a plain jitted step, not a scan)
        m3, h3 = run(per_call)
        np.testing.assert_allclose(h3["loss"], h1["loss"], rtol=1e-4)
        for a, b in zip(_params(m1), _params(m3)):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    m4, _ = run(3, key=1)
    assert any(not np.array_equal(a, b) for a, b in zip(_params(m1), _params(m4)))


def test_data_batches_cover_each_epoch_once():
    data = jnp.arange(10, dtype=jnp.float32).reshape(10, 1, 1, 1)
    fn, args = vae.data_batches(data, batch_size=4, key=jax.random.key(0), steps=6)
    epoch0 = np.concatenate([np.asarray(fn(None, i, *args)).ravel() for i in range(3)])  # ceil(10/4) = 3 batches
    assert sorted(epoch0[:10]) == list(range(10))  # 2 fill-up examples repeat the epoch's first ones
    np.testing.assert_array_equal(epoch0[10:], epoch0[:2])
    epoch1 = np.concatenate([np.asarray(fn(None, i, *args)).ravel() for i in range(3, 6)])
    assert sorted(epoch1[:10]) == list(range(10)) and not np.array_equal(epoch0, epoch1)


def test_epoch_permutations_are_the_per_epoch_draws():
    # drawn once per generation with vmap; each row must be the permutation a per-epoch draw gives
    # (the draws of the runs before the change, when every step drew its epoch's permutation)
    from modelcollapse.vae.train import epoch_permutations

    key = jax.random.key(4)
    perms = np.asarray(epoch_permutations(key, 10, 4, steps=7))  # 3 steps per epoch: 3 epochs
    assert perms.shape == (3, 10) and perms.dtype == np.int32
    for e in range(3):
        np.testing.assert_array_equal(perms[e], np.asarray(jax.random.permutation(jax.random.fold_in(key, e), 10)))
    with pytest.raises(ValueError, match="per_step"):
        epoch_permutations(key, 10, 0, steps=7)


def test_decoder_batches_are_decoder_means():
    model = vae.build_vae("mlp", image_shape=(8, 8, 1), latent=4, seed=2)
    fn, args = vae.decoder_batches(model, batch_size=6)
    key = jax.random.key(3)
    want = jax.nn.sigmoid(model.decode(jax.random.normal(key, (6, 4))))
    np.testing.assert_allclose(fn(key, 0, *args), want, rtol=1e-6)


def test_state_round_trip_through_numpy():
    # The checkpoint path: nnx.state -> numpy -> nnx.update into an abstract (eval_shape) model.
    model = vae.build_vae("conv", image_shape=(8, 8, 1), latent=3, channels=(4, 8), seed=3)
    saved = jax.tree.map(np.asarray, nnx.state(model))
    fresh = nnx.eval_shape(lambda: vae.build_vae("conv", image_shape=(8, 8, 1), latent=3, channels=(4, 8), seed=0))
    nnx.update(fresh, jax.tree.map(jnp.asarray, saved))
    x = _digits_like(4, (8, 8, 1))
    for a, b in zip(model.encode(x), fresh.encode(x)):
        np.testing.assert_array_equal(a, b)
    z = jax.random.normal(jax.random.key(0), (4, 3))
    np.testing.assert_array_equal(model.decode(z), fresh.decode(z))


def test_sample_images_and_encode_means():
    model = vae.build_vae("conv", image_shape=(8, 8, 1), latent=3, channels=(4, 8), seed=4)
    key = jax.random.key(5)
    probs = vae.sample_images(model, key, 7, batch_size=3)  # chunks 3 + 3 + 1 (padded)
    assert probs.shape == (7, 8, 8, 1) and probs.min() >= 0 and probs.max() <= 1
    want = jax.nn.sigmoid(model.decode(jax.random.normal(key, (7, 3))))
    np.testing.assert_allclose(probs, want, atol=1e-6)
    np.testing.assert_allclose(vae.sample_images(model, key, 7, batch_size=100), probs, atol=1e-6)
    means = vae.encode_means(model, probs, batch_size=2)
    np.testing.assert_allclose(means, model.encode(jnp.asarray(probs))[0], atol=1e-5)
    assert vae.sample_images(model, key, 0).shape == (0, 8, 8, 1)
