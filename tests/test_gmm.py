"""Gaussian-mixture EM chains: EM against scikit-learn (the reference) and its own invariants, the
closed-form L2 distance against quadrature and Monte Carlo, degenerate data, the chains' regimes,
engines, shapes, determinism and compilation, and the CLI (fixed seeds; tolerances derived below)."""

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from modelcollapse import gmm, io
from modelcollapse.gmm import engines
from modelcollapse import regimes as regimes_mod
from modelcollapse.regimes import Regime
from modelcollapse.runtime import replicate_keys
from modelcollapse.theory import gmm as theory

Z = 4.0  # Monte-Carlo tolerance in standard errors
EPS32 = float(np.finfo(np.float32).eps)
N = 1000  # the paper's sample size, for the EM checks


def _data(name, n=N, seed=3):
    """n float64 points from a named data set (drawn with our sampler; scikit-learn only reads them)."""
    return np.asarray(gmm.sample(jax.random.key(seed), gmm.truth(name), n), np.float64)


def _sklearn(x, params, *, tol, max_iter, reg_covar=1e-6):
    """scikit-learn's GaussianMixture from the same starting parameters."""
    mixture = pytest.importorskip("sklearn.mixture")
    w = np.asarray(params.weights, np.float64)
    model = mixture.GaussianMixture(len(w), covariance_type="full", tol=tol, max_iter=max_iter, reg_covar=reg_covar,
                                    weights_init=w / w.sum(), means_init=np.asarray(params.means, np.float64),
                                    precisions_init=np.linalg.inv(np.asarray(params.covs, np.float64)))
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # One BLAS/OpenMP thread: on a busy 2-core machine more threads made each EM step ~10x slower.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # tol=0 never converges, by design here
        return model.fit(x)


def _matched(ours, theirs):
    """Our components reordered to scikit-learn's labels (the permutation closest in means)."""
    order = [int(np.argmin(np.sum((np.asarray(ours.means) - m) ** 2, -1))) for m in theirs.means_]
    assert sorted(order) == list(range(len(order))), "components do not pair up"
    return [np.asarray(a)[order] for a in (ours.weights, ours.means, ours.covs)]


# -- EM against scikit-learn


@pytest.mark.parametrize("data", ["blob", "two_blobs"])
def test_em_iterates_equal_sklearn_in_float64(data):
    # The same algorithm, step for step: 25 iterations from the same start (tol=0 never stops early).
    # In float64 the only difference is summation order, ~1e-15 here; 1e-9 leaves room and still
    # catches any change of formula (a missing reg_covar alone is 1e-6).
    x = _data(data)
    start = gmm.GMMParams(*(np.asarray(a, np.float64) for a in gmm.initialize(jax.random.key(0), x, 2)))
    with jax.enable_x64(True):
        ours = gmm.fit(None, x, 2, tol=0.0, max_iter=25, init_weights=start.weights, init_means=start.means,
                       init_covs=start.covs)
    ref = _sklearn(x, start, tol=0.0, max_iter=25)
    assert int(ours.n_iter) == ref.n_iter_ == 25
    for a, b in zip((ours.weights, ours.means, ours.covs), (ref.weights_, ref.means_, ref.covariances_)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert abs(float(ours.log_likelihood) - ref.lower_bound_) < 1e-12


@pytest.mark.parametrize("data,seed", [("blob", 0), ("blob", 1), ("two_blobs", 0)])
def test_converged_float32_fit_agrees_with_sklearn(data, seed):
    # The paper's tolerance and cap, float32 against scikit-learn's float64 from the same start.
    x = _data(data, seed=seed + 10)
    start = gmm.initialize(jax.random.key(seed), x.astype(np.float32), 2)
    ours = gmm.fit(jax.random.key(seed), x.astype(np.float32), 2, tol=1e-5, max_iter=2000)
    ref = _sklearn(x, start, tol=1e-5, max_iter=2000)
    score = float(gmm.score(x, ours[:3]))
    assert abs(score - ref.score(x)) < 1e-4 * abs(ref.score(x))  # the criterion
    # Parameters: both stop where the change falls below tol; float32 rounding may move that stop
    # by an iteration (two EM steps from one blob split it along a flat ridge, so an iteration
    # moves the means ~1e-3). Bound: how far scikit-learn's own iterates move within 2 iterations
    # of its stop, plus float32 rounding (1e-5 of unit-scale parameters).
    assert abs(int(ours.n_iter) - ref.n_iter_) <= 2
    near = [_sklearn(x, start, tol=0.0, max_iter=ref.n_iter_ + d) for d in (-2, 2) if ref.n_iter_ + d >= 1]
    fields = ("weights_", "means_", "covariances_")
    travel = max(np.abs(getattr(m, f) - getattr(ref, f)).max() for m in near for f in fields)
    for a, f in zip(_matched(ours, ref), fields):
        np.testing.assert_allclose(a, getattr(ref, f), rtol=0, atol=travel + 1e-5)


def test_initialize_matches_fit_start():
    # fit(key, x) starts where initialize(key, x) says: a fit from the explicit start is the same fit.
    x = _data("two_blobs").astype(np.float32)
    start = gmm.initialize(jax.random.key(5), x, 2)
    a = gmm.fit(jax.random.key(5), x, 2)
    b = gmm.fit(None, x, 2, init_weights=start.weights, init_means=start.means, init_covs=start.covs)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


# -- EM's own invariants


@pytest.mark.parametrize("data,init", [("blob", "kmeans++"), ("blob", "random"), ("two_blobs", "random")])
def test_em_never_decreases_the_log_likelihood(data, init):
    # EM's monotonicity. reg_covar moves each M-step off the exact maximiser by O(reg^2 ||P||^2)
    # ~1e-12 and float64 sums add ~N eps |ll| ~ 1e-12, so decreases must stay below 1e-10.
    x = _data(data)
    params = gmm.GMMParams(*(np.asarray(a, np.float64) for a in gmm.initialize(jax.random.key(1), x, 2, init=init)))
    with jax.enable_x64(True):
        w = jnp.ones(len(x))
        lls = []
        step = jax.jit(gmm.em_step)
        for _ in range(60):
            params, ll = step(x, w, params, 1e-6)
            lls.append(float(ll))
    lls = np.array(lls)
    assert np.all(np.diff(lls) > -1e-10), np.diff(lls).min()
    assert lls[-1] - lls[0] > 1e-5  # it climbed by far more than the tolerance: the check is not vacuous


def test_em_log_likelihood_float32_is_monotone_up_to_rounding():
    # float32 sums of N terms carry ~sqrt(N) eps |ll| of rounding; allow 4 times that.
    x = _data("two_blobs").astype(np.float32)
    params = gmm.initialize(jax.random.key(2), x, 2, init="random")
    lls, step = [], jax.jit(gmm.em_step)
    for _ in range(40):
        params, ll = step(x, np.ones(len(x), np.float32), params, 1e-6)
        lls.append(float(ll))
    assert np.all(np.diff(lls) > -4 * np.sqrt(N) * EPS32 * abs(lls[-1]))


def test_point_weights_act_as_multiplicities():
    # Weight 0 drops a point and weight 2 counts it twice: the accumulate regime's padded pool relies on it.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 2))
    w = rng.integers(0, 3, 300).astype(np.float64)
    expanded = np.repeat(x, w.astype(int), axis=0)
    start = gmm.GMMParams(np.array([0.5, 0.5]), np.array([[-0.5, 0.0], [0.5, 0.0]]), np.stack([np.eye(2)] * 2))
    with jax.enable_x64(True):
        kw = dict(tol=0.0, max_iter=20, init_weights=start.weights, init_means=start.means, init_covs=start.covs)
        weighted, plain = gmm.fit(None, x, 2, weights=w, **kw), gmm.fit(None, expanded, 2, **kw)
    for a, b in zip(weighted, plain):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# -- degenerate data


def test_all_points_equal_gives_the_covariance_floor_not_nan():
    x = np.full((50, 2), 3.0, np.float32)
    f = gmm.fit(jax.random.key(0), x, 2, reg_covar=1e-6)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in f)
    # Every covariance is at least the floor; the component holding the points is exactly the floor.
    # (The other one is empty: weight ~10 eps, its mean and spread set by scikit-learn's eps guard.)
    assert np.all(np.linalg.eigvalsh(np.asarray(f.covs, np.float64)) >= 1e-6 * (1 - 1e-3))
    main = int(np.argmax(f.weights))
    np.testing.assert_allclose(f.covs[main], 1e-6 * np.eye(2), rtol=1e-3, atol=1e-10)
    np.testing.assert_allclose(f.means[main], [3.0, 3.0], rtol=1e-6)
    assert float(f.weights[main]) > 1 - 1e-6
    # The density of N(x, 1e-6 I) at x: -log(2 pi 1e-6).
    np.testing.assert_allclose(float(gmm.score(x, f[:3])), -np.log(2 * np.pi * 1e-6), rtol=1e-4)
    assert np.all(np.isfinite(np.asarray(gmm.sample(jax.random.key(1), f[:3], 10))))


def test_points_on_a_line_stay_finite_and_above_the_floor():
    x = np.stack([np.linspace(-1, 1, 50), np.linspace(-1, 1, 50)], 1).astype(np.float32)  # rank-1 data
    for init in gmm.INITS:
        f = gmm.fit(jax.random.key(0), x, 2, init=init)
        assert all(np.all(np.isfinite(np.asarray(a))) for a in f), init
        assert np.all(np.linalg.eigvalsh(np.asarray(f.covs, np.float64)) > 0.5e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=np.zeros((1, 2)), n_components=2), "n_components"),
    (dict(x=np.zeros((5, 2)), n_components=0), "n_components"),
    (dict(x=np.zeros(5), n_components=1), r"\[N, d\]"),
    (dict(x=np.zeros((5, 2)), n_components=2, reg_covar=0.0), "reg_covar"),
    (dict(x=np.zeros((5, 2)), n_components=2, tol=-1.0), "tol"),
    (dict(x=np.zeros((5, 2)), n_components=2, max_iter=0), "max_iter"),
    (dict(x=np.zeros((5, 2)), n_components=2, init="kmeans"), "init"),
    (dict(x=np.zeros((5, 2)), n_components=2, weights=np.ones(4)), "weights"),
    (dict(x=np.zeros((5, 2)), n_components=2, init_means=np.zeros((2, 2))), "together"),
])
def test_fit_rejects_bad_arguments_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmm.fit(jax.random.key(0), **kwargs)


# -- the closed-form L2 distance


def _random_mixture(rng, k, scale=1.0):
    a = rng.normal(size=(k, 2, 2)) * 0.6
    return gmm.GMMParams(rng.dirichlet(np.ones(k)), rng.normal(size=(k, 2)) * scale,
                         a @ np.swapaxes(a, -1, -2) + 0.2 * np.eye(2))


def _density(mix, pts):
    return sum(w * stats.multivariate_normal(m, c).pdf(pts) for w, m, c in zip(*mix))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_closed_form_matches_quadrature(seed):
    rng = np.random.default_rng(seed)
    p, q = _random_mixture(rng, 2), _random_mixture(rng, 3)

    def grid_l2(h):
        axis = np.arange(-9, 9 + h / 2, h)
        xx, yy = np.meshgrid(axis, axis, indexing="ij")
        pts = np.stack([xx.ravel(), yy.ravel()], 1)
        return np.sum((_density(p, pts) - _density(q, pts)) ** 2) * h * h

    coarse, fine = grid_l2(0.1), grid_l2(0.05)
    exact = float(theory.l2_squared(p, q))
    # The grid sum of a smooth, fast-decaying integrand converges fast; its error is bounded by the
    # coarse-to-fine change. A wrong formula (e.g. a missing factor 2 on <p, q>) is off by O(1).
    assert abs(exact - fine) <= max(abs(coarse - fine), 1e-12 * exact) + 1e-10
    assert exact > 1e-3


def test_l2_closed_form_matches_monte_carlo():
    # int (p - q)^2 = E_p[p - q] - E_q[p - q]; tolerance Z standard errors of the two sample means.
    rng = np.random.default_rng(7)
    p, q = _random_mixture(rng, 2, 2.0), _random_mixture(rng, 2, 2.0)
    n = 200_000

    def draws(mix):
        comp = rng.choice(len(mix.weights), size=n, p=mix.weights)
        chol = np.linalg.cholesky(mix.covs)[comp]
        return mix.means[comp] + np.einsum("nij,nj->ni", chol, rng.normal(size=(n, 2)))

    fp, fq = (_density(p, x) - _density(q, x) for x in (draws(p), draws(q)))
    est = fp.mean() - fq.mean()
    se = np.sqrt(fp.var() / n + fq.var() / n)
    assert abs(est - float(theory.l2_squared(p, q))) < Z * se


def test_l2_basic_identities():
    rng = np.random.default_rng(3)
    p, q = _random_mixture(rng, 2), _random_mixture(rng, 3)
    assert float(theory.l2_squared(p, p)) == 0.0
    np.testing.assert_allclose(theory.l2_squared(p, q), theory.l2_squared(q, p), rtol=1e-12)
    single = gmm.GMMParams(np.ones(1), np.zeros((1, 2)), np.diag([0.3, 2.0])[None])
    np.testing.assert_allclose(theory.inner_product(single, single), theory.self_inner_single(np.diag([0.3, 2.0])))
    # Batched over leading axes like the chains' [R, G+1]:
    batch = gmm.GMMParams(*(np.broadcast_to(a, (4, 3) + a.shape) for a in p))
    np.testing.assert_allclose(theory.l2_squared(batch, q), np.full((4, 3), theory.l2_squared(p, q)))


# -- chains
# Compiling a chain program takes ~5 s on a 2-core CPU, so the tests share a few shapes:
# N = 100, G = 12, R = 6, snapshots (0, 1, 5) (99 is beyond G and dropped).

SHAPE = dict(sample_size=100, generations=12, replicates=6, snapshots=(0, 1, 5, 99))


@pytest.fixture(scope="module")
def chains():
    """The shared run: two well-separated blobs, whose fits EM pins down to ~1e-6 (a single blob
    split in two has a flat ridge where a last-bit rounding difference moves a fit by ~1e-3)."""
    return gmm.simulate(0, data="two_blobs", **SHAPE)


def test_chain_shapes_dtypes_and_generation_zero(chains):
    r, g1, k = 6, 13, 2
    assert chains.weights.shape == (r, g1, k) and chains.means.shape == (r, g1, k, 2)
    assert chains.covs.shape == (r, g1, k, 2, 2) and chains.weights.dtype == np.float32
    assert chains.l2_gmm0.shape == chains.l2_truth.shape == (r, g1) and chains.l2_gmm0.dtype == np.float64
    np.testing.assert_array_equal(chains.l2_gmm0[:, 0], 0.0)
    np.testing.assert_array_equal(chains.snapshot_generations, [0, 1, 5])
    assert chains.snapshot_points.shape == (3, 100, 2)
    assert np.all(chains.converged) and np.all(chains.n_iter >= 1)
    np.testing.assert_allclose(chains.weights.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(chains.l2_truth)) and np.all(chains.l2_gmm0[:, 1:] > 0)


def test_snapshots_and_fits_follow_the_documented_keys(chains):
    # Replicate 0 rebuilt by hand: its original data, GMM_0 (the fit from the generation-0 key),
    # the draws of generation 1 (from GMM_0, generation-1 key) and GMM_1 (fit to them).
    key = jax.random.fold_in(jax.random.key(0), 0)
    k0, k1 = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    original = gmm.sample(jax.random.fold_in(k0, gmm._DRAW), gmm.truth("two_blobs"), 100)
    np.testing.assert_allclose(chains.snapshot_points[0], original, rtol=1e-6, atol=1e-6)
    fit0 = gmm.fit(jax.random.fold_in(k0, gmm._FIT), original, 2)
    np.testing.assert_allclose(chains.means[0, 0], fit0.means, rtol=1e-4, atol=1e-4)
    draws = gmm.sample(jax.random.fold_in(k1, gmm._DRAW), gmm.GMMParams(*(a[0, 0] for a in chains[:3])), 100)
    np.testing.assert_allclose(chains.snapshot_points[1], draws, rtol=1e-5, atol=1e-5)
    fit1 = gmm.fit(jax.random.fold_in(k1, gmm._FIT), draws, 2)
    np.testing.assert_allclose(chains.means[0, 1], fit1.means, rtol=1e-4, atol=1e-4)
    # The recorded log-likelihood is the last E-step's, within tol of the score at the fit.
    assert abs(chains.log_likelihood[0, 0] - float(gmm.score(original, fit0[:3]))) < 1e-4


def test_same_seed_same_numbers_other_seed_other_numbers(chains):
    again = gmm.simulate(0, data="two_blobs", **SHAPE)
    for a, b in zip(chains, again):
        np.testing.assert_array_equal(a, b)
    other = gmm.simulate(1, data="two_blobs", **SHAPE)
    assert not np.array_equal(chains.means, other.means)


def test_lockstep_engine_runs_the_same_chains(chains):
    # The async engine's bookkeeping (slots, gathers, scatters, phases) against the plain scan.
    # Same keys and arithmetic per replicate; XLA may round a reduction differently in another
    # program and a chain can amplify a last bit (it did for 1 chain in 64 over 30 generations of
    # one blob), so require agreement to rounding in most chains, and at generation 0 in all.
    lock = gmm.simulate(0, data="two_blobs", engine="lockstep", **SHAPE)
    np.testing.assert_allclose(lock.means[:, 0], chains.means[:, 0], rtol=1e-4, atol=1e-4)
    same = [np.allclose(lock.means[i], chains.means[i], rtol=1e-4, atol=1e-4)
            and np.array_equal(lock.n_iter[i], chains.n_iter[i]) for i in range(6)]
    assert np.mean(same) >= 0.8, same
    np.testing.assert_allclose(lock.snapshot_points, chains.snapshot_points, rtol=1e-4, atol=1e-4)


def test_async_engine_halving_its_prefix_runs_the_same_chains():
    # The ticks run on a prefix of the rows that holds every running chain, halved (rows reordered)
    # whenever they fit in half of it; min_rows 1: down to one row. Each chain's fits must come back
    # to its own replicate's row, and replicate 0's draws to the snapshots, wherever its row went.
    # Held to the lockstep engine, as above, and to the async engine whose prefix never halves.
    assert engines.prefix_sizes(16, 1) == (16, 8, 4, 2, 1) and engines.prefix_sizes(64) == (64, 32, 16, 8, 4)
    assert engines.prefix_sizes(6) == (6,) and engines.prefix_sizes(100, 4) == (100, 50, 25, 12, 6)
    with pytest.raises(ValueError, match="min_rows"):  # 0 would halve forever
        engines.prefix_sizes(16, 0)
    cfg = gmm.GMMConfig(sample_size=100, generations=12, replicates=16, data="two_blobs", snapshots=(0, 1, 5, 12))
    keys = replicate_keys(2, 16)
    halved, halved_snaps = engines.run_engine(keys, cfg, engine="async", slots=4, min_rows=1)
    for other, snaps in (engines.run_engine(keys, cfg, engine="async", slots=4, min_rows=16),
                         engines.run_engine(keys, cfg, engine="lockstep", slots=4)):
        np.testing.assert_allclose(other.means[:, 0], halved.means[:, 0], rtol=1e-4, atol=1e-4)
        same = [np.allclose(other.means[i], halved.means[i], rtol=1e-4, atol=1e-4)
                and np.array_equal(other.n_iter[i], halved.n_iter[i]) for i in range(16)]
        assert np.mean(same) >= 0.8, same
        np.testing.assert_allclose(snaps, halved_snaps, rtol=1e-4, atol=1e-4)
    assert np.all(halved.n_iter[:, 1:] >= 1)  # every generation of every replicate was recorded


def test_no_recompilation_on_new_seed_or_tolerances(chains):
    size = gmm._simulate_async._cache_size()
    gmm.simulate(4, data="two_blobs", tol=1e-4, max_iter=500, reg_covar=1e-5, **SHAPE)
    assert gmm._simulate_async._cache_size() == size
    x = _data("blob", n=100).astype(np.float32)
    gmm.fit(jax.random.key(0), x, 2)
    size = gmm._fit_jit._cache_size()
    gmm.fit(jax.random.key(1), x + 1.0, 2, tol=1e-3, max_iter=50, reg_covar=1e-5)
    assert gmm._fit_jit._cache_size() == size


def test_em_step_jit_matches_eager():
    x = _data("two_blobs", n=100).astype(np.float32)
    params = gmm.GMMParams(np.array([0.3, 0.7]), np.array([[-1.0, 0.0], [1.0, 0.5]]), np.stack([np.eye(2)] * 2))
    jitted = jax.jit(gmm.em_step)(x, np.ones(100, np.float32), params, 1e-6)
    with jax.disable_jit():
        eager = gmm.em_step(x, np.ones(100, np.float32), params, 1e-6)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -- regimes (two blobs, the shared shapes)


@pytest.fixture(scope="module")
def regimes():
    return {r.label: gmm.simulate(1, data="two_blobs", regime=r, **SHAPE)
            for r in (Regime(name="accumulate"), Regime(name="mix", real_fraction=1.0),
                      Regime(name="mix", real_fraction=1.0, real_source="fresh"))}


def test_accumulate_trains_on_the_growing_pool(regimes):
    # Generation 1 is a fit, from its own key, on the original data plus the N draws from GMM_0
    # (the pool's other slots weighted 0); generation g's recorded fit sees N (g + 1) points.
    sim = regimes["accumulate"]
    k1 = jax.random.fold_in(jax.random.fold_in(jax.random.key(1), 0), 1)
    pool = np.concatenate(sim.snapshot_points[:2])  # [2N, 2]: the original data, then generation 1's draws
    padded = np.concatenate([pool, np.zeros((100 * 11, 2))])  # the pool's capacity N (G + 1)
    weights = np.r_[np.ones(200), np.zeros(1100)]
    ref = gmm.fit(jax.random.fold_in(k1, gmm._FIT), padded, 2, weights=weights)
    np.testing.assert_allclose(sim.means[0, 1], ref.means, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(sim.l2_truth))


_subset = jax.jit(regimes_mod.uniform_subset, static_argnums=2)


EM_FIXED = dict(tol=0.0, max_iter=40)


def _assert_replayed(sim, seed: int, *, n: int, generations: int, replicates: int, train):
    """Every generation rebuilt from the chain's keys: N draws from the previous recorded fit, the
    pool (the original data, then every generation's draws) kept in numpy, the training set that
    `train(kg, original, pool, draws)` forms from them, and a fresh EM fit on exactly those points.
    Two well-separated blobs and a fixed iteration count (tol 0), so a last-bit difference between
    the programs cannot move where EM stops: the fits agree to rounding."""
    for r in range(replicates):
        key = jax.random.fold_in(jax.random.key(seed), r)
        k0 = jax.random.fold_in(key, 0)
        original = np.asarray(gmm.sample(jax.random.fold_in(k0, gmm._DRAW), gmm.truth("two_blobs"), n))
        pool, fit = original, gmm.fit(jax.random.fold_in(k0, gmm._FIT), original, 2, **EM_FIXED)
        for g in range(1, generations + 2):
            for name in ("means", "covs", "weights"):
                np.testing.assert_allclose(getattr(sim, name)[r, g - 1], getattr(fit, name), rtol=1e-4, atol=1e-4)
            if g > generations:
                break
            kg = jax.random.fold_in(key, g)
            previous = gmm.GMMParams(sim.weights[r, g - 1], sim.means[r, g - 1], sim.covs[r, g - 1])
            draws = np.asarray(gmm.sample(jax.random.fold_in(kg, gmm._DRAW), previous, n))
            pool = np.concatenate([pool, draws])
            fit = gmm.fit(jax.random.fold_in(kg, gmm._FIT), train(kg, original, pool, draws), 2, **EM_FIXED)


def test_replace_matches_a_numpy_replay_of_the_same_draws():
    sim = gmm.simulate(5, data="two_blobs", sample_size=60, generations=4, replicates=2, **EM_FIXED)
    _assert_replayed(sim, 5, n=60, generations=4, replicates=2, train=lambda kg, original, pool, draws: draws)


def test_accumulate_subsample_matches_a_numpy_replay_of_the_same_draws():
    # the uniform N-subset of the pool at the subset key
    n = 60
    sim = gmm.simulate(7, data="two_blobs", sample_size=n, generations=5, replicates=3,
                       regime=Regime(name="accumulate_subsample"), snapshots=(0, 1, 2), **EM_FIXED)
    _assert_replayed(sim, 7, n=n, generations=5, replicates=3, train=lambda kg, original, pool, draws: pool[
        np.asarray(_subset(jax.random.fold_in(kg, gmm._SUBSET), len(pool), n))])


@pytest.mark.parametrize("source", ["original", "fresh"])
def test_mix_matches_a_numpy_replay_of_the_same_draws(source):
    # round(0.3 N) real points (a uniform subset of the original data at the real key, or fresh
    # draws from the truth there), then the first N - round(0.3 N) draws.
    n, f = 60, 0.3
    n_real = int(np.floor(f * n + 0.5))
    sim = gmm.simulate(3, data="two_blobs", sample_size=n, generations=4, replicates=2,
                       regime=Regime(name="mix", real_fraction=f, real_source=source), **EM_FIXED)

    def train(kg, original, pool, draws):
        k_real = jax.random.fold_in(kg, gmm._REAL)
        real = (original[np.asarray(_subset(k_real, n, n_real))] if source == "original"
                else np.asarray(gmm.sample(k_real, gmm.truth("two_blobs"), n_real)))
        return np.concatenate([real, draws[: n - n_real]])

    _assert_replayed(sim, 3, n=n, generations=4, replicates=2, train=train)


def test_mix_with_only_original_data_refits_gmm0(regimes, chains):
    # Every generation refits the original two blobs (a new initialisation each time); EM finds
    # the same optimum, so GMM_g = GMM_0 up to the stopping tolerance: L2^2 far below a refit on
    # new draws (the replace chains' first step).
    sim = regimes["mix1"]
    assert np.max(sim.l2_gmm0) < 1e-3 * np.median(chains.l2_gmm0[:, 1])


def test_mix_with_only_fresh_data_does_not_drift(regimes, chains):
    # Fresh draws from the truth each generation: the distance to the truth stays at one fit's
    # error (mean over chains, generation 0 vs the last, within Z standard errors), while replace drifts.
    l2 = regimes["mix1-fresh"].l2_truth
    pooled_first, last = l2[:, :6].ravel(), l2[:, -1]  # generations 0-5 as the reference level
    se = np.sqrt(pooled_first.var(ddof=1) / pooled_first.size + last.var(ddof=1) / last.size)
    assert abs(last.mean() - pooled_first.mean()) < Z * se
    assert np.median(chains.l2_truth[:, -1]) > np.median(l2[:, -1])


# -- summaries


def test_component_scale_and_mode_mass():
    covs = np.array([np.diag([4.0, 1.0]), 0.01 * np.eye(2)])
    np.testing.assert_allclose(gmm.component_scale(covs), [np.sqrt(2.0), 0.1])
    true = gmm.truth("two_blobs").means
    weights, means = np.array([0.7, 0.3]), np.array([[-2.5, 0.1], [-3.3, 0.0]])  # both on the left blob
    np.testing.assert_allclose(gmm.mode_mass(weights, means, true), [1.0, 0.0])


def test_summarize_counts_lost_modes():
    chains = argparse.Namespace(
        weights=np.array([[[0.5, 0.5], [0.6, 0.4]], [[0.5, 0.5], [0.5, 0.5]]]),
        means=np.array([[[[-3, 0], [3, 0]], [[-3, 0], [-2.9, 0]]], [[[-3, 0], [3, 0]]] * 2], float),
        covs=np.broadcast_to(np.eye(2), (2, 2, 2, 2, 2)), l2_gmm0=np.zeros((2, 2)), l2_truth=np.ones((2, 2)),
        n_iter=np.full((2, 2), 5), converged=np.ones((2, 2), bool))
    out = gmm.summarize(chains, data="two_blobs", sample_size=100, max_iter=2000)
    np.testing.assert_allclose(out["mode_lost"], [0.0, 0.5])
    np.testing.assert_allclose(out["sigma_q50"], [1.0, 1.0])
    np.testing.assert_array_equal(out["capped"], 0.0)


@pytest.mark.parametrize("kwargs,name", [
    (dict(sample_size=1), "sample_size"),
    (dict(generations=0), "generations"),
    (dict(replicates=0), "replicates"),
    (dict(data="moons"), "data"),
    (dict(tol=float("nan")), "tol"),
    (dict(reg_covar=0.0), "reg_covar"),
    (dict(init="kmeans"), "init"),
    (dict(snapshots=(0, 0)), "snapshots"),
    (dict(engine="gpu"), "engine"),
    (dict(slots=7), "slots"),
])
def test_simulate_rejects_bad_arguments_by_name(kwargs, name):
    base = dict(sample_size=10, generations=2, replicates=2)
    with pytest.raises(ValueError, match=name):
        gmm.simulate(0, **(base | kwargs))


# -- the CLI, in process


def test_cli_simulate_summarize_figure_table(tmp_path, chains):
    from modelcollapse.commands import gmm as commands

    assert commands.ENGINES == gmm.ENGINES
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))

    def run(*argv):
        argv = [str(a) for a in argv]
        args = parser.parse_args(argv)
        args.func(args, argv)

    common = ["--sample-size", 100, "--generations", 12, "--replicates", 6, "--snapshots", 0, 1, 5, 99,
              "--platform", "cpu"]
    run("gmm", "simulate", "--seed", 0, "--data", "two_blobs", *common, "--out", tmp_path / "two_blobs.npz")
    # The other data set under the fourth regime (the fixtures ran the other three).
    run("gmm", "simulate", "--seed", 0, "--data", "blob", "--regime", "accumulate_subsample", *common,
        "--out", tmp_path / "blob.npz")
    stored = io.load_npz(tmp_path / "two_blobs.npz")
    np.testing.assert_array_equal(stored["means"], chains.means)  # the CLI runs the library
    assert np.all(np.isfinite(io.load_npz(tmp_path / "blob.npz")["l2_truth"]))
    assert (tmp_path / "blob.npz.provenance.json").exists()
    inputs = [tmp_path / "blob.npz", tmp_path / "two_blobs.npz"]
    run("gmm", "summarize", "--out", tmp_path / "s.csv", *inputs)
    rows = io.read_csv(tmp_path / "s.csv")
    assert len(rows) == 2 * 13 and {(r["data"], r["regime"]) for r in rows} == {
        ("blob", "accumulate_subsample"), ("two_blobs", "replace")}
    run("gmm", "figure", "--kind", "distance", "--summary", tmp_path / "s.csv", "--out", tmp_path / "d.pdf")
    run("gmm", "figure", "--kind", "snapshots", "--results", *inputs, "--out", tmp_path / "snap.pdf")
    assert (tmp_path / "d.png").stat().st_size > 10_000 and (tmp_path / "snap.png").stat().st_size > 10_000
    run("gmm", "table", "--summary", tmp_path / "s.csv", "--generations", 0, 5, 12, "--replicates", 6,
        "--table", tmp_path / "t.tex", "--numbers", tmp_path / "n.tex")
    numbers = (tmp_path / "n.tex").read_text()
    assert r"\mcdef{gmm.Gmax}{12}" in numbers and r"\mcdef{gmm.N}{100}" in numbers
    assert "gmm.two_blobs.half_lost" in numbers and "gmm.blob.Gmax.sigma" in numbers
    with pytest.raises(ValueError, match="generations"):
        run("gmm", "table", "--summary", tmp_path / "s.csv", "--generations", 99, "--replicates", 6,
            "--table", tmp_path / "t2.tex", "--numbers", tmp_path / "n2.tex")
    assert not (tmp_path / "t2.tex").exists()
    with pytest.raises(ValueError, match="sample_size"):  # a cross-field check (a flag's own range: argparse)
        run("gmm", "simulate", "--seed", 0, "--sample-size", 2, "--n-components", 3, "--generations", 2,
            "--replicates", 2, "--out", tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
