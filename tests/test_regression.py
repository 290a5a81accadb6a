"""Linear regression on its own labels against the exact laws of `theory.regression`: every
generation's mean squared parameter error within 5 Monte-Carlo standard errors (computed here),
for every regime and both designs: the closed forms where they exist, else the law given the
training designs (exact in the label noise, averaged over the designs by Monte Carlo)."""

import numpy as np
import pytest

from modelcollapse import family, regression
from modelcollapse.theory import regression as theory

Z, R, G = 5.0, 4000, 8


def _check(errors, expected):
    mean = errors.mean(axis=0)
    se = errors.std(axis=0, ddof=1) / np.sqrt(errors.shape[0])
    assert np.all(np.abs(mean - expected) < Z * se), (mean, expected, se)


@pytest.mark.parametrize("dim, t", [(3, 10), (5, 40)])
def test_replace_with_fresh_designs_grows_linearly(dim, t):
    run = family.simulate(regression.family(dim=dim), 1, sample_size=t, generations=G, replicates=R)
    n = np.arange(G + 1)
    expected = theory.replace_error(n, dim=dim, sample_size=t, noise=1.0)  # n d / (T - d - 1)
    assert run["error"][:, 0].max() == 0.0
    _check(run["error"][:, 1:], expected[1:])


@pytest.mark.parametrize("dim, t", [(3, 10), (5, 20)])
def test_fixed_design_replace_and_accumulate(dim, t):
    x = regression.fixed_design(0, t, dim)
    fam = regression.family(dim=dim, design="fixed", sample_size=t)
    n = np.arange(1, G + 1)
    kwargs = dict(dim=dim, sample_size=t, noise=1.0, design=x)
    rep = family.simulate(fam, 2, sample_size=t, generations=G, replicates=R, regime="replace")["error"][:, 1:]
    acc = family.simulate(fam, 2, sample_size=t, generations=G, replicates=R, regime="accumulate")["error"][:, 1:]
    _check(rep, theory.replace_error(n, **kwargs))
    _check(acc, theory.accumulate_error(n, **kwargs))
    # Gerstgrasser et al.'s bound: accumulate stays below pi^2/6 times the first model's error.
    assert np.all(theory.accumulate_error(n, **kwargs) < np.pi ** 2 / 6 * theory.fit_error(**kwargs))
    assert rep.mean(0)[-1] > 2 * acc.mean(0)[-1]


@pytest.mark.parametrize("fraction, dim, t", [(0.3, 3, 10), (0.6, 3, 10), (0.5, 5, 20)])
def test_fixed_design_mix_with_fresh_real_labels_reaches_its_stationary_error(fraction, dim, t):
    generations = 12
    x = regression.fixed_design(0, t, dim)
    fam = regression.family(dim=dim, design="fixed", sample_size=t)
    regime = {"name": "mix", "real_fraction": fraction, "real_source": "fresh"}
    run = family.simulate(fam, 3, sample_size=t, generations=generations, replicates=R, regime=regime)["error"]
    real_rows = int(np.floor(fraction * t + 0.5))
    n = np.arange(1, generations + 1)
    expected = theory.mix_error(n, real_rows=real_rows, noise=1.0, design=x)
    _check(run[:, 1:], expected)
    # bounded, unlike replace: the error settles at a finite level, below replace's at the end
    assert expected[-1] < theory.replace_error(generations, dim=dim, sample_size=t, noise=1.0, design=x) / 2
    stationary = theory.mix_stationary_error(real_rows=real_rows, noise=1.0, design=x)
    long_run = theory.mix_error(400, real_rows=real_rows, noise=1.0, design=x)[0]
    assert abs(long_run - stationary) < 1e-6 * stationary and np.all(expected <= stationary * (1 + 1e-9))


def test_bad_arguments_are_refused():
    for kwargs, match in [(dict(dim=0), "dim"), (dict(dim=2, noise=0), "noise"), (dict(dim=2, design="grid"), "design"),
                          (dict(dim=3, design="fixed", sample_size=4), "sample_size > dim")]:
        with pytest.raises(ValueError, match=match):
            regression.family(**kwargs)
    with pytest.raises(ValueError, match="sample_size > dim"):
        theory.fit_error(dim=5, sample_size=6, noise=1.0)


def test_the_experiment_summarizes_every_regime_beside_its_exact_law_where_one_exists():
    block = {"dim": 3, "sample_size": 10, "noise": 0.5, "design": "fixed", "generations": 6, "replicates": 8,
             "regimes": ["replace", "accumulate", "accumulate_subsample",
                         {"name": "mix", "real_fraction": 0.5, "real_source": "fresh"},
                         {"name": "mix", "real_fraction": 0.5}]}
    x = regression.fixed_design(4, 10, 3)
    kwargs = dict(dim=3, sample_size=10, noise=0.5, design=x)
    n = np.arange(7)
    expected = {"replace": theory.replace_error(n, **kwargs), "accumulate": theory.accumulate_error(n, **kwargs),
                "mix0.5-fresh": theory.mix_error(n, real_rows=5, noise=0.5, design=x)}
    for label in ("replace", "accumulate", "accumulate_subsample", "mix0.5-fresh", "mix0.5"):
        cfg = regression.config_from_block(block, label=label, seed=4)
        error = regression.simulate(cfg, 4)
        assert error.shape == (8, 7) and np.all(error[:, 0] == 0)
        out = regression.summarize(error, cfg)
        np.testing.assert_allclose(out["error"], error.astype(np.float64).mean(0))
        if label in expected:  # the rest refit on random row subsets: no exact law, said by NaN
            np.testing.assert_allclose(out["error_theory"], expected[label], rtol=1e-12)
        else:
            assert np.isnan(out["error_theory"]).all()
    with pytest.raises(ValueError, match="not a regime of regression.regimes"):
        regression.config_from_block(block, label="mix0.9")
    with pytest.raises(ValueError, match="sample_size must exceed dim"):
        regression.RegressionConfig(dim=5, sample_size=6, design="fresh")


def test_the_law_given_the_designs_is_the_exact_law_for_deterministic_designs():
    x = regression.fixed_design(0, 10, 3)
    kwargs = dict(dim=3, sample_size=10, noise=0.7, design=x)
    n = np.arange(9)
    for regime, exact in [("replace", theory.replace_error(n, **kwargs)),
                          ("accumulate", theory.accumulate_error(n, **kwargs)),
                          ({"name": "mix", "real_fraction": 0.3, "real_source": "fresh"},
                           theory.mix_error(n, real_rows=3, noise=0.7, design=x))]:
        law, se = theory.selection_error(regime, 8, draws=1, **kwargs)
        np.testing.assert_allclose(law, exact, rtol=1e-10, atol=1e-14)
        assert np.all(se == 0)


# No closed form where the training design is random (a subset of pooled rows, or fresh rows that
# earlier fits saw): the law given the designs, averaged over them (`selection_error`), is the reference.
RANDOM_DESIGN = [
    ("fixed", "accumulate_subsample"), ("fixed", {"name": "mix", "real_fraction": 0.3}),
    ("fresh", "accumulate"), ("fresh", "accumulate_subsample"), ("fresh", {"name": "mix", "real_fraction": 0.3}),
    ("fresh", {"name": "mix", "real_fraction": 0.5, "real_source": "fresh"}),
]


@pytest.mark.parametrize("design, regime", RANDOM_DESIGN)
def test_every_other_regime_matches_its_law_given_the_designs(design, regime):
    dim, t, draws = 3, 10, 1500
    x = regression.fixed_design(0, t, dim) if design == "fixed" else None
    fam = regression.family(dim=dim, design=design, sample_size=t)
    run = family.simulate(fam, 5, sample_size=t, generations=G, replicates=R, regime=regime)["error"].astype(np.float64)
    law, law_se = theory.selection_error(regime, G, sample_size=t, dim=dim, noise=1.0, design=x, draws=draws, seed=1)
    se = np.sqrt(run.std(axis=0, ddof=1) ** 2 / R + law_se ** 2)
    assert np.all(np.abs(run.mean(axis=0) - law)[1:] < Z * se[1:]), (run.mean(axis=0) - law) / se


def test_accumulate_subsample_at_a_larger_design_and_its_slow_growth():
    dim, t, generations = 5, 20, 10
    x = regression.fixed_design(0, t, dim)
    fam = regression.family(dim=dim, design="fixed", sample_size=t)
    regime = "accumulate_subsample"
    run = family.simulate(fam, 6, sample_size=t, generations=generations, replicates=R, regime=regime)["error"]
    law, law_se = theory.selection_error(regime, generations, sample_size=t, dim=dim, noise=1.0, design=x,
                                         draws=800, seed=2)
    run = run.astype(np.float64)
    se = np.sqrt(run.std(axis=0, ddof=1) ** 2 / R + law_se ** 2)
    assert np.all(np.abs(run.mean(axis=0) - law)[1:] < Z * se[1:])
    # Kazdan et al.: it degrades (above accumulate) but far more slowly than replace
    kwargs = dict(dim=dim, sample_size=t, noise=1.0, design=x)
    assert theory.accumulate_error(generations, **kwargs)[0] < law[-1] < theory.replace_error(generations, **kwargs) / 2
