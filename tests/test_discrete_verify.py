"""The discrete verification run (issue 21): the exact law of Wright-Fisher with selection
(theory.selection) against independent computations and the chains, its summaries, and the CLI."""

import json
import subprocess
import sys
from math import comb

import numpy as np
import pytest
from scipy import stats

from modelcollapse import discrete
from modelcollapse.regimes import Regime
from modelcollapse.theory import discrete as neutral
from modelcollapse.theory import selection

Z = 5.0  # tolerance in Monte-Carlo standard errors


def verifier(tau, b=0.0):
    return Regime.from_config({"name": "verify", "b": b, "tau": tau, "real_fraction": 0.0})


# -- the exact law against independent computations


@pytest.mark.parametrize("k,m", [(2, 5), (3, 6), (4, 20)])
def test_compositions_are_every_count_vector_once(k, m):
    states = selection.compositions(k, m)
    assert states.shape == (comb(m + k - 1, k - 1), k) == (selection.num_states(k, m), k)
    assert np.all(states >= 0) and np.all(states.sum(axis=1) == m)
    assert len({tuple(s) for s in states.tolist()}) == states.shape[0]


def test_too_many_states_are_refused_naming_the_limit():
    with pytest.raises(ValueError, match="MAX_STATES"):
        selection.compositions(10, 20)
    with pytest.raises(ValueError, match="^num_symbols = 10 with sample_size = 20"):
        discrete.check_verify_size(10, 20)


def test_transition_rows_are_scipys_multinomial_of_the_tilted_law():
    w = np.array([1.0, 0.5, 0.2])
    states, T = selection.transition_matrix(w, 6)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    for i in (0, 7, 13, len(states) - 1):
        c = states[i]
        tilted = c * w / (c * w).sum()
        expected = stats.multinomial.pmf(states, 6, tilted)
        np.testing.assert_allclose(T[i], np.nan_to_num(expected), atol=1e-15)


def test_without_a_verifier_it_is_the_neutral_theory():
    # theory.discrete computes the neutral chain one symbol at a time (a binomial chain) and by duality.
    q, m, g = discrete.zipf(4, 1.1), 12, 60
    law = selection.chain_law(q, np.ones(4), sample_size=m, generations=g)
    np.testing.assert_allclose(law["wins"], neutral.fixation_probabilities(q, sample_size=m, generations=g),
                               atol=1e-12)
    np.testing.assert_allclose(law["survivors"], neutral.expected_survivors(q, sample_size=m, generations=g),
                               atol=1e-11)
    np.testing.assert_allclose(law["mass"], np.broadcast_to(q, law["mass"].shape), atol=1e-12)  # a martingale
    np.testing.assert_allclose(law["wins_limit"], q, atol=1e-12)  # a neutral symbol wins with probability q_k
    np.testing.assert_allclose(law["fixed"], law["wins"].sum(axis=1), atol=1e-12)
    # E[p_n(k)^2] = q_k^2 + q_k (1 - q_k) (1 - (1 - 1/M)^n) (the neutral chain's variance, a closed form)
    n = np.arange(g + 1)[:, None]
    np.testing.assert_allclose(law["mass_sq"], q**2 + q * (1 - q) * (1 - (1 - 1 / m) ** n), atol=1e-12)


def test_two_symbols_with_selection_are_the_binomial_chain():
    # K = 2: the count of symbol 0 is Binomial(M, c w0 / (c w0 + (M - c) w1)), built here with scipy.
    q, w, m, g = np.array([0.3, 0.7]), np.array([1.0, 0.8]), 15, 80
    c = np.arange(m + 1)
    p = c * w[0] / (c * w[0] + (m - c) * w[1])
    P = stats.binom.pmf(c[None, :], m, p[:, None])  # [c, c']
    law = stats.binom.pmf(c, m, q[0])  # generation 1
    fixed0 = [0.0]
    for n in range(1, g + 1):
        fixed0.append(law[m])
        law = law @ P
    exact = selection.chain_law(q, w, sample_size=m, generations=g)
    np.testing.assert_allclose(exact["wins"][:, 0], fixed0, atol=1e-12)
    limit = np.linalg.matrix_power(P, 4000)[:, m] @ stats.binom.pmf(c, m, q[0])
    assert exact["wins_limit"][0] == pytest.approx(limit, abs=1e-10)
    assert exact["wins_limit"][0] > q[0] + 0.2  # selection, not drift
    # Kimura's diffusion formula (approximate: O(1/M) terms dropped) is close but not equal
    s = 1 - w[1]
    kimura = np.sum(stats.binom.pmf(c, m, q[0]) * (1 - np.exp(-2 * m * s * c / m)) / (1 - np.exp(-2 * m * s)))
    assert abs(kimura - limit) < 0.05


def test_the_infinite_m_recursion_is_q_tilted_n_minus_1_times():
    q, w = discrete.zipf(3, 1.0), np.array([1.0, 0.5, 0.25])
    d = selection.deterministic(q, w, generations=5)
    for n in range(1, 6):
        expected = q * w ** (n - 1) / np.sum(q * w ** (n - 1))
        np.testing.assert_allclose(d[n], expected, rtol=1e-12)
    np.testing.assert_allclose(d[0], q)


# -- the chains against the exact law


def _state_index(states):
    return {tuple(s): i for i, s in enumerate(states.tolist())}


@pytest.mark.parametrize("tau", [0.8, 2.0])
def test_the_chains_joint_law_is_the_exact_one_step_law_iterated(tau):
    # The whole count vector (not one symbol's margin) of generations 2 and 3 against
    # initial law x T and x T^2: a wrong tilt, a wrong key or a wrong weight shows.
    from conftest import chisquare_pvalue

    k, m, r = 3, 6, 20_000
    q = discrete.zipf(k, 1.1)
    w = discrete.verifier_weights(k, 0.0, tau)
    states, T = selection.transition_matrix(w, m)
    index = _state_index(states)
    counts = np.asarray(discrete.simulate(11, probs=q, sample_size=m, generations=3, replicates=r,
                                          regime=verifier(tau)).counts)
    law = selection.initial_law(q, states, m)
    for n in range(3):  # generations 1, 2, 3
        observed = np.bincount([index[tuple(c)] for c in counts[:, n].tolist()], minlength=len(states))
        assert chisquare_pvalue(observed, r * law) > 1e-4, n + 1
        law = law @ T
    # the test tells the verifier's law from the neutral one
    _, T0 = selection.transition_matrix(np.ones(k), m)
    neutral2 = selection.initial_law(q, states, m) @ T0
    observed = np.bincount([index[tuple(c)] for c in counts[:, 1].tolist()], minlength=len(states))
    assert chisquare_pvalue(observed, r * neutral2) < 1e-6


def test_summaries_of_the_chains_match_the_exact_law():
    q, m, g, r, tau = discrete.zipf(3, 1.1), 8, 40, 3000, 1.5
    regime = verifier(tau)
    run = discrete.simulate_verify(2, probs=q, sample_size=m, generations=g, replicates=r, regime=regime)
    by_gen, by_sym = discrete.summarize_verify(*run, probs=q, sample_size=m,
                                               weights=discrete.acceptance_weights(regime, 3))
    for name in ("fixed", "survivors", "top_mass"):
        sim, se, exact = by_gen[name][1:], by_gen[f"{name}_se"][1:], by_gen[f"{name}_theory"][1:]
        assert np.all(np.abs(sim - exact) <= Z * se + 1e-3), (name, np.max(np.abs(sim - exact) / (se + 1e-12)))
    assert np.all(np.abs(by_sym["wins"] - by_sym["wins_theory"]) <= Z * by_sym["wins_se"] + 2e-3)
    assert by_gen["fixed"][-1] > 0.95 and by_sym["wins"][0] > q[0] + 0.2
    # the exact law's standard error of a mean of R chains is what the chains' spread estimates
    np.testing.assert_allclose(by_gen["top_mass_se"][1:6], by_gen["top_mass_theory_se"][1:6], rtol=0.1)
    np.testing.assert_allclose(by_sym["wins_se"][:2], by_sym["wins_theory_se"][:2], rtol=0.1)
    # the approximation is not the exact law: at this M it overshoots the mode's mass
    assert np.max(np.abs(by_gen["top_mass_deterministic"] - by_gen["top_mass_theory"])) > 0.02


def test_summaries_of_hand_made_chains():
    # Two chains, K = 3, M = 4, G = 3. Chain 0 loses symbol 2 at generation 1 and symbol 1 at 3;
    # chain 1 keeps everything. first_zero = G + 1 = 4 means never lost.
    first_zero = np.array([[4, 3, 1], [4, 4, 4]])
    top = np.array([[2, 3, 4], [1, 2, 2]], np.int16)  # symbol 0's count in generations 1..3
    final = np.array([[4, 0, 0], [2, 1, 1]])
    q = np.array([0.5, 0.3, 0.2])
    by_gen, by_sym = discrete.summarize_verify(first_zero, top, final, probs=q, sample_size=4,
                                               weights=np.full(3, 2**discrete.VERIFY_BITS))
    np.testing.assert_array_equal(by_gen["survivors"], [3, 2.5, 2.5, 2])
    np.testing.assert_array_equal(by_gen["fixed"], [0, 0, 0, 0.5])
    np.testing.assert_allclose(by_gen["top_mass"], [0.5, 3 / 8, 5 / 8, 6 / 8])
    np.testing.assert_allclose(by_gen["top_mass_se"][1:], np.std([[0.5, 0.25], [0.75, 0.5], [1, 0.5]], axis=1,
                                                                  ddof=1) / np.sqrt(2))
    np.testing.assert_array_equal(by_gen["top_mass_se"][0], 0.0)
    np.testing.assert_array_equal(by_sym["wins"], [0.5, 0, 0])
    np.testing.assert_array_equal(by_sym["w"], [1, 1, 1])


def test_regimes_with_real_data_are_refused():
    mixed = Regime.from_config({"name": "verify", "b": 0.0, "tau": 1.0, "real_fraction": 0.1})
    with pytest.raises(ValueError, match="without real data"):
        discrete.simulate_verify(0, probs=discrete.zipf(3, 1.0), sample_size=5, generations=2, replicates=2,
                                 regime=mixed)


# -- the numbers


def _rows(label, tau, fixed, wins1, wins1_theory):
    gen = [{"regime": label, "tau": repr(tau), "b": "0.0", "num_symbols": "2", "sample_size": "5",
            "generations": "3", "replicates": "100", "generation": str(n), "fixed": repr(f), "fixed_se": "0.01",
            "fixed_theory": repr(f), "fixed_theory_se": "0.01", "top_mass": "0.5", "top_mass_se": "0.01",
            "top_mass_theory": "0.5", "top_mass_theory_se": "0.01", "top_mass_deterministic": "0.5"}
           for n, f in enumerate(fixed)]
    sym = [{"regime": label, "tau": repr(tau), "num_symbols": "2", "symbol": str(s), "q": "0.6" if s == 1 else "0.4",
            "wins": repr(w), "wins_se": "0.03", "wins_theory": repr(t), "wins_theory_se": "0.05",
            "wins_limit": repr(t)}
           for s, w, t in ((1, wins1, wins1_theory), (2, 1 - wins1, 1 - wins1_theory))]
    return gen, sym


def test_numbers_name_the_roles_and_the_half_collapse_generation():
    from modelcollapse.tables.discrete import verify_numbers

    parts = [_rows("replace", float("inf"), [0, 0.1, 0.3, 0.6], 0.6, 0.6),
             _rows("verify-tau1", 1.0, [0, 0.5, 0.9, 1.0], 0.9, 0.8),
             _rows("verify-tau3", 3.0, [0, 0.2, 0.4, 0.45], 0.7, 0.7)]
    out = verify_numbers([r for g, _ in parts for r in g], [r for _, s in parts for r in s])
    assert out["discrete.verify.taus"] == "1, 3"
    assert (out["discrete.verify.strong.half"], out["discrete.verify.neutral.half"],
            out["discrete.verify.weak.half"]) == ("1", "3", ">3")
    assert out["discrete.verify.strong.wins1"] == r"0.900\pm0.030"
    assert out["discrete.verify.max_z"] == "2.00"  # (0.9 - 0.8) / 0.05 (the exact law's s.e.), the only deviation
    assert out["discrete.verify.q1"] == "0.600"


# -- the CLI end to end


def _config():
    import yaml

    from conftest import ROOT

    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config["discrete"]["verify"] = {"num_symbols": 3, "sample_size": 6, "generations": 12, "replicates": 50,
                                    "b": 1.0, "taus": [0.5, 2.0]}
    return config


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "modelcollapse", *map(str, args)], capture_output=True, text=True)


def test_cli_runs_the_verification_end_to_end(tmp_path):
    from modelcollapse import io

    config = _config()
    block = json.dumps({k: v for k, v in config.items() if k == "discrete" or not isinstance(v, dict)})
    npz, csv, sym = tmp_path / "verify.npz", tmp_path / "verify.csv", tmp_path / "verify_symbols.csv"
    run = _cli("discrete", "simulate", "--config-json", block, "--part", "verify", "--out", npz)
    assert run.returncode == 0, run.stderr
    data = io.load_npz(npz)
    assert list(data["labels"]) == ["replace", "verify-b1-real_fraction0-tau0.5", "verify-b1-real_fraction0-tau2"]
    assert data["first_zero"].shape == (3, 50, 3) and data["top"].shape == (3, 50, 12)
    np.testing.assert_array_equal(data["weights"][1], discrete.verifier_weights(3, 1.0, 0.5))
    assert (tmp_path / "verify.npz.provenance.json").is_file()
    run = _cli("discrete", "verify", "--out", csv, "--symbols-out", sym, npz)
    assert run.returncode == 0, run.stderr
    rows, srows = io.read_csv(csv), io.read_csv(sym)
    assert len(rows) == 3 * 13 and len(srows) == 3 * 3
    b1 = [r for r in srows if r["regime"].endswith("tau0.5")]
    # b = 1 favours rank 2, which wins far more often than its q_2 (exact and simulated)
    rank2 = next(r for r in b1 if r["symbol"] == "2")
    assert float(rank2["wins_theory"]) > float(rank2["q"]) + 0.2
    run = _cli("discrete", "verify-figure", "--summary", csv, "--symbols", sym, "--out", tmp_path / "f.pdf")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0
    run = _cli("discrete", "verify-numbers", "--summary", csv, "--symbols", sym, "--numbers", tmp_path / "n.tex")
    assert run.returncode == 0, run.stderr
    text = (tmp_path / "n.tex").read_text()
    assert r"\mcdef{discrete.verify.tau_strong}{0.5}" in text and r"\mcdef{discrete.verify.b}{1}" in text
    # a simulate output is not a verification run
    run = _cli("discrete", "verify", "--out", tmp_path / "x.csv", "--symbols-out", tmp_path / "y.csv",
               tmp_path / "f.pdf")
    assert run.returncode != 0 and not (tmp_path / "x.csv").exists()


def test_the_config_check_names_the_verify_keys():
    from modelcollapse.config import ConfigError, check_config

    config = _config()
    config["discrete"]["verify"] |= {"num_symbols": 10, "sample_size": 20}
    with pytest.raises(ConfigError, match="'discrete.verify.num_symbols'.*4000"):
        check_config(config)
    config = _config()
    config["discrete"]["verify"]["taus"] = [0.0]
    with pytest.raises(ConfigError, match="discrete.verify.taus"):
        check_config(config)
    config = _config()
    del config["discrete"]["verify"]
    with pytest.raises(ConfigError, match="verify"):
        check_config(config)


def test_part_verify_needs_the_block_and_no_keep():
    run = _cli("discrete", "simulate", "--part", "verify", "--out", "unused.npz")
    assert run.returncode != 0 and "--config-json" in run.stderr
    block = json.dumps({k: v for k, v in _config().items() if k == "discrete" or not isinstance(v, dict)})
    run = _cli("discrete", "simulate", "--config-json", block, "--part", "verify", "--keep", "final", "--out", "u.npz")
    assert run.returncode != 0 and "--keep" in run.stderr
