"""The paper's stride-2 convolutions (kernel 4, stride 2, padding 1) with hand-written gradients.

The MNIST VAE of Shumailov et al. (Nature 2024, the VAE figure; their PyTorch notebook) halves the
image twice with `Conv2d(k=4, s=2, p=1)` and doubles it back twice with `ConvTranspose2d(k=4, s=2,
p=1)`. Both are written here in NHWC / HWIO layout with PyTorch's semantics:

    down:  y[n, i, j, o]              = sum_{a,b,c} x[n, 2i - 1 + a, 2j - 1 + b, c] K[a, b, c, o]
    up:    y[n, 2i - 1 + a, 2j - 1 + b, o] += x[n, i, j, c] K[a, b, c, o]      (a, b in 0..3)

`up` is the adjoint (transpose) of `down` with the kernel's channel axes swapped, which is also
PyTorch's definition of the transposed convolution; a PyTorch weight W[c, o, a, b] of either layer
is K = W.permute(2, 3, 1, 0) for Conv2d ([o, c, a, b]) and W.permute(2, 3, 0, 1) for
ConvTranspose2d ([c, o, a, b]).

Why custom gradients. On the CPU (XLA, jax 0.10.2, 2 cores) autodiff of the transposed convolution
(an lhs-dilated convolution) produces a weight gradient that took ~2.2 s for the 128->64 layer at
batch 256, against ~14 ms for the forward pass of the matching `down`: the paper's VAE then trains
20x slower than PyTorch. The three linear maps every layer needs are the same three for both
layers, so `conv_down` and `conv_up` use `jax.custom_vjp` to route every one to the fastest form:

    _down(x, K)        the stride-2 convolution (XLA's convolution, near matmul speed)
    _up(x, K)          the transposed convolution, computed by output phases (below)
    _correlate(X, Y)   dK[a, b, c, o] = sum X_pad[n, 2i + a, 2j + b, c] Y[n, i, j, o], the weight
                       gradient of `down` (XLA's own weight gradient of a strided convolution)

    down: y = _down(x, K),  dx = _up(dy, K^T),  dK = _correlate(x, dy)
    up:   y = _up(x, K),    dx = _down(dy, K^T), dK = _correlate(dy, x)^T

(K^T swaps the channel axes.) `_up` by phases: output row 2m + r (r = 0, 1) receives input rows
m - 1 (tap 3) and m (tap 1) when r = 0, and m (tap 2) and m + 1 (tap 0) when r = 1: with x padded
by one row, rows m + r + t (t = 0, 1) with tap 3 - 2t - r. So one stride-1 2x2 convolution of
the padded input to 4 x Cout channels, Q[p] = sum_t x_pad[p + t] K2[t] with block r of K2[t]
= K[3 - 2t - r] (and the same in columns), gives every phase: output (2m + r, 2l + s) is block
(r, s) of Q[m + r, l + s] ('phases': (H + 1)(W + 1) / (H W) the multiply-adds of the direct form,
1.3x at 7x7). 'row_phases' pads rows per parity instead, one convolution to 2 x Cout channels for
each r: 1.14x at 7x7, the default from 16 output channels on ('auto'). The textbook form
convolves a 3/4-zero dilated input (4x the work; 'dilated', kept for the benchmark and the tests).

Measured with benchmarks/vae.py (2 cores, batch 256, XLA compiled as the VAE compiles it: without
YNNPACK, `runtime.CPU_WITHOUT_YNNPACK`), ms for the 128 -> 64 layer (7x7 -> 14x14) and its 64 -> 128
mirror: stride-2 convolution 12-15 (PyTorch 12-15); transposed convolution by phases 16-22, by
row phases about 4 ms less in the whole training step, dilated 39-41; `_correlate` 16-23 (PyTorch
12-16); XLA's autodiff weight gradient of the transposed convolution 2,160. `add_channel_bias`
takes the layers' bias gradients off XLA's slow CPU reductions.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")
KERNEL, STRIDE, PADDING = 4, 2, 1
UP_IMPLS = ("auto", "phases", "row_phases", "dilated")
# 'auto' takes row_phases from this many output channels on (2 x O channels per convolution keep it
# efficient) and phases below (the 64 -> 1 layer: 4 channels in one convolution beat 2 in two).
ROW_PHASES_MIN_CHANNELS = 16


def _check(x, kernel, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: x must be [batch, height, width, channels], got shape {x.shape}")
    if kernel.shape[:2] != (KERNEL, KERNEL) or kernel.ndim != 4 or kernel.shape[2] != x.shape[3]:
        raise ValueError(f"{name}: kernel must be [4, 4, {x.shape[3]}, out_channels], got shape {kernel.shape}")


def _swap(kernel):
    """[a, b, c, o] -> [a, b, o, c]: the kernel of the adjoint map."""
    return jnp.swapaxes(kernel, 2, 3)


def _down(x, kernel):
    """Stride-2 convolution, padding 1: [B, 2H, 2W, C] x [4, 4, C, O] -> [B, H, W, O]."""
    return lax.conv_general_dilated(x, kernel, (STRIDE, STRIDE), ((PADDING, PADDING),) * 2, dimension_numbers=_DN)


def _phase_kernel(kernel):
    """[4, 4, C, O] -> [2, 2, C, 4 O]: block (r, s) of tap (t, u) is K[3 - 2t - r, 3 - 2u - s] (module docstring)."""
    c, o = kernel.shape[2], kernel.shape[3]
    # flipped, tap 3 - 2t - r becomes 2t + r: split each axis into (t, r) and move (r, s) next to O
    k = kernel[::-1, ::-1].reshape(2, 2, 2, 2, c, o)  # [t, r, u, s, C, O]
    return k.transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * o)


def _up_phases(x, kernel):
    b, h, w, _ = x.shape
    o = kernel.shape[3]
    q = lax.conv_general_dilated(x, _phase_kernel(kernel), (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DN)
    q = q.reshape(b, h + 1, w + 1, 2, 2, o)  # [B, H + 1, W + 1, r, s, O]
    # output pixel (2m + r, 2l + s) is q[m + r, l + s, r, s]
    rows = [jnp.stack([q[:, r:r + h, s:s + w, r, s] for s in range(2)], axis=3) for r in range(2)]  # [B, H, W, s, O]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, o)  # [B, H, r, W, s, O] -> [B, 2H, 2W, O]


def _up_row_phases(x, kernel):
    """The phases one output-row parity r at a time: Q_r = a stride-1 2x2 convolution of x padded by
    (1 - r, r) rows and 1 column each side, to 2 x Cout channels (block s of tap (t, u) is
    K[3 - 2t - r, 3 - 2u - s]); output (2m + r, 2l + s) is block s of Q_r[m, l + s]. H (W + 1) / (H W)
    the direct multiply-adds (1.14x at 7x7) instead of (H + 1)(W + 1) / (H W)."""
    b, h, w, _ = x.shape
    o = kernel.shape[3]
    rows = []
    for r in range(2):
        taps = [[jnp.concatenate([kernel[3 - 2 * t - r, 3 - 2 * u - s] for s in range(2)], axis=-1) for u in range(2)]
                for t in range(2)]
        q = lax.conv_general_dilated(x, jnp.stack([jnp.stack(row) for row in taps]), (1, 1), ((1 - r, r), (1, 1)),
                                     dimension_numbers=_DN).reshape(b, h, w + 1, 2, o)
        rows.append(jnp.stack([q[:, :, s:s + w, s] for s in range(2)], axis=3))  # [B, H, W, s, O]
    return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, o)  # [B, H, r, W, s, O] -> [B, 2H, 2W, O]


def _up_dilated(x, kernel):
    """The textbook form: a stride-1 convolution of the 2x-dilated input with the flipped kernel."""
    pad = KERNEL - 1 - PADDING
    return lax.conv_general_dilated(x, kernel[::-1, ::-1], (1, 1), ((pad, pad),) * 2, lhs_dilation=(STRIDE, STRIDE),
                                    dimension_numbers=_DN)


def _up(x, kernel, impl: str = "auto"):
    """Transposed convolution: [B, H, W, C] x [4, 4, C, O] -> [B, 2H, 2W, O]."""
    if impl == "auto":
        impl = "row_phases" if kernel.shape[3] >= ROW_PHASES_MIN_CHANNELS else "phases"
    return {"phases": _up_phases, "row_phases": _up_row_phases, "dilated": _up_dilated}[impl](x, kernel)


def _correlate(big, small):
    """dK[a, b, c, o] = sum_{n,i,j} big_pad[n, 2i + a, 2j + b, c] small[n, i, j, o]; -> [4, 4, C, O].

    The weight gradient of `_down(big, .)` at output cotangent `small`, which XLA computes as a
    convolution of `big` by `small` (batch as the contraction) at full speed.
    """
    zeros = jnp.zeros((KERNEL, KERNEL, big.shape[3], small.shape[3]), big.dtype)
    return jax.linear_transpose(lambda k: _down(big, k), zeros)(small)[0]


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_down(x, kernel, impl):
    return _down(x, kernel)


def _conv_down_fwd(x, kernel, impl):
    return _down(x, kernel), (x, kernel)


def _conv_down_bwd(impl, res, g):
    x, kernel = res
    return _up(g, _swap(kernel), impl), _correlate(x, g)


_conv_down.defvjp(_conv_down_fwd, _conv_down_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_up(x, kernel, impl):
    return _up(x, kernel, impl)


def _conv_up_fwd(x, kernel, impl):
    return _up(x, kernel, impl), (x, kernel)


def _conv_up_bwd(impl, res, g):
    x, kernel = res
    return _down(g, _swap(kernel)), _swap(_correlate(g, x))


_conv_up.defvjp(_conv_up_fwd, _conv_up_bwd)


def conv_down(x: jax.Array, kernel: jax.Array, *, impl: str = "auto") -> jax.Array:
    """PyTorch `Conv2d(C, O, kernel_size=4, stride=2, padding=1)` without bias, NHWC.

    x: [B, H, W, C] with H, W even; kernel: [4, 4, C, O]. Returns [B, H/2, W/2, O]. The gradient
    is hand-written (module docstring); `impl` picks the form of its input gradient (UP_IMPLS).
    """
    _check(x, kernel, "conv_down")
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"conv_down: height and width must be even (the gradient maps H/2 back to H), "
                         f"got {x.shape[1:3]}")
    if impl not in UP_IMPLS:
        raise ValueError(f"impl must be one of {list(UP_IMPLS)}, got {impl!r}")
    return _conv_down(x, kernel, impl)


def conv_up(x: jax.Array, kernel: jax.Array, *, impl: str = "auto") -> jax.Array:
    """PyTorch `ConvTranspose2d(C, O, kernel_size=4, stride=2, padding=1)` without bias, NHWC.

    x: [B, H, W, C]; kernel: [4, 4, C, O] (PyTorch's weight [C, O, 4, 4] permuted (2, 3, 0, 1)).
    Returns [B, 2H, 2W, O]. `impl`: one of UP_IMPLS (module docstring); 'auto' picks by O.
    """
    _check(x, kernel, "conv_up")
    if impl not in UP_IMPLS:
        raise ValueError(f"impl must be one of {list(UP_IMPLS)}, got {impl!r}")
    return _conv_up(x, kernel, impl)


@jax.custom_vjp
def add_channel_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """y + bias over the last axis, whose bias gradient is a matrix-vector product with ones: XLA's
    CPU reduction of a [256, 14, 14, 64] cotangent took 4.2 ms against 1.7 ms as a dot (2 cores)."""
    return y + bias


def _add_channel_bias_fwd(y, bias):
    return y + bias, None


def _add_channel_bias_bwd(_, g):
    rows = g.size // g.shape[-1]
    return g, jnp.ones((rows,), g.dtype) @ g.reshape(rows, g.shape[-1])


add_channel_bias.defvjp(_add_channel_bias_fwd, _add_channel_bias_bwd)


def conv_transpose_reference(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same map as `conv_up` through `lax.conv_transpose` (autodiff gradients): the tests' reference."""
    pad = KERNEL - 1 - PADDING
    # transpose_kernel=True takes the kernel of the forward (down) convolution that this map transposes
    return lax.conv_transpose(x, _swap(kernel), (STRIDE, STRIDE), ((pad, pad),) * 2, dimension_numbers=_DN,
                              transpose_kernel=True)
