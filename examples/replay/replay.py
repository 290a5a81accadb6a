"""A new data regime, written once, that every family runs: experience replay.

What it models: a practitioner who retrains on mostly fresh model output but keeps a replay
buffer, drawing a share of each training set uniformly from everything ever seen (the original
data included). replay_fraction = 0 is `replace` (Shumailov et al. 2024); replay_fraction = 1 is
`accumulate_subsample` (Kazdan et al. 2024). In between, the training set has M points: round(f M)
drawn without replacement from the pool of the original data and every generation's samples so
far, and the first M - round(f M) samples of the latest model.

It is written only with the set operations of `modelcollapse.regimes` (subset, union, head), so it
runs in every family whose data representation offers a pool and its subsets: the theory-sized
families (`family.simulate`), the Gaussian's points sampler, the discrete counts, the GMM, the
VAE's fixed synthetic sets and the language model's blocks. Usage: `import examples.replay.replay`
once (it registers 'replay'), then `regime={"name": "replay", "replay_fraction": 0.3}` in any
family's `simulate` or config block.
"""

from __future__ import annotations

from modelcollapse import regimes


def replay(x: regimes.RegimeInputs, *, replay_fraction: float):
    n_old, n_new = regimes.mix_sizes(replay_fraction, x.m)  # round(f M) from the pool, the rest new
    if n_old == 0:
        return x.ops.head(x.latest, n_new)
    old = x.ops.subset(x.subset_key, x.pool, n_old)
    return old if n_new == 0 else x.ops.union(old, x.ops.head(x.latest, n_new))


regimes.register("replay", replay, needs={"pool", "pool_subset"}, parameters={
    "replay_fraction": {"description": "Share of each training set replayed from the pool (0: replace; "
                                       "1: accumulate_subsample).", "type": "number", "minimum": 0, "maximum": 1}})
