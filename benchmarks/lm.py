"""Benchmark: the GPT of `lm.model` on this machine: training throughput and model FLOP utilisation,
cached against recomputed generation, and PyTorch eager on the same CPU (a report, not a test).

    .venv/bin/python benchmarks/lm.py [--batch-size 32 --steps-per-call 10 --vocab 2000 --context 128
                                       --layers 2 --d-model 128 --heads 4 --repeats 5] [--no-torch]
                                      [--breakdown] [--profile] [--sweep]
    .venv/bin/python benchmarks/lm.py --generate [--gen-prompts 1000 --gen-batch 250 --repeats 3]

Prints, measured side by side in one run: --repeats rounds that each run every timed call once, and
the best of each (noise from other processes only adds time, and a round sees it in every call):
  1. the fp32 matmul peak now: jnp.dot of 2048 x 2048 and 4096 x 4096 matrices, the best FLOP/s;
  2. training: optimizer steps (lax.scan of --steps-per-call AdamW steps on random blocks of
     context + 1 tokens, exactly `lm.train`'s jitted loop) -> tokens/s and MFU = FLOPs/token *
     tokens/s / peak, with FLOPs/token = 6 N + 12 L T d (Kaplan et al. 2020 / PaLM appendix B:
     forward + backward of the matmuls over N parameters, plus attention scores and mixing at
     sequence length T), where N counts the non-embedding parameters AND the tied output projection
     V d (a real matmul; the input lookup is not);
     with --sweep also steps_per_call 1 and other batch sizes; with --breakdown the forward+backward
     time of the step with GELU, attention softmax or cross-entropy replaced by cheap stand-ins;
     with --profile the step's time by XLA op class (matmuls, layout copies, the rest) from XLA's
     trace, beside the time its matmul FLOPs need at the peak and what 1.2x PyTorch leaves the rest;
  3. generation at batch --batch-size, greedy, from a 1-token prompt to `context` tokens, jit + scan
     for both: with the KV cache (one token per step) and recomputing the full context each step
     (a causal model on the fixed [B, context] buffer), and the ratio; both must give the same tokens;
  4. if torch imports: the same model and AdamW step (clipping, weight decay on everything: a
     minor difference) in PyTorch eager, 2 threads, batches drawn with replacement, and one line
     with JAX's and PyTorch's tokens/s and their ratio against the goal (>= 1.2x), with a warning
     when the cores look shared (the ratio is then meaningless: see BUSY_LOAD).
With --generate, only this instead: `lm.generate`'s beam search at the LM experiment's default sizes
(`lm.experiment.continue_blocks`: a GPT of vocabulary 200, context 128, 1 layer, d 64, 4 heads; 64-token
prompts continued by 64 tokens, 5 beams, repetition penalty 3.0, --gen-batch prompts per jitted call),
on --gen-prompts random prompts: seconds per call of `generate` (the best of --repeats, after a
compiling call), decoding steps/s (a step: one token for all rows of a chunk) and tokens/s (new tokens
of the returned sequences, and of all beams), plus greedy and sampling at the same sizes.
Always exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import jax
import jax.numpy as jnp
from flax import nnx

from timing import best_of, op_times  # benchmarks/timing.py (the script's own folder is on sys.path)
from modelcollapse import runtime
from modelcollapse.lm import model as M, train as T


def matmul_calls() -> dict[str, tuple]:
    """{name: (call, FLOPs)}: compiled jnp.dot of large square fp32 matrices."""
    calls = {}
    for n in (2048, 4096):
        a = jax.random.normal(jax.random.key(0), (n, n))
        b = jax.random.normal(jax.random.key(1), (n, n))
        dot = jax.jit(jnp.dot)
        dot(a, b).block_until_ready()
        calls[f"matmul {n}"] = (lambda dot=dot, a=a, b=b: dot(a, b), 2 * n ** 3)
    return calls


def interleaved(calls: dict[str, object], repeats: int, times: dict | None = None) -> dict[str, float]:
    """Best seconds of each call over `repeats` rounds that run every call once: other processes on
    a shared machine then slow all of them alike, and the best of each is its least disturbed run.
    `times`, if given, receives every round's seconds of each call."""
    times = {} if times is None else times
    times.update({name: [] for name in calls})
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(best_of(call, 1))
    return {name: min(t) for name, t in times.items()}


# Load average above which the cores are taken to be shared with another busy process. Under such
# contention PyTorch eager's OpenMP threads (which wait for each other at every op) slow down far
# more than XLA's: at the default size on the 2-core CPU, a torch step took 1.5-1.8 s with a test
# suite running alongside against 0.18-0.23 s idle, while JAX's step only doubled (0.2 -> 0.4 s),
# so a JAX/torch ratio measured then (4-4.5x) says nothing about the two frameworks.
BUSY_LOAD = 0.7


def flops_per_token(c: M.GPTConfig) -> float:
    n = M.param_count(c, embeddings=False) + c.vocab_size * c.d_model
    return 6 * n + 12 * c.n_layers * c.context * c.d_model


# XLA CPU options tried on this loop (compiler_options of the jit, 2-core AMD EPYC, AVX2): oneDNN dot
# fusion (xla_cpu_use_onednn + LIBRARY_FUSION_TYPE_DOT), YNNPACK restricted to dots, and
# xla_cpu_enable_concurrency_optimized_scheduler=False: each within +-8% of the default in
# interleaved rounds, i.e. noise. A profile of the step (~200 ms idle): the large dots ~50% (near the
# ~160 GFLOP/s peak), attention's small batched dots ~17%, the weight gradients' transposes ~9%,
# softmax, GELU, LayerNorm, cross-entropy and AdamW passes the rest.
def train_call(c: M.GPTConfig, batch_size: int, steps_per_call: int):
    """A compiled call of lm.train's jitted loop: steps_per_call AdamW steps on random blocks."""
    model = M.GPT(c, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    blocks = jax.random.randint(jax.random.key(2), (max(512, batch_size), c.context + 1), 0, c.vocab_size)
    opt = T.OptimizerConfig()
    hyper = {k: jnp.float32(v) for k, v in dataclasses.asdict(opt).items()}
    state = [jax.tree.map(jnp.copy, params), T.make_optimizer(opt, 10_000).init(params), 0]

    def args():
        p, o, step = state
        return (p, o, rest, blocks, jnp.int32(step), jnp.int32(10_000), jax.random.key(0), hyper)

    static = dict(graphdef=graphdef, batch_size=batch_size, n=steps_per_call, dropout=False)

    def call():
        p, o, losses = T._run(*args(), **static)
        state[:] = [p, o, state[2] + steps_per_call]
        return losses

    call().block_until_ready()  # compile
    # The compiled HLO that --profile classifies: XLA compiles the same program again, only when asked.
    call.hlo_text = lambda: T._run.lower(*args(), **static).compile().as_text()
    return call


def breakdown(c: M.GPTConfig, batch_size: int, repeats: int) -> dict[str, float]:
    """Forward+backward seconds with one part swapped for a cheap stand-in (interleaved runs)."""
    model = M.GPT(c, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    blocks = jax.random.randint(jax.random.key(1), (batch_size, c.context + 1), 0, c.vocab_size)
    gelu, softmax, nll = jax.nn.gelu, jax.nn.softmax, T.token_nll
    stand_ins = {"full step (fwd+bwd)": {}, "GELU -> identity": {"gelu": lambda x, approximate=True: x},
                 "attention softmax -> scale": {"softmax": lambda x, axis=-1: x * 1e-3},
                 "cross-entropy -> mean logit": {"nll": lambda y, t: jnp.mean(y, -1)}}
    fns = {}
    for name, swap in stand_ins.items():
        jax.nn.gelu, jax.nn.softmax = swap.get("gelu", gelu), swap.get("softmax", softmax)
        loss_nll = swap.get("nll", nll)

        def loss(p, loss_nll=loss_nll):
            return loss_nll(nnx.merge(graphdef, p)(blocks[:, :-1]), blocks[:, 1:]).mean()

        fns[name] = jax.jit(jax.grad(loss))
        jax.block_until_ready(fns[name](params))  # traced (and compiled) while the swap is in place
    jax.nn.gelu, jax.nn.softmax = gelu, softmax
    return interleaved({name: (lambda fn=fn: fn(params)) for name, fn in fns.items()}, repeats)


def profile_report(train, steps_per_call: int, step_seconds: float, step_flops: float, peak: float,
                   torch_seconds: float | None) -> None:
    """--profile: the training step's time by XLA op class (timing.op_times) against the time its
    matmul FLOPs need at the measured fp32 peak, and what the goal against PyTorch leaves for the rest."""
    times = {k: v / steps_per_call for k, v in op_times(train, train.hlo_text(), calls=3).items()}
    print("\nXLA trace of the training step (ms per step; each op on the thread that launched it):")
    print(f"  {'matmuls (dots, and fusions holding one)':<44}{times['matmul'] * 1e3:>7.1f}"
          f"  {step_flops / times['matmul'] / 1e9:.0f} GFLOP/s of 6N + 12 L T d")
    print(f"  {'layout copies and transposes':<44}{times['layout copy'] * 1e3:>7.1f}")
    print(f"  {'everything else':<44}{times['other'] * 1e3:>7.1f}")
    total = f"sum (timed step: {step_seconds * 1e3:.1f})"
    print(f"  {total:<44}{sum(times.values()) * 1e3:>7.1f}")
    floor = step_flops / peak
    print(f"  the matmuls' FLOPs at the fp32 peak take {floor * 1e3:.1f} ms")
    if torch_seconds is not None:
        goal = torch_seconds / 1.2
        print(f"  1.2x PyTorch eager needs {goal * 1e3:.1f} ms per step: {(goal - floor) * 1e3:.1f} ms for everything "
              f"but matmuls even with them at the peak (now {(sum(times.values()) - times['matmul']) * 1e3:.1f})")


def generation_calls(c: M.GPTConfig, batch_size: int) -> tuple[object, object, bool]:
    """(cached call, recompute call, same tokens): greedy decoding from 1 to `context` tokens."""
    model = M.GPT(c, rngs=nnx.Rngs(0))
    state = nnx.state(model)
    apply_full, decode_fn = M.model_fns(model)
    t = c.context
    prompt = jax.random.randint(jax.random.key(3), (batch_size, 1), 0, c.vocab_size)

    @jax.jit
    def cached(state, prompt):
        cache = M.init_cache(model, batch_size, t)
        logits, cache = decode_fn(state, prompt, cache, 0)

        def step(carry, position):
            token, cache = carry
            logits, cache = decode_fn(state, token[:, None], cache, position)
            nxt = jnp.argmax(logits[:, 0], -1).astype(jnp.int32)
            return (nxt, cache), nxt

        first = jnp.argmax(logits[:, -1], -1).astype(jnp.int32)
        _, rest = jax.lax.scan(step, (first, cache), jnp.arange(1, t - 1))
        return jnp.concatenate([prompt, first[:, None], rest.T], axis=1)

    @jax.jit
    def recompute(state, prompt):
        buffer = jnp.zeros((batch_size, t), jnp.int32).at[:, :1].set(prompt)

        def step(buffer, position):
            logits = apply_full(state, buffer)  # [B, t, V]; causal, so the zeros after `position` do not matter
            nxt = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, position, 1, keepdims=False), -1)
            return jax.lax.dynamic_update_slice(buffer, nxt.astype(jnp.int32)[:, None], (0, position + 1)), None

        return jax.lax.scan(step, buffer, jnp.arange(0, t - 1))[0]

    same = bool(jnp.all(cached(state, prompt) == recompute(state, prompt)))
    return lambda: cached(state, prompt), lambda: recompute(state, prompt), same


def torch_call(c: M.GPTConfig, batch_size: int):
    """A call of 3 AdamW steps of the same model in PyTorch eager (2 threads); None without torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(2)
    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            d = c.d_model
            self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.qkv, self.out = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
            self.fc1, self.fc2 = torch.nn.Linear(d, c.d_ff), torch.nn.Linear(c.d_ff, d)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, c.n_heads, d // c.n_heads).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
            x = x + self.out(att)
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = torch.nn.Embedding(c.vocab_size, c.d_model)
            self.wpe = torch.nn.Parameter(torch.randn(c.context, c.d_model) * 0.02)
            self.blocks = torch.nn.ModuleList([Block() for _ in range(c.n_layers)])
            self.ln_f = torch.nn.LayerNorm(c.d_model)

        def forward(self, tokens):
            x = self.wte(tokens) + self.wpe[: tokens.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.ln_f(x) @ self.wte.weight.T  # tied

    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    blocks = torch.randint(0, c.vocab_size, (max(512, batch_size), c.context + 1))

    def step():
        batch = blocks[torch.randint(0, blocks.shape[0], (batch_size,))]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, c.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()
    return lambda: [step() for _ in range(3)]


def generate_benchmark(prompts: int, batch: int, repeats: int) -> None:
    """--generate: lm.generate at the LM experiment's default sizes (module docstring)."""
    import functools

    import numpy as np

    from modelcollapse.lm import generate as G

    c = M.GPTConfig(vocab_size=200, context=128, n_layers=1, d_model=64, n_heads=4)
    model = M.GPT(c, rngs=nnx.Rngs(0))
    # As lm.experiment: decode_fn and init_cache from a shape-only template, built once (static jit args).
    template = nnx.eval_shape(lambda: M.GPT(c, rngs=nnx.Rngs(0)))
    decoder = G.Decoder(nnx.state(model), M.model_fns(template)[1], functools.partial(M.init_cache, template))
    x = np.asarray(jax.random.randint(jax.random.key(1), (prompts, 64), 0, c.vocab_size), np.int32)
    new, beams = 64, 5
    runs = {"beam (5 beams, penalty 3.0)": dict(mode="beam", num_beams=beams, repetition_penalty=3.0),
            "greedy (penalty 3.0)": dict(mode="greedy", repetition_penalty=3.0),
            "sample": dict(mode="sample")}
    calls = {name: functools.partial(G.generate, decoder, x, max_new_tokens=new, key=jax.random.key(0),
                                     batch_size=batch, progress=False, **kw) for name, kw in runs.items()}
    for call in calls.values():
        call()  # compile
    best = interleaved(calls, repeats)
    chunks = -(-prompts // batch)
    print(f"lm.generate, GPT {c}\n{prompts} prompts of 64 tokens + {new} new, {batch} prompts per call "
          f"({chunks} calls), best of {repeats}\n")
    print(f"{'mode':<30}{'s':>8}{'steps/s':>9}{'tokens/s':>10}{'row tokens/s':>14}")
    for name, seconds in best.items():
        rows = beams if name.startswith("beam") else 1
        print(f"{name:<30}{seconds:>8.2f}{chunks * new / seconds:>9.1f}{prompts * new / seconds:>10.0f}"
              f"{prompts * rows * new / seconds:>14.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps-per-call", type=int, default=10)
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--breakdown", action="store_true", help="time the step with parts swapped out")
    p.add_argument("--profile", action="store_true",
                   help="where the step's time goes, by XLA op class, from XLA's own trace")
    p.add_argument("--sweep", action="store_true", help="also steps_per_call 1 and batch sizes 16, 64")
    p.add_argument("--generate", action="store_true",
                   help="only lm.generate at the LM experiment's sizes (beam, greedy, sampling)")
    p.add_argument("--gen-prompts", type=int, default=1000, help="--generate: prompts")
    p.add_argument("--gen-batch", type=int, default=250, help="--generate: prompts per jitted call")
    a = p.parse_args()
    load_at_start = os.getloadavg()[0]  # before this process adds its own load
    backend = runtime.configure()
    if a.generate:
        print(f"jax {jax.__version__} (backend {backend}), CPU cores {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.2f}")
        generate_benchmark(a.gen_prompts, a.gen_batch, a.repeats)
        return
    c = M.GPTConfig(vocab_size=a.vocab, context=a.context, n_layers=a.layers, d_model=a.d_model, n_heads=a.heads)
    print(f"jax {jax.__version__} (backend {backend}), python {platform.python_version()}, CPU cores "
          f"{os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), load average {os.getloadavg()[0]:.2f}")
    print(f"model: {c}\nparameters {M.param_count(c):,} ({M.param_count(c, embeddings=False):,} non-embedding); "
          f"FLOPs/token 6N + 12 L T d = {flops_per_token(c) / 1e6:.2f} M (N = non-embedding + tied output V d)\n")

    # Everything timed below runs in interleaved rounds (see `interleaved`).
    calls, flops = {}, {}
    for name, (call, f) in matmul_calls().items():
        calls[name], flops[name] = call, f
    configs = [(a.batch_size, a.steps_per_call)]
    if a.sweep:
        configs += [(a.batch_size, 1), (a.batch_size // 2, a.steps_per_call), (a.batch_size * 2, a.steps_per_call)]
    for batch_size, k in configs:
        calls[("train", batch_size, k)] = train_call(c, batch_size, k)
    calls["cached"], calls["recompute"], same = generation_calls(c, a.batch_size)
    torch_step = None if a.no_torch else torch_call(c, a.batch_size)
    if torch_step is not None:
        calls["torch"] = torch_step
    rounds = {}
    best = interleaved(calls, a.repeats, rounds)

    peak = max(flops[name] / best[name] for name in flops)
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s (best of {a.repeats} rounds)\n")
    print(f"{'training':<34}{'ms/step':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'MFU':>7}")
    tps = {}
    for batch_size, k in configs:
        seconds = best[("train", batch_size, k)] / k
        tps[batch_size, k] = batch_size * c.context / seconds
        achieved = flops_per_token(c) * tps[batch_size, k]
        print(f"{f'JAX batch {batch_size}, {k} steps/call':<34}{seconds * 1e3:>9.1f}{tps[batch_size, k]:>10.0f}"
              f"{achieved / 1e9:>9.1f}{achieved / peak:>7.1%}")
    base_tps = tps[configs[0]]
    mfu = flops_per_token(c) * base_tps / peak
    if torch_step is not None:
        t_torch = best["torch"] / 3
        print(f"{f'PyTorch eager batch {a.batch_size}':<34}{t_torch * 1e3:>9.1f}{a.batch_size * c.context / t_torch:>10.0f}"
              f"{flops_per_token(c) * a.batch_size * c.context / t_torch / 1e9:>9.1f}"
              f"{flops_per_token(c) * a.batch_size * c.context / t_torch / peak:>7.1%}")
        torch_tps = a.batch_size * c.context / t_torch
        vs_torch = base_tps / torch_tps
        print(f"\ntraining JAX vs PyTorch eager (batch {a.batch_size}, same round-robin): JAX {base_tps:.0f} tokens/s, "
              f"PyTorch {torch_tps:.0f} tokens/s, ratio {vs_torch:.2f}x (goal >= 1.2x: "
              f"{'PASS' if vs_torch >= 1.2 else 'MISS'})")
        spread = max(rounds["torch"]) / min(rounds["torch"])
        load_now = os.getloadavg()[0]
        if load_at_start > BUSY_LOAD or spread > 1.5:
            print(f"WARNING: the cores look shared (load average {load_at_start:.2f} at the start, {load_now:.2f} "
                  f"now; PyTorch's slowest round {spread:.1f}x its best): PyTorch eager slows far more than "
                  f"JAX under contention (see BUSY_LOAD), so this ratio overstates JAX; rerun on an idle machine")
    elif not a.no_torch:
        print("torch not importable: PyTorch comparison skipped")

    if a.profile:
        train = ("train",) + configs[0]
        profile_report(calls[train], a.steps_per_call, best[train] / a.steps_per_call,
                       flops_per_token(c) * a.batch_size * c.context, peak,
                       None if torch_step is None else best["torch"] / 3)

    if a.breakdown:
        times = breakdown(c, a.batch_size, a.repeats)
        full = times.pop("full step (fwd+bwd)")
        print(f"\nforward+backward at batch {a.batch_size}: {full * 1e3:.1f} ms; time saved by a stand-in for:")
        for name, t in times.items():
            print(f"  {name:<32}{(full - t) * 1e3:>7.1f} ms ({(full - t) / full:.0%})")

    n_new = a.batch_size * (c.context - 1)
    print(f"\n{'generation (greedy, 1 -> ' + str(c.context) + ' tokens)':<34}{'s/batch':>9}{'tokens/s':>10}")
    print(f"{'KV cache':<34}{best['cached']:>9.3f}{n_new / best['cached']:>10.0f}")
    print(f"{'recompute full context':<34}{best['recompute']:>9.3f}{n_new / best['recompute']:>10.0f}")
    speedup = best["recompute"] / best["cached"]
    print(f"same tokens: {same}")

    print(f"\ntarget MFU >= 35%: {mfu:.1%} {'PASS' if mfu >= 0.35 else 'MISS'}")
    print(f"target KV cache >= 5x recompute at context {c.context}: {speedup:.1f}x {'PASS' if speedup >= 5 else 'MISS'}")


if __name__ == "__main__":
    main()
