"""Variational autoencoders in Flax NNX: the paper's convolutional MNIST VAE and an MLP VAE for 8x8 digits.

Both map images x [B, H, W, 1] in [0, 1] to a diagonal Gaussian q(z | x) = N(mean, exp(logvar))
(`encode`) and latents z [B, L] to Bernoulli logits over pixels (`decode`); `train.elbo_loss` ties
them together. Layers are initialised as PyTorch initialises them (weights and biases uniform in
+-1/sqrt(fan_in), fan_in as torch computes it), so a generation starts from the same distribution
of weights as the paper's.

ConvVAE (Shumailov et al., Nature 2024, the MNIST VAE of their notebook), for image_shape
(28, 28, 1), channels (64, 128), latent 20:
    encoder  Conv(1->64, k4 s2 p1) ReLU  Conv(64->128, k4 s2 p1) ReLU  flatten 128*7*7
             -> Linear(6272 -> 20) mean,  Linear(6272 -> 20) log-variance
    decoder  Linear(20 -> 6272) -> 128x7x7 ReLU  ConvT(128->64, k4 s2 p1) ReLU  ConvT(64->1, k4 s2 p1)
             (sigmoid of these logits is the image)
Parameters: 1,088 + 131,200 + 2 x 125,460 (encoder) + 131,712 + 131,136 + 1,025 (decoder) = 647,081,
the original's count. Feature maps are NHWC and flattened as (H, W, C) where PyTorch flattens
(C, H, W): the same function class up to a fixed permutation of the dense weights.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from modelcollapse.vae.conv import add_channel_bias, conv_down, conv_up

ARCHITECTURES = ("mlp", "conv")


def _uniform(bound: float):
    """PyTorch's default layer init: U(-bound, bound) with bound = 1/sqrt(fan_in)."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def _linear(n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    init = _uniform(1 / math.sqrt(n_in))
    return nnx.Linear(n_in, n_out, kernel_init=init, bias_init=init, rngs=rngs)


class StrideConv(nnx.Module):
    """PyTorch `Conv2d(c_in, c_out, 4, 2, 1)` (down=True) or `ConvTranspose2d(c_in, c_out, 4, 2, 1)`,
    NHWC, kernel [4, 4, c_in, c_out], with the fast gradients of `vae.conv`."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, rngs: nnx.Rngs):
        # torch's fan_in is weight.size(1) * 16: c_in for Conv2d, c_out for ConvTranspose2d (weight [c_in, c_out, 4, 4])
        init = _uniform(1 / math.sqrt((c_in if down else c_out) * 16))
        self.kernel = nnx.Param(init(rngs.params(), (4, 4, c_in, c_out)))
        self.bias = nnx.Param(init(rngs.params(), (c_out,)))
        self.down = down

    def __call__(self, x: jax.Array) -> jax.Array:
        y = conv_down(x, self.kernel[...]) if self.down else conv_up(x, self.kernel[...])
        return add_channel_bias(y, self.bias[...])


def _check_common(image_shape, latent) -> tuple[int, int, int]:
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"image_shape must be (height, width, channels) of positive ints, got {image_shape!r}")
    if not (isinstance(latent, int) and latent >= 1):
        raise ValueError(f"latent must be an integer >= 1, got {latent!r}")
    return shape


def _check_sizes(name: str, sizes) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if not sizes or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {sizes!r}")
    return sizes


class MLPVAE(nnx.Module):
    """Dense VAE: flatten -> hidden ReLU layers -> (mean, logvar); z -> reversed hidden -> pixel logits.

    The default (8x8 digits, hidden (256, 128), latent 8) has 64*256+256 + 256*128+128 + 2*(128*8+8)
    + 8*128+128 + 128*256+256 + 256*64+64 = 102,224 parameters.
    """

    def __init__(self, *, image_shape=(8, 8, 1), hidden=(256, 128), latent: int = 8, rngs: nnx.Rngs):
        self.image_shape = _check_common(image_shape, latent)
        hidden = _check_sizes("hidden", hidden)
        self.latent = latent
        n_pixels = math.prod(self.image_shape)
        sizes = (n_pixels,) + hidden
        self.encoder = nnx.List([_linear(a, b, rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.fc_mean = _linear(hidden[-1], latent, rngs)
        self.fc_logvar = _linear(hidden[-1], latent, rngs)
        back = (latent,) + hidden[::-1]
        self.decoder = nnx.List([_linear(a, b, rngs) for a, b in zip(back[:-1], back[1:])])
        self.fc_out = _linear(hidden[0], n_pixels, rngs)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, H, W, C] -> (mean [B, L], logvar [B, L])."""
        h = x.reshape(x.shape[0], -1)
        for layer in self.encoder:
            h = jax.nn.relu(layer(h))
        return self.fc_mean(h), self.fc_logvar(h)

    def decode(self, z: jax.Array) -> jax.Array:
        """z [B, L] -> Bernoulli logits [B, H, W, C]."""
        h = z
        for layer in self.decoder:
            h = jax.nn.relu(layer(h))
        return self.fc_out(h).reshape(z.shape[0], *self.image_shape)


class ConvVAE(nnx.Module):
    """The paper's convolutional VAE (module docstring); `channels` sets the stride-2 stages.

    Each encoder stage halves height and width, so both must be divisible by 2 ** len(channels).
    """

    def __init__(self, *, image_shape=(28, 28, 1), channels=(64, 128), latent: int = 20, rngs: nnx.Rngs):
        self.image_shape = _check_common(image_shape, latent)
        channels = _check_sizes("channels", channels)
        h, w, c = self.image_shape
        scale = 2 ** len(channels)
        if h % scale or w % scale:
            raise ValueError(f"image_shape {self.image_shape}: height and width must be divisible by "
                             f"2 ** len(channels) = {scale}")
        self.latent = latent
        self.bottleneck = (h // scale, w // scale, channels[-1])  # (7, 7, 128) for MNIST
        n_flat = math.prod(self.bottleneck)
        chans = (c,) + channels
        self.encoder = nnx.List([StrideConv(a, b, down=True, rngs=rngs) for a, b in zip(chans[:-1], chans[1:])])
        self.fc_mean = _linear(n_flat, latent, rngs)
        self.fc_logvar = _linear(n_flat, latent, rngs)
        self.fc_dec = _linear(latent, n_flat, rngs)
        back = chans[::-1]
        self.decoder = nnx.List([StrideConv(a, b, down=False, rngs=rngs) for a, b in zip(back[:-1], back[1:])])

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, H, W, C] -> (mean [B, L], logvar [B, L])."""
        h = x
        for layer in self.encoder:
            h = jax.nn.relu(layer(h))
        h = h.reshape(x.shape[0], -1)
        return self.fc_mean(h), self.fc_logvar(h)

    def decode(self, z: jax.Array) -> jax.Array:
        """z [B, L] -> Bernoulli logits [B, H, W, C]."""
        h = self.fc_dec(z).reshape(z.shape[0], *self.bottleneck)
        for layer in self.decoder:
            h = layer(jax.nn.relu(h))  # ReLU after the dense layer and between the transposed convs
        return h


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (nnx.Param leaves)."""
    return sum(int(p.size) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def build_vae(architecture: str, *, image_shape, latent: int, hidden=(256, 128), channels=(64, 128),
              seed: int = 0) -> nnx.Module:
    """An initialised VAE: architecture 'mlp' (uses `hidden`) or 'conv' (uses `channels`); params from `seed`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {architecture!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rngs = nnx.Rngs(params=seed)
    if architecture == "mlp":
        return MLPVAE(image_shape=image_shape, hidden=hidden, latent=latent, rngs=rngs)
    return ConvVAE(image_shape=image_shape, channels=channels, latent=latent, rngs=rngs)
