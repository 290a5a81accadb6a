"""The README's "Extend it" example, run for real: the generic simulator (`modelcollapse.family`), the
exponential family against its exact theory, the sliding-window regime against replace/accumulate,
every shared regime's training sets (a tracer family records what each model trained on), the
schema block, the rules file (a Snakemake dry run) and the example's CLI."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import jsonschema
import numpy as np
import pytest
import yaml
from scipy import integrate, special

from conftest import ROOT
# examples/ sits at the repository root and is not installed with the package; pytest puts only
# tests/ on sys.path, so put the root first (as `python -m examples.exponential.cli` run from the
# root does, and as exponential.smk does for Snakemake).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.exponential import cli, exponential, window  # noqa: E402, F401  (window registers 'window')
from modelcollapse import config, family, io, knobs, regimes  # noqa: E402
from modelcollapse.regimes import Regime  # noqa: E402

Z = 4.0  # Monte-Carlo tolerance in standard errors
EXAMPLE = ROOT / "examples" / "exponential"

# -- the exponential family under replace against its exact theory
M, G, R = 10, 40, 4000  # E[log s_40] = -2.07 with SE 0.024; E[s_n] SE <= 0.012 for n <= 5


@pytest.fixture(scope="module")
def replace_run():
    return family.simulate(exponential.family(1.0), 0, sample_size=M, generations=G, replicates=R)


def _se(x):
    return x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])


def test_shapes_and_generation_zero(replace_run):
    assert set(replace_run) == {"scale", "log_scale", "kl"}
    assert all(v.shape == (R, G + 1) and v.dtype == np.float32 for v in replace_run.values())
    np.testing.assert_array_equal(replace_run["scale"][:, 0], 1.0)  # index 0 is the truth
    np.testing.assert_array_equal(replace_run["kl"][:, 0], 0.0)


def test_log_scale_drifts_as_theory(replace_run):
    """E[log s_n] = n (psi(M) - log M) exactly, for every n; Var[log s_n] = n psi'(M)."""
    n = np.arange(G + 1)
    log_s = replace_run["log_scale"].astype(np.float64)
    expected = n * (special.digamma(M) - np.log(M))  # computed here, not by the example
    err = np.abs(log_s.mean(0) - expected)[1:]
    assert np.all(err < Z * _se(log_s)[1:]), err / _se(log_s)[1:]
    # The variance at n = G, with the SE of a sample variance from the fourth central moment.
    x = log_s[:, G] - log_s[:, G].mean()
    var, se_var = np.mean(x**2), np.sqrt((np.mean(x**4) - np.mean(x**2) ** 2) / R)
    assert abs(var - G * special.polygamma(1, M)) < Z * se_var


def test_scale_is_a_martingale_that_collapses(replace_run):
    s = replace_run["scale"].astype(np.float64)
    assert np.all(np.abs(s.mean(0)[1:6] - 1.0) < Z * _se(s)[1:6])  # E[s_n] = s_0 at small n
    # ... while the typical chain has lost most of its scale: median s_40 ~ exp(-2.07) = 0.13.
    assert np.median(s[:, G]) < 0.2


def test_kl_grows_as_theory(replace_run):
    """E[KL_n] = n (psi(M) - log M) + (M / (M - 1))^n - 1 (E[1/Gamma(M, 1)] = 1 / (M - 1))."""
    n = np.arange(1, 11)  # the (M / G)^n term's variance grows quickly: test where the SE is honest
    kl = replace_run["kl"].astype(np.float64)[:, 1:11]
    expected = n * (special.digamma(M) - np.log(M)) + (M / (M - 1)) ** n - 1
    assert np.all(np.abs(kl.mean(0) - expected) < Z * _se(kl))


def test_theory_functions_against_numpy_gamma_products():
    """The example's theory against s_n = prod G_i / M drawn with numpy (no JAX involved)."""
    m, reps, gens = 5, 400_000, 6
    s = np.cumprod(np.random.default_rng(1).gamma(m, size=(reps, gens)) / m, axis=1)
    n = np.arange(1, gens + 1)
    kl = np.log(s) + 1 / s - 1  # rate0 = 1, rate = 1/s: log(rate0 / rate) + rate / rate0 - 1
    for sim, theory in ((np.log(s), exponential.expected_log_scale(n, m)), (s, exponential.expected_scale(n)),
                        (kl, exponential.expected_kl(n, m))):
        assert np.all(np.abs(sim.mean(0) - theory) < Z * _se(sim))
    x = s - s.mean(0)
    se_var = np.sqrt((np.mean(x**4, 0) - np.mean(x**2, 0) ** 2) / reps)
    assert np.all(np.abs(np.mean(x**2, 0) - exponential.var_scale(n, m)) < Z * se_var)
    np.testing.assert_allclose(exponential.var_log_scale(n, m), n * special.polygamma(1, m))


def test_kl_closed_form_against_quadrature():
    for rate0, rate in ((1.0, 2.0), (0.5, 0.3), (3.0, 3.0)):
        def integrand(x):
            return rate0 * np.exp(-rate0 * x) * (np.log(rate0) - rate0 * x - np.log(rate) + rate * x)
        np.testing.assert_allclose(float(exponential.kl(rate0, rate)), integrate.quad(integrand, 0, np.inf)[0],
                                   rtol=1e-5, atol=1e-7)


def test_fit_is_the_mle_and_ignores_zero_weights():
    x = np.random.default_rng(2).exponential(2.0, 50).astype(np.float32)
    junk = np.full(30, 1e6, np.float32)
    params = exponential.fit(jnp.concatenate([x, junk]), jnp.concatenate([jnp.ones(50), jnp.zeros(30)]))
    np.testing.assert_allclose(float(params["rate"]), 1 / x.astype(np.float64).mean(), rtol=1e-6)


# -- a tracer family: every point carries the generation that drew it, so each model's metrics say
# exactly what it trained on (how many points, how many original, the oldest generation), plus a
# random value so that two runs can be compared number for number.

TRACES = [0]


def _tracer_fit(x, w):
    TRACES[0] += 1  # runs only while tracing: counts compilations
    level, value = x[:, 0], x[:, 1]
    return {"count": jnp.sum(w), "real": jnp.sum(w * (level == 0)),
            "oldest": jnp.min(jnp.where(w > 0, level, jnp.inf)),
            "level": jnp.max(jnp.where(w > 0, level, -jnp.inf)) + 1,  # model g's samples carry g
            "mean": jnp.sum(w * value) / jnp.sum(w)}


def _tracer_sample(key, params, n):
    return jnp.stack([jnp.full(n, params["level"]), params["mean"] + jax.random.normal(key, (n,))], axis=1)


TRACER = family.Family(name="tracer", truth={k: jnp.float32(0.0) for k in ("count", "real", "oldest", "level", "mean")},
                       fit=_tracer_fit, sample=_tracer_sample, metrics=lambda params: params)
N0, TM, TG, TR = 7, 5, 8, 400  # n_original != M, so the sizes tell the two apart
_RUNS = {}


def tracer(regime, replicates=TR):
    key = (regimes.label(regime), replicates)
    if key not in _RUNS:
        _RUNS[key] = family.simulate(TRACER, 3, sample_size=TM, generations=TG, replicates=replicates,
                                     regime=regime, n_original=N0)
    return _RUNS[key]


def _expected(regime, j):
    """(count, real, oldest) of model j >= 2's training set, worked out by hand for each regime."""
    if regime["name"] == "accumulate":
        return N0 + (j - 1) * TM, N0, 0
    if regime["name"] == "replace":
        return TM, 0, j - 1
    if regime["name"] == "mix":
        return TM, 2, 0  # round(0.4 * 5) = 2 real points, 3 from model j - 1
    k = regime["k"]  # window: generations max(0, j - k) .. j - 1
    return (N0 + (j - 1) * TM, N0, 0) if j <= k else (k * TM, 0, j - k)


@pytest.mark.parametrize("regime", [{"name": "replace"}, {"name": "accumulate"},
                                    {"name": "mix", "real_fraction": 0.4},
                                    {"name": "mix", "real_fraction": 0.4, "real_source": "fresh"},
                                    {"name": "window", "k": 3}], ids=lambda r: regimes.label(r))
def test_training_sets_of_each_regime(regime):
    run = tracer(regime)
    assert np.all(run["count"][:, 1] == N0) and np.all(run["real"][:, 1] == N0)  # model 1: the original data
    np.testing.assert_array_equal(run["level"][:, 1:], np.broadcast_to(np.arange(1, TG + 1), (TR, TG)))
    for j in range(2, TG + 1):
        count, real, oldest = _expected(regime, j)
        assert np.all(run["count"][:, j] == count), (j, run["count"][0, j], count)
        assert np.all(run["real"][:, j] == real) and np.all(run["oldest"][:, j] == oldest), j
        if regime["name"] in regimes.NAMES:  # the shared definition of the size
            assert count == regimes.training_size(Regime.from_config(regime), sample_size=TM, n_original=N0,
                                                  generation=j)


def test_accumulate_subsample_draws_uniform_subsets():
    """M of the pool's N0 + (j-1) M points without replacement: the original points drawn are
    hypergeometric, with mean M N0 / pool and the finite-population variance."""
    run = tracer("accumulate_subsample")
    assert np.all(run["count"][:, 1:] == np.array([N0] + [TM] * (TG - 1)))
    for j in range(2, TG + 1):
        pool = N0 + (j - 1) * TM
        p = N0 / pool
        mean, var = TM * p, TM * p * (1 - p) * (pool - TM) / (pool - 1)
        assert abs(run["real"][:, j].mean() - mean) < Z * np.sqrt(var / TR), j
    assert run["oldest"][:, TG].max() >= 1 and run["oldest"][:, TG].min() == 0  # any generation may be drawn


def test_window_of_one_is_replace_and_a_wide_window_is_accumulate():
    one, rep = tracer({"name": "window", "k": 1}), tracer("replace")
    for name in ("count", "real", "oldest", "level"):
        np.testing.assert_array_equal(one[name], rep[name])
    # Same keys, same draws: equal up to float32 summation order (the sums read the pool buffer in
    # one case and the fresh draws in the other, which XLA may reduce in a different order).
    np.testing.assert_allclose(one["mean"], rep["mean"], rtol=0, atol=1e-5)
    wide, acc = tracer({"name": "window", "k": TG + 3}), tracer("accumulate")
    for name in wide:  # the whole pool in both: the same numbers, bit for bit
        np.testing.assert_array_equal(wide[name], acc[name])
    assert np.abs(tracer({"name": "window", "k": 3})["mean"] - acc["mean"])[:, -1].max() > 0.1  # not vacuous


def test_chains_do_not_depend_on_the_replicate_count_and_do_not_recompile():
    few = tracer("replace", replicates=3)
    for name, values in tracer("replace").items():
        np.testing.assert_array_equal(few[name], values[:3])
    before = TRACES[0]
    again = family.simulate(TRACER, 3, sample_size=TM, generations=TG, replicates=3, regime="replace", n_original=N0)
    assert TRACES[0] == before
    np.testing.assert_array_equal(again["mean"], few["mean"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(generations=0), "generations"), (dict(sample_size=2.5), "sample_size"), (dict(replicates=True), "replicates"),
    (dict(regime="resample"), "unknown regime"), (dict(regime={"name": "mix", "fraction": 0.1}), "unknown regime key"),
    (dict(regime={"name": "window", "k": 0}), "window k"),
    (dict(regime={"name": "mix", "real_fraction": 1.0}, n_original=3), "n_original"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    args = dict(sample_size=TM, generations=2, replicates=2) | kwargs
    with pytest.raises(ValueError, match=match):
        family.simulate(TRACER, 0, **args)


def test_register_regime_checks():
    with pytest.raises(ValueError, match="built in"):
        regimes.register("replace", window.window)
    with pytest.raises(ValueError, match="identifier"):
        regimes.register("a window", window.window)
    assert {"window", *regimes.NAMES} <= set(regimes.registered())
    assert regimes.label({"name": "window", "k": 5}) == "window-k5"
    assert regimes.label({"name": "mix", "real_fraction": 0.1}) == "mix0.1"
    # It reads the pool's rows by generation: families that hold other representations refuse it.
    from modelcollapse import discrete
    from modelcollapse.lm import experiment as lm_experiment
    for offers in (regimes.HostPointOps.offers, discrete.CountOps.offers):
        with pytest.raises(ValueError, match="the pool's points in generation order"):
            regimes.check({"name": "window", "k": 2}, offers, family="this family")
    with pytest.raises(ValueError, match="the pool's points in generation order"):
        lm_experiment.check_regime(Regime.from_config({"name": "window", "k": 2}), truth_known=True)


# -- the schema block, the rules file and the CLI

BLOCK = {"rate": 1.0, "sample_size": 10, "generations": 20, "replicates": 8,
         "regimes": ["replace", "accumulate", {"name": "window", "k": 5}, {"name": "mix", "real_fraction": 0.1}]}


def _schema_with_block():
    schema = config.schema()
    blocks = yaml.safe_load((EXAMPLE / "exponential.schema.yaml").read_text())
    schema["properties"] |= {name: knobs.block_schema(block) for name, block in blocks.items()}
    return schema


def _descriptions_missing(node, path="exponential"):
    missing = []
    for name, prop in node.get("properties", {}).items():
        if "description" not in prop:
            missing.append(f"{path}.{name}")
        missing += _descriptions_missing(prop, f"{path}.{name}")
    for i, option in enumerate(node.get("items", {}).get("anyOf", [])):
        missing += _descriptions_missing(option, f"{path}[{i}]")
    return missing


@pytest.mark.parametrize("change", [{"sample_size": 1}, {"rate": 0}, {"regimes": []}, {"seeds": 3},
                                    {"regimes": ["resample"]}, {"regimes": [{"name": "window"}]},
                                    {"regimes": [{"name": "window", "k": 0}]}])
def test_schema_block(change):
    schema = _schema_with_block()
    jsonschema.Draft202012Validator.check_schema(schema)
    block = schema["properties"]["exponential"]
    assert block["additionalProperties"] is False and _descriptions_missing(block) == []
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text()) | {"exponential": BLOCK}
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(cfg)
    assert list(validator.iter_errors(cfg | {"exponential": BLOCK | change}))


def test_rules_file_dry_run(tmp_path):
    """A Snakefile that includes the rules file as the project's would, dry-run on the example block."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "platform": "cpu", "exponential": BLOCK}))
    (tmp_path / "Snakefile").write_text(
        'configfile: "config.yaml"\nRESULTS = []\nFIGURES = []\n\n\n'
        f'include: "{EXAMPLE / "exponential.smk"}"\n\n\nrule all:\n    input:\n        RESULTS + FIGURES,\n')
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert out.count("rule exponential_simulate:") == 4 and out.count("rule exponential_figure:") == 1, out
    assert "-m examples.exponential.cli simulate --seed 0 --rate 1.0 --sample-size 10" in out
    assert "--regime window --regime-param k=5 --platform cpu --out results/exponential/window-k5.npz" in out
    assert "--regime mix --regime-param real_fraction=0.1 --platform cpu" in out
    assert ("figure --results results/exponential/replace.npz results/exponential/accumulate.npz"
            " results/exponential/window-k5.npz results/exponential/mix0.1.npz --out figures/exponential.pdf") in out
    assert (EXAMPLE / "exponential.rst").is_file()  # the report caption the figure rule names


def test_cli_simulate_and_figure(tmp_path, capsys):
    out = tmp_path / "window.npz"
    argv = ["simulate", "--seed", "0", "--sample-size", "10", "--generations", "5", "--replicates", "20",
            "--regime", "window", "--regime-param", "k=2", "--platform", "cpu", "--out", str(out)]
    assert cli.main(argv) == 0
    data = io.load_npz(out)
    assert str(data["regime_label"]) == "window-k2" and data["log_scale"].shape == (20, 6)
    direct = family.simulate(exponential.family(1.0), 0, sample_size=10, generations=5, replicates=20,
                             regime={"name": "window", "k": 2})
    np.testing.assert_array_equal(data["kl"], direct["kl"])
    record = json.loads(io.provenance_path(out).read_text())
    assert record["command"].startswith("python -m examples.exponential.cli simulate --seed 0")
    assert record["seed"] == 0 and record["config"]["regime"] == {"name": "window", "k": 2}
    fig = tmp_path / "exponential.pdf"
    assert cli.main(["figure", "--results", str(out), "--out", str(fig)]) == 0
    assert fig.stat().st_size > 0 and fig.with_suffix(".png").is_file()
    assert cli.main(argv[:-2] + ["--regime-param", "k", "--out", str(tmp_path / "bad.npz")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
