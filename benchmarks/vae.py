"""Benchmark: VAE training throughput, JAX against PyTorch eager on the same CPU (a report, not a test).

    .venv/bin/python benchmarks/vae.py [--batch 256 --steps 20 --repeats 3 --mlp-steps 200]
                                       [--no-layers] [--no-torch]

Trains, side by side in one run, with the same random batch (pixels uniform in [0, 1]) every step:
  - the MLP VAE (8x8x1, hidden 256/128, latent 8): JAX `lax.scan` of 50 steps per call (the
    library default), JAX single jitted steps, PyTorch eager;
  - the paper's conv VAE (28x28x1, channels 64/128, latent 20, 647,081 parameters): JAX single
    jitted steps with the hand-written convolution gradients (the library default), JAX with a
    4-step unrolled scan per call, PyTorch eager;
  - both library defaults once more compiled with XLA's default CPU options ('YNNPACK on'): the
    library turns XLA's YNNPACK fusions off for the VAE family (`runtime.CPU_WITHOUT_YNNPACK`).
Same loss (Bernoulli cross-entropy from logits summed over pixels + KL, mean over the batch) and
Adam(lr 1e-3, coupled weight decay 1e-5) on both sides; PyTorch uses torch.set_num_threads(usable
cores). Prints examples/second (best of --repeats timed runs of --steps steps, after warm-up), the
JAX / PyTorch ratios against the targets (MLP >= 1.3x, conv >= 1.0x), and a per-layer table for the
conv VAE: forward, input gradient and weight gradient of each convolution, in milliseconds, for
our `vae.conv` functions, the stock XLA forms (autodiff of `lax` convolutions), both compiled
as the library compiles them, and PyTorch
(`aten.convolution_backward` with one output). Without torch the PyTorch columns are skipped with
a note. On a shared machine, compare the ratios (measured in one run), not the absolute numbers.
Always exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from modelcollapse import vae
from modelcollapse.runtime import jit_with_cpu_options
from modelcollapse.vae import conv as vconv

from timing import best_of  # benchmarks/timing.py (the script's own folder is on sys.path)

vae_train = importlib.import_module("modelcollapse.vae.train")  # the module; `vae.train` is its function

MLP = dict(architecture="mlp", image_shape=(8, 8, 1), latent=8, hidden=(256, 128))
CONV = dict(architecture="conv", image_shape=(28, 28, 1), latent=20, channels=(64, 128))


def jax_examples_per_s(spec: dict, x: np.ndarray, *, steps: int, repeats: int, per_call: int, unroll,
                       xla_defaults: bool = False) -> float:
    """Training examples/s of `steps` steps (calls of `per_call` steps each) on the fixed batch x.

    xla_defaults: the same steps compiled with XLA's default CPU options (YNNPACK on) instead of the
    library's options (`runtime.CPU_WITHOUT_YNNPACK`)."""
    model = vae.build_vae(spec["architecture"], image_shape=spec["image_shape"], latent=spec["latent"],
                          hidden=spec.get("hidden", (256, 128)), channels=spec.get("channels", (64, 128)))
    graphdef, state = nnx.split(model)
    optimizer = vae.make_optimizer()
    opt_state = optimizer.init(state)
    batch = (jnp.asarray(x),)
    key = jax.random.key(0)
    batch_fn = lambda k, i, x: x  # noqa: E731
    if xla_defaults:
        chunk = jax.jit(vae_train._jit_chunk.__wrapped__, static_argnums=(0, 1, 2, 3, 4))
        step = lambda s, o, k, i, b: chunk(graphdef, optimizer, batch_fn, per_call, unroll, s, o, k, i, b)  # noqa: E731
    elif per_call == 1:
        step = vae.make_train_step(graphdef, optimizer, batch_fn)
    else:
        step = vae.make_train_chunk(graphdef, optimizer, batch_fn, length=per_call, unroll=unroll)
    carry = [state, opt_state]
    steps = max(steps, per_call)

    def run():
        for i in range(0, steps, per_call):
            carry[0], carry[1], _ = step(carry[0], carry[1], key, i, batch)
        return carry[0]
    jax.block_until_ready(step(state, opt_state, key, 0, batch))  # compile
    return -(-steps // per_call) * per_call * x.shape[0] / best_of(run, repeats)


def torch_examples_per_s(spec: dict, x: np.ndarray, *, steps: int, repeats: int) -> float:
    import torch
    from torch import nn

    h, w, c = spec["image_shape"]
    if spec["architecture"] == "mlp":
        sizes = (h * w * c,) + spec["hidden"]
        enc = nn.Sequential(*[m for a, b in zip(sizes[:-1], sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        heads = (nn.Linear(sizes[-1], spec["latent"]), nn.Linear(sizes[-1], spec["latent"]))
        back = (spec["latent"],) + spec["hidden"][::-1]
        dec = nn.Sequential(*[m for a, b in zip(back[:-1], back[1:]) for m in (nn.Linear(a, b), nn.ReLU())],
                            nn.Linear(back[-1], h * w * c))
    else:
        c1, c2 = spec["channels"]
        enc = nn.Sequential(nn.Conv2d(c, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(), nn.Flatten())
        flat = c2 * (h // 4) * (w // 4)
        heads = (nn.Linear(flat, spec["latent"]), nn.Linear(flat, spec["latent"]))
        dec = nn.Sequential(nn.Linear(spec["latent"], flat), nn.Unflatten(1, (c2, h // 4, w // 4)), nn.ReLU(),
                            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, c, 4, 2, 1))
    modules = nn.ModuleList([enc, *heads, dec])
    opt = torch.optim.Adam(modules.parameters(), lr=1e-3, weight_decay=1e-5)
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    if spec["architecture"] == "mlp":
        xt = xt.reshape(x.shape[0], -1)

    def step():
        hid = enc(xt)
        mean, logvar = heads[0](hid), heads[1](hid)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        logits = dec(z).reshape(xt.shape)
        recon = nn.functional.binary_cross_entropy_with_logits(logits, xt, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mean**2 - logvar.exp())
        loss = (recon + kl) / x.shape[0]
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - start)
    return steps * x.shape[0] / min(times)


def layer_table(batch: int, repeats: int, with_torch: bool) -> list[tuple]:
    """Rows (layer, op, ours ms, stock XLA ms, torch ms) for the conv VAE's four convolutions."""
    rng = np.random.default_rng(0)
    dn = ("NHWC", "HWIO", "NHWC")
    jit = jit_with_cpu_options  # as the library compiles them (YNNPACK off on the CPU)

    def stock_down(x, k):
        return lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn)

    def stock_down_nchw(x, k):  # the same layer in PyTorch's layout, for the layout question
        return lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    layers = [("enc1 conv 1->64 28->14", True, (batch, 28, 28, 1), 64),
              ("enc2 conv 64->128 14->7", True, (batch, 14, 14, 64), 128),
              ("dec1 convT 128->64 7->14", False, (batch, 7, 7, 128), 64),
              ("dec2 convT 64->1 14->28", False, (batch, 14, 14, 64), 1)]
    rows = []
    for name, down, shape, c_out in layers:
        x = jnp.asarray(rng.random(shape), jnp.float32)
        k = jnp.asarray(rng.standard_normal((4, 4, shape[3], c_out)) * 0.05, jnp.float32)
        ours = vconv.conv_down if down else vconv.conv_up
        stock = stock_down if down else vconv.conv_transpose_reference
        g = jnp.ones_like(ours(x, k))
        fns = {}
        for label, f in (("ours", ours), ("stock", stock)):
            fns[label] = (jit(f),
                          jit(lambda x, k, g, f=f: jax.vjp(lambda x: f(x, k), x)[1](g)[0]),
                          jit(lambda x, k, g, f=f: jax.vjp(lambda k: f(x, k), k)[1](g)[0]))
        ms = {label: [best_of(lambda fn=fn: fn(x, k), repeats) * 1e3 if i == 0 else
                      best_of(lambda fn=fn: fn(x, k, g), repeats) * 1e3 for i, fn in enumerate(fs)]
              for label, fs in fns.items()}
        th = torch_layer_ms(down, np.asarray(x), np.asarray(k), np.asarray(g), repeats) if with_torch else [None] * 3
        for i, op in enumerate(("forward", "input grad", "weight grad")):
            rows.append((name, op, ms["ours"][i], ms["stock"][i], th[i]))
        if down and shape[3] > 1:  # NCHW / OIHW layout of the same stride-2 layer (stock XLA)
            xn, kn = jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(k, (3, 2, 0, 1))
            gn = jnp.transpose(g, (0, 3, 1, 2))
            fwd = jit(stock_down_nchw)
            wgrad = jit(lambda x, k, g: jax.vjp(lambda k: stock_down_nchw(x, k), k)[1](g)[0])
            rows.append((name + " NCHW", "forward", None, best_of(lambda: fwd(xn, kn), repeats) * 1e3, None))
            rows.append((name + " NCHW", "weight grad", None, best_of(lambda: wgrad(xn, kn, gn), repeats) * 1e3, None))
    return rows


def torch_layer_ms(down: bool, x, k, g, repeats: int) -> list[float]:
    """PyTorch forward, input gradient, weight gradient of the same layer (ms), each alone."""
    import torch

    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    gt = torch.tensor(g).permute(0, 3, 1, 2).contiguous()
    # Conv2d weight [O, C, 4, 4]; ConvTranspose2d weight [C, O, 4, 4]
    wt = torch.tensor(k).permute(3, 2, 0, 1).contiguous() if down else torch.tensor(k).permute(2, 3, 0, 1).contiguous()
    args = dict(bias_sizes=None, stride=[2, 2], padding=[1, 1], dilation=[1, 1], transposed=not down,
                output_padding=[0, 0], groups=1)
    conv = torch.nn.functional.conv2d if down else torch.nn.functional.conv_transpose2d

    def timed(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) * 1e3
    back = torch.ops.aten.convolution_backward
    with torch.no_grad():
        return [timed(lambda: conv(xt, wt, stride=2, padding=1)),
                timed(lambda: back(gt, xt, wt, output_mask=[True, False, False], **args)),
                timed(lambda: back(gt, xt, wt, output_mask=[False, True, False], **args))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="conv VAE steps per timed run")
    p.add_argument("--mlp-steps", type=int, default=200, help="MLP VAE steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer table")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    a = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    torch_note = None
    if a.no_torch:
        torch_note = "PyTorch skipped (--no-torch)"
    else:
        try:
            import torch

            torch.set_num_threads(cores)
            torch.manual_seed(0)
        except ImportError:
            torch_note = "PyTorch not importable: its columns are skipped (pip install torch to compare)"
    with_torch = torch_note is None
    print(f"jax {jax.__version__} (backend {jax.default_backend()}), flax {flax.__version__}, "
          f"torch {torch.__version__ if with_torch else '-'}, python {platform.python_version()}, CPU cores "
          f"{os.cpu_count()} (usable {cores}), load average {os.getloadavg()[0]:.2f}")
    if torch_note:
        print(torch_note)
    rng = np.random.default_rng(0)
    rows = []
    for label, spec, steps, default, alt, target in (
            ("MLP VAE 8x8", MLP, a.mlp_steps, ("scan 50", 50, 1), ("single steps", 1, 1), 1.3),
            ("conv VAE 28x28", CONV, a.steps, ("unrolled scan 4", 4, True), ("single steps", 1, 1), 1.0)):
        x = rng.random((a.batch,) + spec["image_shape"], np.float32)
        ours = jax_examples_per_s(spec, x, steps=steps, repeats=a.repeats, per_call=default[1], unroll=default[2])
        other = jax_examples_per_s(spec, x, steps=steps, repeats=a.repeats, per_call=alt[1], unroll=alt[2])
        ynn = jax_examples_per_s(spec, x, steps=steps, repeats=a.repeats, per_call=default[1], unroll=default[2],
                                 xla_defaults=True)
        theirs = torch_examples_per_s(spec, x, steps=steps, repeats=a.repeats) if with_torch else None
        rows.append((label, default[0], ours, alt[0], other, ynn, theirs, target))
    print(f"\ntraining examples/s at batch {a.batch} (best of {a.repeats} runs, after warm-up)")
    print(f"{'model':<16}{'JAX default':>26}{'JAX alternative':>30}{'YNNPACK on':>12}{'PyTorch':>10}{'JAX/torch':>11}"
          f"  target")
    for label, dname, ours, aname, other, ynn, theirs, target in rows:
        ratio = f"{ours / theirs:>10.2f}x" if theirs else f"{'-':>11}"
        verdict = ("PASS" if ours / theirs >= target else "MISS") if theirs else ""
        print(f"{label:<16}{dname:>14}{ours:>12.0f}{aname:>18}{other:>12.0f}{ynn:>12.0f}"
              f"{theirs if theirs else float('nan'):>10.0f}{ratio}  >= {target}x {verdict}")
    if not a.no_layers:
        print(f"\nconv VAE layers at batch {a.batch}, ms (best of {max(a.repeats, 5)}); 'stock' = autodiff of lax "
              f"convolutions (transposed: lax.conv_transpose)")
        print(f"{'layer':<30}{'op':<13}{'ours':>9}{'stock':>10}{'torch':>9}")
        for name, op, ours, stock, th in layer_table(a.batch, max(a.repeats, 5), with_torch):
            fmt = lambda v: f"{v:>9.1f}" if v is not None else f"{'-':>9}"  # noqa: E731
            print(f"{name:<30}{op:<13}{fmt(ours)}{fmt(stock):>10}{fmt(th)}")


if __name__ == "__main__":
    main()
