"""Benchmark: OPT-125m (`lm.opt`, random weights, facebook/opt-125m's config) on this machine, and
what the paper's language-model experiment would cost on one GPU (a report, not a test).

    .venv/bin/python benchmarks/opt.py [--batch-size 8 --seq 64 --steps 3 --prompts 4 --beams 5
                                        --gpu-peak 312e12 --train-mfu 0.4 --generate-mfu 0.2]

Measures (best of a few calls after compiling; other processes only add time):
  1. a training step: lm.train's jitted AdamW loop (`train._run`, dropout 0.1 as HF fine-tuning),
     --batch-size rows of --seq tokens; the paper's batch of 128 is this time x 128 / batch-size
     (linear in rows: a CPU is saturated at this size already);
  2. generation: lm.generate's beam search (--beams beams, repetition penalty 3.0) continuing
     --prompts prompts of 64 tokens by 64 tokens -> seconds per 64-token block.
Then projects the paper's scale (Shumailov et al., Nature 2024: wikitext-2, ~2.4M GPT-2 tokens of
training text -> 64-token blocks; 5 epochs per generation in regime A, 10 in B; 10 trainings per
chain; every block continued by 5-beam search for the next generation; 5 chains per regime), from
  - this CPU's measured times, and
  - FLOPs on a GPU: training 6 N per token (Kaplan et al. 2020; N = the matmul parameters,
    non-embedding plus the tied head V e) + 12 L T d for attention; generation 2 N + 4 L T d per
    token the model reads (the prompt once per block, every generated token once per beam), at an
    assumed share (MFU) of the GPU's peak: --gpu-peak 312e12 is an A100's dense bf16 (an H100 SXM
    gives 989e12), 40% for training and 20% for beam search (small batched decode steps are bound
    by memory and launches more than by FLOPs). The GPU/CPU speed ratio these imply is printed.
Always exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from modelcollapse import runtime
from modelcollapse.lm import generate as G, opt as O, train as T

# The paper's set-up (Shumailov et al. 2024, Methods: wikitext-2 through OPT-125m's GPT-2 BPE).
TRAIN_TOKENS = 2.4e6  # wikitext-2 training split, GPT-2 tokens (~2.09M words)
BLOCK = 64  # tokens per block: the prompt length and the continuation length
EPOCHS = {"A (no original data)": 5, "B (10% original data)": 10}
TRAININGS = 10  # generation 0 and 9 more, per chain
CHAINS = 5  # runs per regime
PAPER_BATCH = 128


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def train_step_time(model, batch_size, seq, steps):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    c = model.config
    blocks = jax.random.randint(jax.random.key(2), (max(64, batch_size), seq + 1), 0, c.vocab_size)
    hyper = {k: jnp.float32(v) for k, v in dataclasses.asdict(T.OptimizerConfig()).items()}
    # _run donates its parameters: a copy keeps the model's own arrays alive for generation.
    state = [jax.tree.map(jnp.copy, params), T.make_optimizer(T.OptimizerConfig(), 10_000).init(params), 0]

    def call():
        p, o, step = state
        p, o, losses = T._run(p, o, rest, blocks, jnp.int32(step), jnp.int32(10_000), jax.random.key(0), hyper,
                              graphdef=graphdef, batch_size=batch_size, n=1, dropout=True)
        state[:] = [p, o, step + 1]
        return losses

    start = time.perf_counter()
    first = float(call()[0])
    compile_s = time.perf_counter() - start
    assert np.isfinite(first)
    return timed(call, steps), compile_s


def generation_time(model, prompts, beams, repeats):
    _, decode_fn = O.model_fns(model)
    decoder = G.Decoder(state=nnx.state(model), decode_fn=decode_fn, init_cache=functools.partial(O.init_cache, model))
    run = lambda: G.generate(decoder, prompts, max_new_tokens=BLOCK, mode="beam", num_beams=beams,
                             repetition_penalty=3.0, progress=False)
    start = time.perf_counter()
    out = run()
    compile_s = time.perf_counter() - start
    assert out.shape == (len(prompts), BLOCK)
    return timed(run, repeats), compile_s


def matmul_params(c: O.OPTConfig) -> int:
    """N of 6 N: all parameters but the position table (a lookup); the token embedding stays, as
    the tied head multiplies by it (its input-side lookup costs nothing)."""
    return O.param_count(c) - (c.max_position_embeddings + O.POSITION_OFFSET) * c.hidden_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--gpu-peak", type=float, default=312e12)
    parser.add_argument("--train-mfu", type=float, default=0.4)
    parser.add_argument("--generate-mfu", type=float, default=0.2)
    args = parser.parse_args(argv)
    runtime.configure("cpu")
    c = O.OPTConfig()  # facebook/opt-125m
    print(f"# OPT-125m ({O.param_count(c):,} parameters, random weights) on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs visible, jax {jax.__version__} {jax.default_backend()}; machine shared with other jobs")
    model = O.OPT(c, rngs=nnx.Rngs(0))
    step_s, step_compile = train_step_time(model, args.batch_size, args.seq, args.steps)
    prompts = np.random.default_rng(0).integers(4, 50265, (args.prompts, BLOCK)).astype(np.int32)
    gen_s, gen_compile = generation_time(model, prompts, args.beams, 2)
    tokens = args.batch_size * args.seq
    rows = [("train step", f"{args.batch_size} x {args.seq} tok", step_s, step_compile, f"{tokens / step_s:,.0f} tok/s"),
            ("  at batch 128 (scaled)", f"{PAPER_BATCH} x {args.seq} tok", step_s * PAPER_BATCH / args.batch_size, None, ""),
            (f"beam {args.beams}, penalty 3", f"{args.prompts} prompts x {BLOCK}", gen_s, gen_compile,
             f"{gen_s / args.prompts:.2f} s/block")]
    print(f"\n{'measured (CPU)':28s} {'size':22s} {'seconds':>9s} {'compile s':>10s}  rate")
    for name, size, s, comp, rate in rows:
        print(f"{name:28s} {size:22s} {s:9.2f} {'' if comp is None else f'{comp:10.1f}':>10s}  {rate}")

    # -- the paper's scale
    n, L, d = matmul_params(c), c.num_hidden_layers, c.hidden_size
    blocks = TRAIN_TOKENS / BLOCK
    train_flop_tok = 6 * n + 12 * L * BLOCK * d  # sequence of one 64-token block
    avg_ctx = 1.5 * BLOCK  # generated tokens attend to 64..127 positions
    gen_flop_block = (2 * n + 4 * L * BLOCK / 2 * d) * BLOCK + (2 * n + 4 * L * avg_ctx * d) * BLOCK * args.beams
    cpu_train_tok = step_s / tokens  # s per training token
    cpu_gen_block = gen_s / args.prompts
    gpu_train_tok = train_flop_tok / (args.gpu_peak * args.train_mfu)
    gpu_gen_block = gen_flop_block / (args.gpu_peak * args.generate_mfu)
    print(f"\nPaper scale: {TRAIN_TOKENS:.2g} training tokens -> {blocks:,.0f} blocks of {BLOCK}; {TRAININGS} trainings "
          f"and {TRAININGS - 1} generation passes (the last model's data is not used) per chain; {CHAINS} chains per "
          f"regime; batch {PAPER_BATCH}.")
    print(f"FLOPs: training {train_flop_tok:.3g}/token (N = {n:,} matmul parameters), generation "
          f"{gen_flop_block:.3g}/block ({args.beams} beams). GPU: peak {args.gpu_peak:.3g} FLOP/s x MFU "
          f"{args.train_mfu:.0%} (train) / {args.generate_mfu:.0%} (generate).")
    print(f"Implied GPU/CPU speed ratio: training {cpu_train_tok / gpu_train_tok:,.0f}x, "
          f"generation {cpu_gen_block / gpu_gen_block:,.0f}x (this CPU's measured times / FLOP-based GPU times).")
    print(f"Achieved on this CPU: {train_flop_tok * tokens / step_s / 1e9:.0f} GFLOP/s training, "
          f"{gen_flop_block / cpu_gen_block / 1e9:.0f} GFLOP/s beam search.")
    print(f"\nProjected wall time: one GPU (FLOP-based) per training, per generation pass, per chain, per regime; "
          f"and this CPU.")
    print(f"{'regime':24s} {'training':>9s} {'gen pass':>9s} {'chain':>9s} {'5 chains':>9s} {'CPU, 5 chains':>14s}")
    total_gpu = total_cpu = 0.0
    for regime, epochs in EPOCHS.items():
        train_tokens = epochs * blocks * BLOCK
        t_gpu, g_gpu = train_tokens * gpu_train_tok, blocks * gpu_gen_block
        t_cpu, g_cpu = train_tokens * cpu_train_tok, blocks * cpu_gen_block
        chain_gpu = TRAININGS * t_gpu + (TRAININGS - 1) * g_gpu
        chain_cpu = TRAININGS * t_cpu + (TRAININGS - 1) * g_cpu
        total_gpu += CHAINS * chain_gpu
        total_cpu += CHAINS * chain_cpu
        print(f"{regime:24s} {t_gpu / 60:8.1f}m {g_gpu / 60:8.1f}m {chain_gpu / 3600:8.2f}h {CHAINS * chain_gpu / 3600:8.2f}h "
              f"{CHAINS * chain_cpu / 86400:12.0f} d")
    print(f"{'both regimes':24s} {'':9s} {'':9s} {'':9s} {total_gpu / 3600:8.2f}h {total_cpu / 86400:12.0f} d")
    print("(GPU columns: FLOP-based on one GPU at the stated MFU; data loading, evaluation and checkpoints not "
          "counted. CPU: this machine's measured rates.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
