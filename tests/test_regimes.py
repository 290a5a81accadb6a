"""Data regimes: definitions, subset samplers, and the Gaussian chains against a numpy reference
that replays the same random draws (so every regime is checked exactly, not only in distribution)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from modelcollapse import gaussian, metrics, regimes
from modelcollapse.regimes import Regime

Z = 4.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="resample"), "regime name"),
    (dict(name="mix", real_fraction=1.5), "real_fraction"),
    (dict(name="mix", real_fraction=-0.1), "real_fraction"),
    (dict(name="mix", real_fraction=0.5, real_source="web"), "real_source"),
    (dict(name="accumulate", real_fraction=0.5), "only to 'mix'"),
])
def test_bad_regimes_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Regime(**kwargs)


def test_from_config_and_labels():
    assert Regime.from_config("accumulate") == Regime(name="accumulate")
    mix = Regime.from_config({"name": "mix", "real_fraction": 0.1, "real_source": "fresh"})
    assert mix.label == "mix0.1-fresh"
    with pytest.raises(ValueError, match="unknown regime key"):
        Regime.from_config({"name": "mix", "fraction": 0.1})


@pytest.mark.parametrize("regime,m,expected", [
    (Regime(), 100, (0, 100)), (Regime(name="mix", real_fraction=0.1), 100, (10, 90)),
    (Regime(name="mix", real_fraction=1.0), 7, (7, 0)), (Regime(name="mix", real_fraction=0.5), 5, (3, 2)),
])
def test_split_sizes(regime, m, expected):
    assert regimes.split_sizes(regime, m) == expected


def test_training_sizes_per_generation():
    acc, sub, rep = Regime(name="accumulate"), Regime(name="accumulate_subsample"), Regime()
    assert [regimes.training_size(acc, sample_size=10, n_original=10, generation=g) for g in range(4)] == [10, 10, 20, 30]
    assert [regimes.training_size(sub, sample_size=10, n_original=10, generation=g) for g in range(4)] == [10] * 4
    assert [regimes.training_size(rep, sample_size=10, n_original=10, generation=g) for g in range(4)] == [10] * 4


def test_uniform_subset_is_a_uniform_set():
    n, k, reps = 12, 5, 20_000
    keys = jax.random.split(jax.random.key(0), reps)
    idx = np.asarray(jax.vmap(lambda key: regimes.uniform_subset(key, n, k))(keys))
    assert idx.min() >= 0 and idx.max() < n
    assert all(len(set(row)) == k for row in idx)  # without replacement
    counts = np.bincount(idx.ravel(), minlength=n)
    p = k / n  # each element is in the subset with probability k/n
    assert np.all(np.abs(counts - reps * p) < Z * np.sqrt(reps * p * (1 - p)))


def test_subsample_counts_is_hypergeometric():
    counts = jnp.array([6, 0, 3, 1])
    keys = jax.random.split(jax.random.key(1), 20_000)
    sub = np.asarray(jax.vmap(lambda key: regimes.subsample_counts(key, counts, 4))(keys))
    assert np.all(sub.sum(axis=1) == 4) and np.all(sub <= np.asarray(counts))
    mean, se = metrics.mean_and_se(sub)
    expected = 4 * np.asarray(counts) / 10
    assert np.all(np.abs(mean - expected) <= Z * se + 1e-12)


def test_append_writes_at_the_end():
    pool, size = regimes.append(jnp.zeros(6), jnp.int32(2), jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(pool, [0, 0, 1, 2, 0, 0])
    assert int(size) == 4


_subset = jax.jit(regimes.uniform_subset, static_argnums=2)


@jax.jit
def _classic_normal(key):
    with jax.threefry_partitionable(False):
        return jax.random.normal(key, (10,))


def _reference(seed, r, *, m, generations, regime, ddof=1):
    """The regime written out plainly in numpy float64, replaying the chain's draws."""
    key = jax.random.fold_in(jax.random.key(seed), r)
    n_real, n_syn = regimes.split_sizes(regime, m)
    mean, std, pool, original, out = 0.0, 1.0, np.zeros(0), None, []
    for g in range(generations):
        kg = jax.random.fold_in(key, g)
        assert m == 10, "the jitted helper draws 10 points"
        z = np.asarray(_classic_normal(kg), np.float64)
        x = mean + std * z
        original = x if g == 0 else original
        if regime.name == "replace":
            train = x
        elif regime.name == "accumulate":
            pool = np.concatenate([pool, x])
            train = pool
        elif regime.name == "accumulate_subsample":
            pool = np.concatenate([pool, x])
            train = pool[np.asarray(_subset(jax.random.fold_in(kg, 2), len(pool), m))]
        elif g == 0:
            train = x
        else:
            k_real = jax.random.fold_in(kg, 1)
            real = (original[np.asarray(_subset(k_real, m, n_real))] if regime.real_source == "original"
                    else np.asarray(jax.random.normal(k_real, (n_real,)), np.float64))
            train = np.concatenate([real[:n_real], x[:n_syn]])
        mean, std = train.mean(), train.std(ddof=ddof)
        out.append((mean, std))
    return np.array(out)


@pytest.mark.parametrize("regime", [
    Regime(), Regime(name="accumulate"), Regime(name="accumulate_subsample"),
    Regime(name="mix", real_fraction=0.3), Regime(name="mix", real_fraction=0.3, real_source="fresh"),
    Regime(name="mix", real_fraction=1.0), Regime(name="mix", real_fraction=0.0),
], ids=lambda r: r.label)
def test_gaussian_regimes_match_numpy_reference(regime):
    sim = gaussian.simulate(11, sample_size=10, generations=8, replicates=3, regime=regime)
    for r in range(3):
        ref = _reference(11, r, m=10, generations=8, regime=regime)
        np.testing.assert_allclose(sim.mean[r, 1:], ref[:, 0], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(sim.std[r, 1:], ref[:, 1], rtol=2e-4)


def test_mix_with_only_original_data_never_drifts():
    sim = gaussian.simulate(2, sample_size=20, generations=50, replicates=8,
                            regime=Regime(name="mix", real_fraction=1.0))
    first_fit = (np.broadcast_to(sim.mean[:, 1:2], (8, 50)), np.broadcast_to(sim.std[:, 1:2], (8, 50)))
    np.testing.assert_allclose(sim.mean[:, 1:], first_fit[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sim.std[:, 1:], first_fit[1], rtol=1e-5)


@pytest.mark.parametrize("sampler", ["points", "stats"])
def test_mix_with_only_fresh_data_stays_at_one_sample_error(sampler):
    m, n, reps = 20, 40, 20_000
    sim = gaussian.simulate(3, sample_size=m, generations=n, replicates=reps, sampler=sampler,
                            regime=Regime(name="mix", real_fraction=1.0, real_source="fresh"))
    est, se = metrics.mean_and_se(sim.mean[:, n] ** 2)  # every generation refits M fresh points
    assert abs(est - 1 / m) < Z * se


def test_accumulate_bounds_the_drift_that_replace_does_not():
    kwargs = dict(sample_size=20, generations=200, replicates=2000)
    w2 = {}
    for name in ("replace", "accumulate", "accumulate_subsample"):
        sim = gaussian.simulate(4, regime=Regime(name=name), **kwargs)
        w2[name] = np.mean(sim.mean[:, -1] ** 2 + (sim.std[:, -1] - 1) ** 2)
    # accumulate: Var mu_n -> (pi^2/6)/M (Gerstgrasser et al.); replace: E W2^2 = n/M + 2(1 - c^n) ~ 11.6
    assert w2["accumulate"] < 3 * (np.pi**2 / 6) / 20
    assert w2["accumulate_subsample"] < w2["replace"] / 3


def test_stats_sampler_runs_accumulate_but_refuses_point_subsets():
    gaussian.simulate(0, sample_size=10, generations=3, replicates=2, sampler="stats",
                      regime=Regime(name="accumulate"))
    with pytest.raises(ValueError, match="needs sampler 'points'"):
        gaussian.simulate(0, sample_size=10, generations=3, replicates=2, sampler="stats",
                          regime=Regime(name="accumulate_subsample"))


def test_metadata_round_trips_every_regime():
    for r in [Regime(), Regime(name="accumulate"), Regime(name="accumulate_subsample"),
              Regime(name="mix", real_fraction=0.25, real_source="fresh")]:
        meta = regimes.metadata(r, index0="truth")
        assert regimes.from_metadata(meta) == r and meta["regime_label"] == r.label and meta["index0"] == "truth"
    old = {"regime": "mix", "real_fraction": 0.1, "real_source": "original"}  # a file from before regime_params
    assert regimes.from_metadata(old) == Regime(name="mix", real_fraction=0.1)
    with pytest.raises(ValueError, match="index0 must be one of"):
        regimes.metadata(Regime(), index0="first fit")


def test_stats_sampler_mix_matches_a_replay_of_its_draws():
    # The stats sampler's mix, written plainly in float64 on the chain's own draws of sufficient
    # statistics: round(f M) fresh real points (f M = 2.5 rounds up to 3), the rest from the model.
    sizes, f, generations = [10] * 6 + [14] * 6, 0.25, 12
    run = gaussian.simulate(4, sample_size=sizes, generations=generations, replicates=2, sampler="stats",
                            regime=Regime(name="mix", real_fraction=f, real_source="fresh"))
    draw = jax.jit(gaussian._draw_stats)

    def stats(key, n, mean=0.0, std=1.0):
        k, z_mean, z_m2 = (np.float64(v) for v in draw(key, jnp.float32(n)))
        return k, mean + std * z_mean, std * std * z_m2

    def combine(a, b):
        n = a[0] + b[0]
        delta = b[1] - a[1]
        return n, a[1] + delta * b[0] / n, a[2] + b[2] + delta * delta * a[0] * b[0] / n

    for r in range(2):
        key = jax.random.fold_in(jax.random.key(4), r)
        mean, std = 0.0, 1.0
        for g, m in enumerate(sizes):
            kg = jax.random.fold_in(key, g)
            n_real = int(np.floor(f * m + 0.5))
            train = stats(kg, m) if g == 0 else combine(stats(jax.random.fold_in(kg, 1), n_real),
                                                         stats(jax.random.fold_in(kg, 3), m - n_real, mean, std))
            mean, std = train[1], np.sqrt(train[2] / (train[0] - 1))
            np.testing.assert_allclose([run.mean[r, g + 1], run.std[r, g + 1]], [mean, std], rtol=2e-4, atol=2e-5)
