"""A regime written once (examples/replay: a share of each training set replayed from everything
seen) runs in every family through the one mechanism: bit for bit equal to the built-in regime it
reduces to, the training sets composed as defined, an exact NumPy replay in the discrete family,
refused with a reason where a representation cannot run it, and found through entry points."""

import sys
import textwrap

import jax
import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
import examples.replay.replay  # noqa: E402, F401  (registers 'replay')
from modelcollapse import discrete, family, gaussian, gmm, regimes  # noqa: E402
from modelcollapse.lm import experiment as lm_experiment  # noqa: E402
from modelcollapse.regimes import Regime  # noqa: E402
from test_discrete import _subset, _uniform_index  # noqa: E402  (the replay's samplers)
from test_extend import N0, TG, TM, TR, TRACER, tracer  # noqa: E402

Z = 5.0
SUBSAMPLE = Regime(name="accumulate_subsample")


def replay(f: float) -> Regime:
    return Regime.from_config({"name": "replay", "replay_fraction": f})


def test_the_regime_is_a_regime_of_every_config():
    r = replay(0.3)
    assert r.label == "replay-replay_fraction0.3" and regimes.needs(r) == {"pool", "pool_subset"}
    assert regimes.spec({"name": "replay", "replay_fraction": 0.3}) == ("replay", (("replay_fraction", 0.3),))
    with pytest.raises(ValueError, match="unknown regime 'resample'"):
        regimes.spec("resample")


@pytest.mark.parametrize("run", [
    lambda r: gaussian.simulate(1, sample_size=12, generations=15, replicates=6, regime=r, sampler="points").mean,
    lambda r: discrete.simulate(2, probs=discrete.zipf(9, 1.0), sample_size=14, generations=10, replicates=4,
                                regime=r).counts,
    lambda r: gmm.simulate(3, data="two_blobs", sample_size=40, generations=4, replicates=2, regime=r).means,
    lambda r: tracer(r)["mean"],
], ids=["gaussian", "discrete", "gmm", "family"])
def test_replaying_everything_is_accumulate_subsample_bit_for_bit(run):
    np.testing.assert_array_equal(run(replay(1.0)), run(SUBSAMPLE))


def test_replaying_nothing_is_replace_bit_for_bit():
    for name in ("count", "real", "oldest", "level", "mean"):
        np.testing.assert_array_equal(tracer(replay(0.0))[name], tracer("replace")[name])
    g = {r.label: gaussian.simulate(1, sample_size=12, generations=15, replicates=6, regime=r, sampler="points")
         for r in (replay(0.0), Regime())}
    np.testing.assert_array_equal(g["replay-replay_fraction0"].std, g["replace"].std)


def test_training_sets_replay_a_uniform_share_of_the_pool():
    # Model j >= 2 trains on M points: round(0.4 M) = 2 uniform from the pool of N0 + (j-1) M
    # points (so the original ones among them are hypergeometric) and M - 2 from model j - 1.
    run = tracer(replay(0.4))
    assert np.all(run["count"][:, 2:] == TM)
    for j in range(2, TG + 1):
        pool, n_old = N0 + (j - 1) * TM, 2
        p = N0 / pool
        mean, var = n_old * p, n_old * p * (1 - p) * (pool - n_old) / (pool - 1)
        assert abs(run["real"][:, j].mean() - mean) < Z * np.sqrt(var / TR), j
        assert np.all(run["level"][:, j] == j)  # the newest points are model j - 1's
    assert run["oldest"][:, TG].min() == 0  # the original data can still be replayed at the end


def _discrete_replay(seed, r, *, probs, m, generations, f):
    """The replay regime written plainly in numpy on the chain's own draws: the pool of counts,
    round(f M) of it by the subset key, then the first M - round(f M) of this generation's draws."""
    key = jax.random.fold_in(jax.random.key(seed), r)
    weights, k = discrete.integer_weights(probs), len(probs)
    count = lambda s: np.bincount(s, minlength=k)  # noqa: E731
    symbols = np.searchsorted(np.cumsum(weights), np.asarray(_uniform_index(jax.random.fold_in(key, 0), 2**30, m)),
                              side="right")
    pool = train = count(symbols)
    n_old = int(np.floor(f * m + 0.5))
    out = [train]
    for g in range(1, generations):
        kg = jax.random.fold_in(key, g)
        drawn = np.repeat(np.arange(k), train)[np.asarray(_uniform_index(kg, m, m))]
        pool = pool + count(drawn)
        old = np.repeat(np.arange(k), pool)[np.asarray(_subset(jax.random.fold_in(kg, 2), int(pool.sum()), n_old))]
        train = count(np.concatenate([old, drawn[: m - n_old]]))
        out.append(train)
    return np.stack(out)


def test_discrete_chain_matches_a_numpy_replay():
    q = discrete.zipf(7, 1.0)
    run = discrete.simulate(5, probs=q, sample_size=12, generations=9, replicates=3, regime=replay(0.25))
    for r in range(3):
        np.testing.assert_array_equal(run.counts[r], _discrete_replay(5, r, probs=q, m=12, generations=9, f=0.25))


def test_host_families_compose_the_same_sets():
    # The LM's blocks: round(0.25 * 40) = 10 pool blocks (in pool order), then the first 30 continuations.
    original = np.arange(40 * 4, dtype=np.int32).reshape(40, 4)
    conts = [-(g + 1) * np.ones((40, 4), np.int32) for g in range(3)]
    blocks = lm_experiment.training_blocks(2, replay(0.25), original, conts, jax.random.key(0))
    pool = np.concatenate([original] + conts[:2])
    assert blocks.shape == (40, 4)
    assert {tuple(b) for b in blocks[:10]} <= {tuple(b) for b in pool} and np.all(blocks[10:] == -2)
    k = jax.random.fold_in(jax.random.key(0), lm_experiment._SUBSET)
    np.testing.assert_array_equal(blocks[:10], pool[np.sort(np.asarray(regimes.uniform_subset(k, 120, 10)))])


def test_representations_that_cannot_replay_refuse_before_any_work():
    with pytest.raises(ValueError, match="uniform subsets of the pool .* sampler 'stats'"):
        gaussian.simulate(0, sample_size=[10, 20, 30], generations=3, replicates=2, regime=replay(0.5))
    from modelcollapse.vae import experiment as vae_experiment
    with pytest.raises(ValueError, match="pooling needs synthetic: fixed"):
        vae_experiment.check_regime(replay(0.5), "fresh")
    vae_experiment.check_regime(replay(0.5), "fixed")
    with pytest.raises(ValueError, match="replay replay_fraction: 2 is greater than the maximum of 1"):
        family.simulate(TRACER, 0, sample_size=4, generations=2, replicates=1,
                        regime={"name": "replay", "replay_fraction": 2})


def test_installed_packages_register_regimes_through_entry_points(tmp_path, monkeypatch):
    (tmp_path / "halfpool_regime.py").write_text(textwrap.dedent("""
        from modelcollapse import regimes

        def halfpool(x):
            return x.ops.subset(x.subset_key, x.pool, x.m // 2)

        regimes.register("halfpool", halfpool, needs={"pool", "pool_subset"})
    """))
    info = tmp_path / "halfpool_regime-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: halfpool-regime\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[modelcollapse.regimes]\nhalfpool = halfpool_regime\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(regimes, "_loaded_entry_points", False)
    regime = Regime.from_config({"name": "halfpool"})  # found without importing the module here
    assert "halfpool" in regimes.registered()
    run = tracer(regime)
    assert np.all(run["count"][:, 2:] == TM // 2)


def test_result_metadata_carries_the_parameters():
    meta = regimes.metadata(replay(0.3), index0="truth")
    assert meta["regime_params"] == '{"replay_fraction": 0.3}' and regimes.from_metadata(meta) == replay(0.3)
