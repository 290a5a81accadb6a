"""The engines that run many chains over generations, vmapped over replicates, and `simulate`,
which picks one and returns the chains as `GMMChains` with their distances to GMM_0 and the truth.

Two engines run the same chains (each generation as `generation.py` defines it):
- `lockstep`: `jit(vmap(lax.scan over generations(lax.while_loop over iterations)))`. Under vmap
  a while loop runs until every replicate has stopped, so a generation costs the slowest
  replicate's iterations. EM's and Lloyd's iteration counts are heavy-tailed (paper's setting:
  ~7 EM iterations on average, the slowest of 32 replicates ~50), so most of that work is masked
  out. Simple; the tests' reference.
- `async` (default): one `lax.while_loop` of ticks. Each tick runs one Lloyd or EM iteration (per
  replicate, by phase) on every live replicate, vmapped; up to `slots` replicates whose EM just
  stopped record their fit and start their next generation (draw, training set, k-means++
  seeds), vmapped over the slots and scattered back by replicate index. Nothing waits for the
  slowest replicate within a generation. Across the chain it would: the slowest chain needs ~2x
  the mean chain's iterations (paper's setting, 64 replicates, 2000 generations: 34,500 EM
  iterations against 15,800), and a finished row costs a tick as much as a running one (65,000
  ticks of 64 rows, ~37% of them doing work). So the ticks run on a prefix of the rows that holds
  every running chain, halved (rows reordered, running first) whenever the running chains fit in
  half of it: 64 chains x 2000 generations in 20.6 s against 32.4 s. All the prefixes' ticks are in
  one program (~8 s to compile, against ~2.5 s for one prefix; a program per prefix took ~2 s
  each, and made the default run's job slower than before).
Each replicate does the same arithmetic in both; XLA may round a reduction differently for
different batch shapes, and a chain of EM fits amplifies a last-bit difference (it can change an
iteration count, then everything after), so engines and batch sizes agree exactly for most chains
and in distribution for all.

Names carry the layout: `snap_gens` [S] are the snapshot generations, `snap_points` [S, d, n]
replicate 0's draws at them; `fits` are GMMFit with leading [R, G+1] (the engines' output).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from modelcollapse.gmm.em import LLOYD_ITER, GMMFit, _em_dn, _lloyd_done, _step_dn
from modelcollapse.gmm.generation import _generation_zero, _keep_snapshot, _next_generation, _Static
from modelcollapse.gmm.mixture import GMMParams
from modelcollapse.gmm.spec import ENGINES, SNAPSHOTS, GMMChains, GMMConfig, _is_int, truth
from modelcollapse.regimes import Regime
from modelcollapse.runtime import replicate_keys
from modelcollapse.theory import gmm as theory


# -- the lockstep engine


def _fit_from_start(train, w, start, hard, tol, max_iter, reg_covar, st: _Static) -> GMMFit:
    """One generation's fit, run to the end: Lloyd (if hard) then EM, the iterations the async engine ticks."""

    def body(s):
        params, _, i = s
        new = _step_dn(train, w, params, reg_covar, hard)[0]
        return new, _lloyd_done(params, new), i + 1

    if st.init == "kmeans++":
        start = jax.lax.while_loop(lambda s: ~s[1] & (s[2] < LLOYD_ITER), body,
                                   (start, jnp.asarray(False), jnp.int32(0)))[0]
    return _em_dn(train, w, start, tol, max_iter, reg_covar)


def _lockstep_chain(key, truth_params, snap_gens, tol, max_iter, reg_covar, st: _Static):
    """One chain as a scan over generations: (GMMFit with a leading [G+1], snap_points [S, d, n])."""
    original, train, w, state, start, hard = _generation_zero(key, truth_params, reg_covar, st)
    fit0 = _fit_from_start(train, w, start, hard, tol, max_iter, reg_covar, st)
    snap_points = _keep_snapshot(jnp.zeros((snap_gens.shape[0],) + original.shape, original.dtype), snap_gens, 0,
                                 original)

    def step(carry, g):
        params, state, snap_points = carry
        x_dn, train, w, state, start, hard = _next_generation(key, g, params, state, truth_params, reg_covar, st)
        f = _fit_from_start(train, w, start, hard, tol, max_iter, reg_covar, st)
        return (GMMParams(f.weights, f.means, f.covs), state, _keep_snapshot(snap_points, snap_gens, g, x_dn)), f

    carry = (GMMParams(fit0.weights, fit0.means, fit0.covs), state, snap_points)
    (_, _, snap_points), fits = jax.lax.scan(step, carry, jnp.arange(1, st.generations + 1))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), fit0, fits), snap_points


@partial(jax.jit, static_argnames=("st",))
def _simulate_lockstep(keys, truth_params, snap_gens, tol, max_iter, reg_covar, *, st: _Static):
    """Every replicate's chain (keys [R]): (GMMFit with leading [R, G+1], replicate 0's snap_points [S, d, n])."""
    fits, snap_points = jax.vmap(_lockstep_chain, in_axes=(0, None, None, None, None, None, None))(
        keys, truth_params, snap_gens, tol, max_iter, reg_covar, st)
    return fits, snap_points[0]


# -- the async engine


class _Run(NamedTuple):
    """The async engine's loop state; every field but `snap_points` has a leading [R]."""

    g: jax.Array  # the generation each replicate is fitting; G + 1 once it has finished
    train: jax.Array  # [R, d, n_train]: its training set
    w: jax.Array  # [R, n_train]: point weights
    state: dict  # regime state (pool, size, original), [R, ...] each
    params: GMMParams  # the current Lloyd or EM iterate
    hard: jax.Array  # in the Lloyd phase (else EM)
    prev_ll: jax.Array  # EM: mean log-likelihood at the last E-step (-inf before the first)
    n_iter: jax.Array  # iterations so far in the current phase
    converged: jax.Array  # EM: the last change was below tol
    ready: jax.Array  # EM has stopped; waiting for a slot to record the fit and start the next generation
    fits: GMMFit  # [R, G+1, ...]: the fits recorded so far
    snap_points: jax.Array  # [S, d, n]: replicate 0's draws at the snapshot generations


# The fields of _Run that one Lloyd or EM iteration changes.
STEPPED = ("params", "hard", "prev_ll", "n_iter", "converged", "ready")


def _broadcast_rows(mask, a):
    """Broadcast a [R] mask against a [R, ...] array."""
    return mask.reshape(mask.shape + (1,) * (a.ndim - 1))


# The async engine's smallest active prefix (`_simulate_async`): below it a tick costs little anyway.
MIN_ROWS = 4


def prefix_sizes(replicates: int, min_rows: int = MIN_ROWS) -> tuple[int, ...]:
    """The async engine's active prefixes: R, then halved while at least `min_rows` rows remain."""
    if not _is_int(min_rows) or min_rows < 1:
        raise ValueError(f"min_rows must be an integer >= 1, got {min_rows!r}")
    sizes = [replicates]
    while sizes[-1] // 2 >= min_rows:
        sizes.append(sizes[-1] // 2)
    return tuple(sizes)


@partial(jax.jit, static_argnames=("st", "slots", "sizes"))
def _simulate_async(keys, truth_params, snap_gens, tol, max_iter, reg_covar, *, st: _Static, slots: int,
                    sizes: tuple[int, ...]):
    """Every replicate's chain (keys [R]): (GMMFit with leading [R, G+1], replicate 0's snap_points [S, d, n]).

    Ticks run on a prefix of the rows, `sizes[level]` long, that holds every running chain: when
    the running chains fit in the next size, the rows are reordered (running first, stably) and the
    prefix halves. `owner[i]` is the replicate whose chain row i runs (its key: keys[owner[i]]); the
    fits go back to replicate order at the end. One compilation holds every prefix's tick (a `lax.switch`).
    """
    r, g_max = keys.shape[0], st.generations
    original, train, w, state, start, hard = jax.vmap(_generation_zero, in_axes=(0, None, None, None))(
        keys, truth_params, reg_covar, st)
    blank = lambda a, dtype=None: jnp.zeros((r, g_max + 1) + a.shape[1:], dtype or a.dtype)  # noqa: E731
    fits = GMMFit(*(blank(a) for a in start), blank(hard, train.dtype), blank(hard, jnp.int32), blank(hard))
    run = _Run(g=jnp.zeros(r, jnp.int32), train=train, w=w, state=state, params=start, hard=hard,
               prev_ll=jnp.full(r, -jnp.inf, train.dtype), n_iter=jnp.zeros(r, jnp.int32),
               converged=jnp.zeros(r, bool), ready=jnp.zeros(r, bool), fits=fits,
               snap_points=_keep_snapshot(jnp.zeros((snap_gens.shape[0],) + original.shape[1:], original.dtype),
                                          snap_gens, 0, original[0]))

    def advance(run: _Run, owner) -> _Run:
        """Record the fits of up to `slots` stopped replicates and start their next generation."""
        idx = jnp.nonzero(run.ready, size=slots, fill_value=r)[0]  # [slots]; r marks an empty slot
        safe = jnp.minimum(idx, r - 1)
        g = run.g[safe]
        pick = lambda a: a[safe]  # noqa: E731
        params = jax.tree.map(pick, run.params)
        fit = GMMFit(*params, run.prev_ll[safe], run.n_iter[safe], run.converged[safe])
        fits = jax.tree.map(lambda a, v: a.at[idx, g].set(v, mode="drop"), run.fits, fit)
        # A replicate that has just recorded generation G also draws a generation G + 1, never fitted.
        x_dn, train, w, state, start, hard = jax.vmap(partial(_next_generation, st=st),
                                                      in_axes=(0, 0, 0, 0, None, None))(
            keys[owner[safe]], g + 1, params, jax.tree.map(pick, run.state), truth_params, reg_covar)
        put = lambda a, v: a.at[idx].set(v, mode="drop")  # noqa: E731
        hit = ((idx < r) & (owner[safe] == 0))[:, None] & (snap_gens[None] == g[:, None] + 1)  # [slots, S]
        mine = jnp.einsum("ts,tdn->sdn", hit.astype(x_dn.dtype), x_dn)
        return run._replace(
            g=put(run.g, g + 1), train=put(run.train, train), w=put(run.w, w),
            state=jax.tree.map(put, run.state, state), params=jax.tree.map(put, run.params, start),
            hard=put(run.hard, hard), prev_ll=put(run.prev_ll, jnp.full(slots, -jnp.inf, x_dn.dtype)),
            n_iter=put(run.n_iter, jnp.zeros(slots, jnp.int32)),
            converged=put(run.converged, jnp.zeros(slots, bool)), ready=put(run.ready, jnp.zeros(slots, bool)),
            fits=fits, snap_points=jnp.where(jnp.any(hit, 0)[:, None, None], mine, run.snap_points))

    def step(run: _Run) -> _Run:
        """One Lloyd or EM iteration of every row of `run` (finished and waiting rows keep theirs)."""
        live = (run.g <= g_max) & ~run.ready
        new, ll = jax.vmap(_step_dn, in_axes=(0, 0, 0, None, 0))(run.train, run.w, run.params, reg_covar, run.hard)
        n_iter = run.n_iter + 1
        small = jnp.abs(ll - run.prev_ll) < tol
        lloyd_done = run.hard & (jax.vmap(_lloyd_done)(run.params, new) | (n_iter >= LLOYD_ITER))
        em_done = ~run.hard & (small | (n_iter >= max_iter))
        keep = lambda a, b: jnp.where(_broadcast_rows(live, a), a, b)  # noqa: E731
        return run._replace(
            params=jax.tree.map(keep, new, run.params),
            hard=run.hard & ~(live & lloyd_done),
            # Lloyd -> EM: the M-step on Lloyd's final labels is where EM starts, from a fresh count.
            prev_ll=jnp.where(live & ~run.hard, ll, run.prev_ll),
            n_iter=jnp.where(live, jnp.where(lloyd_done, 0, n_iter), run.n_iter),
            converged=jnp.where(live & ~run.hard, small, run.converged),
            ready=run.ready | (live & em_done))

    def tick(run: _Run, size: int) -> _Run:
        """`step` on the rows [:size] (every running chain is among them), written back in place."""
        ticked = step(jax.tree.map(lambda a: a[:size], run._replace(state=None, fits=None, snap_points=None)))
        return run._replace(**{name: jax.tree.map(lambda a, v: a.at[:size].set(v), getattr(run, name),
                                                  getattr(ticked, name)) for name in STEPPED})

    def shrink(carry):
        """Running chains first (stably), and the next, halved, prefix."""
        run, owner, level = carry
        order = jnp.argsort(run.g > g_max, stable=True)
        moved = jax.tree.map(lambda a: a[order], run._replace(snap_points=None))
        return moved._replace(snap_points=run.snap_points), owner[order], level + 1

    next_size = jnp.asarray(sizes[1:] + (0,), jnp.int32)

    def body(carry):
        run, owner, level = carry
        run = jax.lax.switch(level, [partial(tick, size=size) for size in sizes], run)
        run = jax.lax.cond(jnp.any(run.ready), advance, lambda run, owner: run, run, owner)
        carry = (run, owner, level)
        return jax.lax.cond(jnp.sum(run.g <= g_max) <= next_size[level], shrink, lambda c: c, carry)

    run, owner, _ = jax.lax.while_loop(lambda carry: jnp.any(carry[0].g <= g_max), body,
                                       (run, jnp.arange(r), jnp.int32(0)))
    rows = jnp.argsort(owner)  # back to replicate order
    return jax.tree.map(lambda a: a[rows], run.fits), run.snap_points


def default_slots(replicates: int) -> int:
    """Replicates the async engine starts on a new generation per tick. A generation takes ~20
    ticks (Lloyd + EM), so ~R/20 stop per tick; a slot costs a draw and a k-means++ seeding whether
    used or not. Measured at R = 64: 2, 4 and 8 slots within 4% (4 best); so R/16, at least 4."""
    return min(replicates, max(4, replicates // 16))


def run_engine(keys: jax.Array, cfg: GMMConfig, *, engine: str, slots: int,
               min_rows: int = MIN_ROWS) -> tuple[GMMFit, jax.Array]:
    """One chain per key in `keys` [R'] under `cfg`'s settings (cfg.replicates is not read, so a
    single chain runs too, as the paper's did): (GMMFit of numpy arrays [R', G+1, ...], replicate 0's
    snapshot points). `simulate` checks the arguments and derives the rest; `min_rows`: the async
    engine's smallest prefix (`prefix_sizes`)."""
    args = (keys, GMMParams(*(jnp.asarray(a, jnp.float32) for a in truth(cfg.data))),
            jnp.asarray(cfg.snapshot_generations), jnp.float32(cfg.tol), jnp.int32(cfg.max_iter),
            jnp.float32(cfg.reg_covar))
    st = _Static(n=cfg.sample_size, generations=cfg.generations, k=cfg.n_components, init=cfg.init,
                 regime=cfg.regime)
    if engine == "lockstep":
        fits, snap_points = _simulate_lockstep(*args, st=st)
    else:
        fits, snap_points = _simulate_async(*args, st=st, slots=slots,
                                            sizes=prefix_sizes(keys.shape[0], min_rows))
    return GMMFit(*(np.asarray(a) for a in fits)), snap_points


def simulate(seed: int, *, sample_size: int, generations: int, replicates: int, n_components: int = 2,
             data: str = "blob", regime: Regime | None = None, tol: float = 1e-5, max_iter: int = 2000,
             reg_covar: float = 1e-6, init: str = "kmeans++", snapshots=SNAPSHOTS, engine: str = "async",
             slots: int | None = None) -> GMMChains:
    """Run `replicates` independent EM fit-and-sample chains from the data set `data`.

    Every generation fits a fresh EM (new initialisation from its key) on its training set, which
    the regime forms from the N points drawn from the previous fit (see `modelcollapse.regimes`;
    `accumulate` trains on a weighted pool of N (G+1) slots, so its cost grows as G^2 N).
    engine: 'async' or 'lockstep'; slots: the async engine's generation starts per tick (default
    `default_slots(replicates)`); see the module docstring for how far they agree.
    Returns GMMChains: parameters per generation, float32 [R, G+1, ...]; the closed-form squared L2
    distances to GMM_0 and to the true density, float64 [R, G+1]; replicate 0's snapshot points.
    """
    cfg = GMMConfig(sample_size=sample_size, generations=generations, replicates=replicates,
                    n_components=n_components, data=data, regime=regime or Regime(), tol=tol, max_iter=max_iter,
                    reg_covar=reg_covar, init=init, snapshots=tuple(snapshots))
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    slots = default_slots(cfg.replicates) if slots is None else slots
    if not _is_int(slots) or slots > cfg.replicates:
        raise ValueError(f"slots must be an integer in [1, replicates = {cfg.replicates}], got {slots!r}")
    true = truth(cfg.data)
    fits, snap_points = run_engine(replicate_keys(seed, cfg.replicates), cfg, engine=engine, slots=int(slots))
    params = GMMParams(fits.weights, fits.means, fits.covs)
    gmm0 = GMMParams(*(a[:, :1] for a in params))  # [R, 1, ...]: GMM_0 per replicate, broadcast over generations
    return GMMChains(*params, fits.log_likelihood, fits.n_iter.astype(np.int32), fits.converged,
                     theory.l2_squared(gmm0, params), theory.l2_squared(true, params),
                     cfg.snapshot_generations, np.swapaxes(np.asarray(snap_points), -1, -2))
