"""Decoding: the logits processors against hand-computed cases; greedy, beam search and sampling on toy
models whose next-token distributions are known exactly (a lookup table over the whole history), held
to exhaustive enumeration, hand-worked searches and a line-by-line Python model of Hugging Face's beam
search; sampling frequencies against the exact distribution; chunking, keys and compilation; and the
GPT's KV cache against full recomputation (fixed seeds; tolerances derived below)."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import chisquare_pvalue

from modelcollapse.lm import generate as gen
from modelcollapse.lm.generate import Decoder, generate

NEG = -np.inf


# -- a toy model: next-token logits looked up from the whole history


def _code(history, vocab):
    """Trie index of a token sequence: code(s + [a]) = code(s) * V + a + 1, code([]) = 0."""
    code = 0
    for token in history:
        code = code * vocab + int(token) + 1
    return code


def _rows(vocab, length):
    """Table rows needed for histories of up to `length` tokens."""
    return sum(vocab ** d for d in range(length + 1))


def tree_init_cache(batch_size, max_length):
    return {"tokens": jnp.zeros((batch_size, max_length), jnp.int32)}


def tree_decode(table, tokens, cache, position):
    """logits [B, T, V]: row code(history up to and including each chunk position) of `table`.

    The cache holds the tokens written so far, so a beam-reordering or position bug changes the output.
    """
    vocab = table.shape[1]
    written = jax.lax.dynamic_update_slice(cache["tokens"], tokens.astype(jnp.int32), (0, position))
    code, codes = jnp.zeros(tokens.shape[0], jnp.int32), []
    for j in range(written.shape[1]):
        code = code * vocab + written[:, j] + 1
        codes.append(code)
    chunk = jax.lax.dynamic_slice_in_dim(jnp.stack(codes, 1), position, tokens.shape[1], axis=1)
    return table[jnp.clip(chunk, 0, table.shape[0] - 1)], {"tokens": written}


def tree(table):
    return Decoder(jnp.asarray(table, jnp.float32), tree_decode, tree_init_cache)


def random_table(seed, vocab, length, scale=2.0, eos=None, eos_boost=0.0):
    table = np.random.default_rng(seed).normal(0.0, scale, (_rows(vocab, length), vocab))
    if eos is not None:
        table[:, eos] += eos_boost
    return table.astype(np.float32)


def set_probs(table, history, probs):
    table[_code(history, table.shape[1])] = np.log(np.asarray(probs, np.float64))


def log_softmax(x):
    x = np.asarray(x, np.float64)
    return x - x.max() - np.log(np.sum(np.exp(x - x.max())))


def next_logp(table, history):
    return log_softmax(table[_code(history, table.shape[1])])


# -- references written from the definitions (numpy, float64)


def penalise(scores, present, penalty):
    scores = np.array(scores, np.float64)
    for token in set(int(t) for t in present):
        scores[token] = scores[token] / penalty if scores[token] > 0 else scores[token] * penalty
    return scores


def ref_greedy(table, prompt, n, penalty=1.0):
    seq, score = list(prompt), 0.0
    for _ in range(n):
        logits = penalise(table[_code(seq, table.shape[1])], seq, penalty)
        token = int(np.argmax(logits))
        score += log_softmax(logits)[token]
        seq.append(token)
    return seq[len(prompt):], score


def ref_beam(logp_fn, prompt, n, k, *, eos=None, length_penalty=1.0, penalty=1.0, info=None):
    """Hugging Face's beam search (BeamHypotheses; generated lengths; transformers 5's early-stop rule)
    as a plain Python loop.

    logp_fn(history) -> log-probabilities [V]; the repetition penalty acts on them (HF applies its
    processors after log-softmax in beam search). Returns (new tokens padded with eos, score); `info`
    (a dict) receives whether the prompt was done before the last step.
    """
    beams = [((), 0.0)] + [((), -1e9)] * (k - 1)
    hyps, worst, done = [], 1e9, False

    def add(seq, score):  # BeamHypotheses.add
        nonlocal worst
        if len(hyps) < k or score > worst:
            hyps.append((score, seq))
            if len(hyps) > k:
                ranked = sorted((s, i) for i, (s, _) in enumerate(hyps))
                del hyps[ranked[0][1]]
                worst = ranked[1][0]
            else:
                worst = min(score, worst)

    for t in range(n):
        candidates = []
        for b, (seq, score) in enumerate(beams):
            logp = penalise(logp_fn(list(prompt) + list(seq)), list(prompt) + list(seq), penalty)
            candidates += [(score + logp[v], b, v) for v in range(len(logp))]
        candidates = sorted(candidates, key=lambda c: -c[0])[:2 * k]
        running = []
        for rank, (score, b, v) in enumerate(candidates):
            if eos is not None and v == eos:
                if rank < k:
                    add(beams[b][0] + (v,), score / (t + 1) ** length_penalty)
            else:
                running.append((beams[b][0] + (v,), score))
            if len(running) == k:
                break
        beams = running
        if eos is not None and len(hyps) >= k:  # early_stopping=False: against the best running beam
            done = worst >= beams[0][1] / (t + 1) ** length_penalty
        if done:
            break
    if info is not None:
        info["done"] = done
    if not done:
        for seq, score in beams:
            add(seq, score / n ** length_penalty)
    score, seq = max(hyps, key=lambda h: h[0])
    return list(seq) + [eos] * (n - len(seq)), score


# -- logits processors, by hand


def test_repetition_penalty_by_hand():
    # Present tokens 0 (twice) and 1; slot 3 is past V (an empty slot): ignored.
    scores = jnp.array([[1.0, -2.0, 0.5, 3.0], [1.0, -2.0, 0.5, 3.0]])
    history = jnp.array([[0, 1, 0, 4], [3, 2, 2, 2]])
    out = np.asarray(gen.apply_repetition_penalty(scores, history, 2.0))
    np.testing.assert_array_equal(out, [[0.5, -4.0, 0.5, 3.0], [1.0, -2.0, 0.25, 1.5]])


def test_presence_mask_penalty_equals_the_scatter():
    # generate's steps penalise through a presence mask [N, V]: bit for bit the public gather/scatter,
    # with repeated tokens, out-of-vocabulary entries (empty slots) and scores of both signs.
    rng = np.random.default_rng(0)
    scores = jnp.asarray(rng.normal(size=(40, 23)), jnp.float32)
    history = jnp.asarray(rng.integers(0, 30, (40, 17)), jnp.int32).at[:, -3:].set(gen._EMPTY)
    for penalty in (3.0, 0.7):
        want = np.asarray(gen.apply_repetition_penalty(scores, history, penalty))
        got = np.asarray(gen._penalize_present(scores, gen._present(history, 23), penalty))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k,kept", [(1, [1, 2]), (2, [1, 2]), (3, [1, 2, 3]), (10, [0, 1, 2, 3])])
def test_top_k_keeps_the_k_largest_and_ties(k, kept):
    logits = jnp.array([[1.0, 3.0, 3.0, 2.0]])
    out = np.asarray(gen.top_k_filter(logits, k))[0]
    assert list(np.flatnonzero(np.isfinite(out))) == kept
    np.testing.assert_array_equal(out[kept], np.asarray(logits)[0, kept])


@pytest.mark.parametrize("p,kept", [(0.4, [3]), (0.75, [1, 3]), (0.85, [1, 2, 3]), (1.0, [0, 1, 2, 3]),
                                    (1e-6, [3])])
def test_top_p_keeps_the_smallest_set_reaching_p(p, kept):
    # probabilities 0.05, 0.3, 0.15, 0.5: cumulative from the top 0.5, 0.8, 0.95, 1
    logits = jnp.log(jnp.array([[0.05, 0.3, 0.15, 0.5]]))
    out = np.asarray(gen.top_p_filter(logits, p))[0]
    assert list(np.flatnonzero(np.isfinite(out))) == kept


# -- greedy and beam search against exact answers


PROMPTS = np.array([[0, 1], [2, 0], [1, 1], [2, 2]])


@pytest.mark.parametrize("penalty", [1.0, 3.0])
def test_greedy_matches_reference(penalty):
    table = random_table(0, vocab=3, length=6)
    tokens, scores = generate(tree(table), PROMPTS, max_new_tokens=4, mode="greedy",
                              repetition_penalty=penalty, return_scores=True)
    for row, prompt in enumerate(PROMPTS):
        want, score = ref_greedy(table, prompt, 4, penalty)
        assert list(tokens[row]) == want
        assert abs(scores[row] - score) < 1e-5  # float32 log-softmax of O(1) logits, four terms


def test_one_beam_is_greedy():
    table = random_table(1, vocab=4, length=6)
    greedy = generate(tree(table), PROMPTS, max_new_tokens=4, mode="greedy", return_scores=True)
    beam = generate(tree(table), PROMPTS, max_new_tokens=4, mode="beam", num_beams=1, length_penalty=0.0,
                    return_scores=True)
    np.testing.assert_array_equal(beam[0], greedy[0])
    np.testing.assert_allclose(beam[1], greedy[1], atol=1e-5)


def test_beam_beats_greedy_by_hand():
    # After prompt [0]: token 1 (p .40) leads to a flat distribution, token 2 (p .35) to a peaked one.
    # Greedy: 1, then 0 (p .34): log .40 + log .34 = -1.995. Width 2 keeps [1] and [2] after step one,
    # then compares [1, 0] (-1.995) with [2, 0]: log .35 + log .9 = -1.155, and returns [2, 0].
    table = np.zeros((_rows(3, 2), 3), np.float32)
    set_probs(table, [0], [0.25, 0.40, 0.35])
    set_probs(table, [0, 1], [0.34, 0.33, 0.33])
    set_probs(table, [0, 2], [0.90, 0.05, 0.05])
    set_probs(table, [0, 0], [0.34, 0.33, 0.33])
    prompt = np.array([[0]])
    assert list(generate(tree(table), prompt, max_new_tokens=2, mode="greedy")[0]) == [1, 0]
    tokens, score = generate(tree(table), prompt, max_new_tokens=2, mode="beam", num_beams=2, length_penalty=0.0,
                             return_scores=True)
    assert list(tokens[0]) == [2, 0]
    assert abs(score[0] - np.log(0.35 * 0.9)) < 1e-6


@pytest.mark.parametrize("vocab,n", [(3, 3), (4, 2)])
def test_wide_beam_finds_the_exhaustive_best(vocab, n):
    # With K = V^(n-1) beams every prefix survives until the last step, so the search is exhaustive.
    table = random_table(2, vocab=vocab, length=2 + n)
    k = vocab ** (n - 1)
    tokens, scores = generate(tree(table), PROMPTS % vocab, max_new_tokens=n, mode="beam", num_beams=k,
                              return_scores=True)
    for row, prompt in enumerate(PROMPTS % vocab):
        totals = {seq: sum(next_logp(table, list(prompt) + list(seq[:i]))[seq[i]] for i in range(n))
                  for seq in itertools.product(range(vocab), repeat=n)}
        best = max(totals, key=totals.get)
        assert tuple(tokens[row]) == best
        assert abs(scores[row] - totals[best] / n) < 1e-5  # length_penalty 1: sum / n


@pytest.mark.parametrize("k,penalty,seed", [(2, 1.0, 3), (2, 3.0, 4), (3, 1.0, 5), (3, 3.0, 6)])
def test_beam_matches_hf_reference_without_eos(k, penalty, seed):
    table = random_table(seed, vocab=5, length=6)
    prompts = np.random.default_rng(seed).integers(0, 5, (6, 2))
    tokens, scores = generate(tree(table), prompts, max_new_tokens=5, mode="beam", num_beams=k,
                              repetition_penalty=penalty, return_scores=True)
    for row, prompt in enumerate(prompts):
        want, score = ref_beam(functools.partial(next_logp, table), prompt, 5, k, penalty=penalty)
        assert list(tokens[row]) == want
        assert abs(scores[row] - score) < 1e-5


@pytest.mark.parametrize("k,length_penalty,penalty,seed", [(2, 1.0, 1.0, 7), (2, 0.0, 1.0, 8), (3, 2.0, 1.0, 9),
                                                           (3, -1.0, 1.0, 10), (2, 1.0, 3.0, 11), (2, 2.0, 1.0, 30)])
def test_beam_matches_hf_reference_with_eos(k, length_penalty, penalty, seed):
    # EOS made likely (boost 1.5 on a N(0, 2) logit) so hypotheses finish, prompts get done early, and
    # EOS candidates below rank K are dropped. Seed 30: the early-stop rule matters (transformers 4.x's,
    # against the best candidate instead of the best running beam, changes 5 of the 12 rows).
    eos = 4
    table = random_table(seed, vocab=6, length=6, eos=eos, eos_boost=1.5)
    prompts = np.random.default_rng(seed).integers(0, 4, (12, 2))
    tokens, scores = generate(tree(table), prompts, max_new_tokens=5, mode="beam", num_beams=k, eos_token_id=eos,
                              length_penalty=length_penalty, repetition_penalty=penalty, return_scores=True)
    ended, done = 0, 0
    for row, prompt in enumerate(prompts):
        info = {}
        want, score = ref_beam(functools.partial(next_logp, table), prompt, 5, k, eos=eos,
                               length_penalty=length_penalty, penalty=penalty, info=info)
        assert list(tokens[row]) == want
        assert abs(scores[row] - score) < 1e-5
        ended += eos in want
        done += info["done"]
    # The branches ran: hypotheses ending in EOS won, some prompts kept running to the end, and (for
    # length_penalty <= 1, where the heuristic can fire within 5 steps here) some were done early.
    assert ended > 0 and done < len(prompts)
    assert done > 0 or length_penalty > 1


def eos_table():
    """V = 3, EOS = 2, prompt [0]: EOS first (p .5), or 1, 1, 1 (p .3 * .9 * .9)."""
    table = np.zeros((_rows(3, 3), 3), np.float32)
    set_probs(table, [0], [0.2, 0.3, 0.5])
    set_probs(table, [0, 1], [0.05, 0.9, 0.05])
    set_probs(table, [0, 1, 1], [0.05, 0.9, 0.05])
    set_probs(table, [0, 0], [0.5, 0.3, 0.2])
    set_probs(table, [0, 0, 0], [0.5, 0.3, 0.2])
    return table


@pytest.mark.parametrize("length_penalty,want,score", [
    # finished [EOS]: log .5 / 1; beam [1, 1, 1]: log(.3 * .81) / 3**lp; [0, 0, 0]: log(.125) / 3**lp
    (0.0, [2, 2, 2], np.log(0.5)),
    (0.5, [2, 2, 2], np.log(0.5)),  # log(.243) / sqrt 3 = -0.816 < -0.693
    (1.0, [1, 1, 1], np.log(0.3 * 0.81) / 3),  # -0.471 > -0.693
])
def test_eos_and_length_penalty_by_hand(length_penalty, want, score):
    tokens, scores = generate(tree(eos_table()), np.array([[0]]), max_new_tokens=3, mode="beam", num_beams=2,
                              eos_token_id=2, length_penalty=length_penalty, return_scores=True)
    assert list(tokens[0]) == want
    assert abs(scores[0] - score) < 1e-6


def test_greedy_and_sampling_pad_after_eos():
    prompt = np.zeros((4000, 1), np.int32)
    tokens, scores = generate(tree(eos_table()), prompt[:1], max_new_tokens=3, mode="greedy", eos_token_id=2,
                              return_scores=True)
    assert list(tokens[0]) == [2, 2, 2] and abs(scores[0] - np.log(0.5)) < 1e-6  # scoring stops at EOS
    tokens = generate(tree(eos_table()), prompt, max_new_tokens=3, key=jax.random.key(0), eos_token_id=2)
    first = np.argmax(tokens == 2, axis=1)
    after = np.arange(3)[None] >= first[:, None]
    assert np.all(tokens[after & (tokens == 2).any(1)[:, None]] == 2)
    # P(EOS first) = 0.5; 4 standard errors of a proportion over 4000 rows
    assert abs(np.mean(tokens[:, 0] == 2) - 0.5) < 4 * np.sqrt(0.25 / len(prompt))


@pytest.mark.parametrize("penalty,want", [(1.0, [0, 0, 0, 0]), (2.0, [1, 0, 0, 0]), (4.0, [1, 2, 0, 0])])
def test_greedy_repetition_penalty_by_hand(penalty, want):
    # Logits [3, 2, 1] after every history; prompt [0]. Penalty 4: step 1 sees [.75, 2, 1] -> 1;
    # step 2 [.75, .5, 1] -> 2; then all present [.75, .5, .25] -> 0. Penalty 2: [1.5, 2, 1] -> 1,
    # then [1.5, 1, 1] -> 0 for good.
    table = np.tile(np.array([3.0, 2.0, 1.0], np.float32), (_rows(3, 4), 1))
    assert list(generate(tree(table), np.array([[0]]), max_new_tokens=4, mode="greedy",
                         repetition_penalty=penalty)[0]) == want


# -- sampling


def test_low_temperature_and_top_k_one_are_greedy():
    table = random_table(12, vocab=5, length=6)
    greedy = generate(tree(table), PROMPTS, max_new_tokens=4, mode="greedy")
    key = jax.random.key(1)
    # Temperature 1e-3 turns a logit gap of g >= 1e-2 into probability <= exp(-10) of the runner-up.
    gaps = [np.diff(np.sort(table[_code(list(p) + list(greedy[r, :i]), 5)])[-2:])[0]
            for r, p in enumerate(PROMPTS) for i in range(4)]
    assert min(gaps) > 1e-2
    np.testing.assert_array_equal(generate(tree(table), PROMPTS, max_new_tokens=4, key=key, temperature=1e-3), greedy)
    np.testing.assert_array_equal(generate(tree(table), PROMPTS, max_new_tokens=4, key=key, top_k=1), greedy)


def warped_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """Sampling distribution from the definitions: scale, keep the k largest, keep the nucleus."""
    z = np.asarray(logits, np.float64) / temperature
    if top_k is not None:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    prob = np.exp(z - z.max())
    prob /= prob.sum()
    if top_p is not None:
        order = np.argsort(-prob)
        size = int(np.searchsorted(np.cumsum(prob[order]), top_p) + 1)  # first prefix reaching p
        prob[order[size:]] = 0.0
        prob /= prob.sum()
    return prob


@pytest.mark.parametrize("settings", [{}, {"temperature": 0.5}, {"top_k": 2}, {"top_p": 0.7},
                                      {"temperature": 2.0, "top_k": 2, "repetition_penalty": 2.0}])
def test_sampling_frequencies_match_the_distribution(settings):
    # Two tokens after prompt [1] from V = 3: nine outcomes with exactly known probabilities, 20,000
    # draws, Pearson's chi-square against its 1 - 1e-4 quantile (about 30 for 8 degrees of freedom);
    # a warper applied wrongly moves some cell by several percent, i.e. a chi-square in the hundreds.
    # Outcomes of probability 0 (filtered out by top-k / top-p) must never occur.
    draws, vocab = 20_000, 3
    table = random_table(13, vocab=vocab, length=2)
    penalty = settings.get("repetition_penalty", 1.0)
    warp = {name: settings[name] for name in ("temperature", "top_k", "top_p") if name in settings}
    expected = np.zeros((vocab, vocab))
    first = warped_probs(penalise(table[_code([1], vocab)], [1], penalty), **warp)
    for a in range(vocab):
        second = warped_probs(penalise(table[_code([1, a], vocab)], [1, a], penalty), **warp)
        expected[a] = first[a] * second
    tokens = generate(tree(table), np.ones((draws, 1), np.int32), max_new_tokens=2, key=jax.random.key(7),
                      **settings)
    observed = np.zeros((vocab, vocab))
    np.add.at(observed, (tokens[:, 0], tokens[:, 1]), 1)
    zero = expected == 0
    assert observed[zero].sum() == 0
    assert chisquare_pvalue(observed[~zero], expected[~zero] * draws) > 1e-4, (expected, observed / draws)


# -- a verifier's veto (`rejected`): the model's law conditioned on acceptance


def vetoed_logp(table, rejected, history):
    """log-probabilities [V] of the next token given acceptance: rejected successors of the last token removed."""
    logits = np.array(table[_code(history, table.shape[1])], np.float64)
    logits[rejected[history[-1]]] = -np.inf
    return log_softmax(logits)


REJECTED = np.array([[False, True, False, False, True],
                     [True, False, False, True, False],
                     [False, False, True, True, True],
                     [False, True, True, False, False],
                     [True, True, False, True, False]])


@pytest.mark.parametrize("k,penalty,seed", [(2, 1.0, 21), (3, 3.0, 22)])
def test_beam_under_a_verifier_matches_the_reference_on_renormalised_scores(k, penalty, seed):
    table = random_table(seed, vocab=5, length=6)
    prompts = np.random.default_rng(seed).integers(0, 5, (6, 2))
    tokens, scores = generate(tree(table), prompts, max_new_tokens=5, mode="beam", num_beams=k,
                              repetition_penalty=penalty, rejected=REJECTED, return_scores=True)
    plain = generate(tree(table), prompts, max_new_tokens=5, mode="beam", num_beams=k, repetition_penalty=penalty)
    assert (tokens != plain).any()  # the veto changes the search here
    for row, prompt in enumerate(prompts):
        seq = np.concatenate([prompt[-1:], tokens[row]])
        assert not REJECTED[seq[:-1], seq[1:]].any()
        want, score = ref_beam(functools.partial(vetoed_logp, table, REJECTED), prompt, 5, k, penalty=penalty)
        assert list(tokens[row]) == want
        assert abs(scores[row] - score) < 1e-5


def test_greedy_under_a_verifier_takes_the_best_accepted_token():
    table = random_table(23, vocab=5, length=6)
    tokens = generate(tree(table), PROMPTS, max_new_tokens=4, mode="greedy", rejected=REJECTED)
    for row, prompt in enumerate(PROMPTS):
        seq = list(prompt)
        for _ in range(4):
            seq.append(int(np.argmax(vetoed_logp(table, REJECTED, seq))))
        assert list(tokens[row]) == seq[len(prompt):]


def test_sampling_under_a_verifier_draws_the_conditioned_law():
    # Two tokens after prompt [1] from V = 3 with transitions 1 -> 0 and 2 -> 2 rejected: the pairs' law
    # is the model's renormalised over accepted tokens at each step (chi-square as above); a rejected
    # pair never occurs.
    draws, vocab = 20_000, 3
    rejected = np.zeros((vocab, vocab), bool)
    rejected[1, 0] = rejected[2, 2] = True
    table = random_table(24, vocab=vocab, length=2)
    first = np.exp(vetoed_logp(table, rejected, [1]))
    expected = np.array([first[a] * np.exp(vetoed_logp(table, rejected, [1, a])) for a in range(vocab)])
    tokens = generate(tree(table), np.ones((draws, 1), np.int32), max_new_tokens=2, key=jax.random.key(8),
                      rejected=rejected)
    observed = np.zeros((vocab, vocab))
    np.add.at(observed, (tokens[:, 0], tokens[:, 1]), 1)
    zero = expected == 0
    assert zero.sum() == 5 and observed[zero].sum() == 0  # first token 0 (three pairs), (1, 0) and (2, 2)
    assert chisquare_pvalue(observed[~zero], expected[~zero] * draws) > 1e-4, (expected, observed / draws)


@pytest.mark.parametrize("rejected,what", [(np.zeros((3, 2), bool), "bool array"),
                                           (np.zeros((3, 3), int), "bool array"),
                                           (np.eye(3, dtype=bool) | np.eye(3, k=1, dtype=bool) | np.eye(3, k=-1, dtype=bool)
                                            | np.eye(3, k=2, dtype=bool) | np.eye(3, k=-2, dtype=bool), "accepts some"),
                                           (np.zeros((4, 4), bool), r"\[V, V\] = \(3, 3\)")])
def test_a_bad_verifier_table_is_refused(rejected, what):
    with pytest.raises(ValueError, match=what):
        generate(tree(random_table(0, vocab=3, length=3)), np.zeros((2, 2), np.int32), max_new_tokens=2,
                 mode="greedy", rejected=rejected)


# -- chunking, keys, compilation


@pytest.mark.parametrize("mode", ["sample", "greedy", "beam"])
@pytest.mark.parametrize("group_rows", [1, 6, 10_000])
def test_groups_within_a_chunk_do_not_change_results(mode, group_rows, monkeypatch):
    # A chunk decodes in groups of about GROUP_ROWS rows (lax.map; the last group padded): 1 row makes
    # 11 groups of one prompt; 6 rows 6 groups of 2 prompts (beam, 3 beams each) or 2 groups of 6
    # (sampling, greedy), one prompt of padding; 10,000 one group, the chunk.
    table = random_table(16, vocab=5, length=6)
    prompts = np.random.default_rng(16).integers(0, 5, (11, 2))
    kwargs = dict(max_new_tokens=4, mode=mode, key=jax.random.key(3), num_beams=3, repetition_penalty=3.0,
                  eos_token_id=4, return_scores=True)
    monkeypatch.setattr(gen, "GROUP_ROWS", 10_000)
    whole = generate(tree(table), prompts, **kwargs)
    monkeypatch.setattr(gen, "GROUP_ROWS", group_rows)
    grouped = generate(tree(table), prompts, **kwargs)
    np.testing.assert_array_equal(grouped[0], whole[0])
    np.testing.assert_array_equal(grouped[1], whole[1])


def test_group_size():
    assert gen._group_size(250, 5, 129) == 25  # 10 groups of 25 prompts (125 rows)
    assert gen._group_size(250, 5, 100) == 20  # 13 groups of 20 prompts (100 rows), 10 padding
    assert gen._group_size(250, 1, 100) == 84  # 3 groups
    assert gen._group_size(7, 5, 100) == 7  # one group: the chunk
    assert gen._group_size(11, 3, 1) == 1
    assert gen._group_size(250, 5, None) == 250


def test_group_rows_from_cache_and_weight_sizes():
    from flax import nnx

    from modelcollapse.lm import model as model_mod

    def rows(config):
        model = model_mod.GPT(config, rngs=nnx.Rngs(0))
        decoder = Decoder(nnx.state(model), model_mod.model_fns(model)[1],
                          functools.partial(model_mod.init_cache, model))
        return gen._group_rows(decoder, 127)

    # The LM experiment's GPT: 2 x 4 x 127 x 16 floats per row -> 129 rows of 8 MiB.
    assert rows(model_mod.GPTConfig(vocab_size=200, context=128, n_layers=1, d_model=64, n_heads=4)) == 129
    # 13 MB of weights against 64 rows' 67 MB of cache (1 MB a row): more than a tenth, no grouping.
    assert rows(model_mod.GPTConfig(vocab_size=200, context=128, n_layers=4, d_model=256, n_heads=4)) is None


@pytest.mark.parametrize("mode", ["sample", "greedy", "beam"])
def test_chunking_does_not_change_results(mode):
    table = random_table(14, vocab=5, length=6)
    prompts = np.random.default_rng(14).integers(0, 5, (11, 2))
    kwargs = dict(max_new_tokens=4, mode=mode, key=jax.random.key(3), num_beams=3, repetition_penalty=1.5,
                  eos_token_id=4, return_scores=True)
    whole = generate(tree(table), prompts, **kwargs)
    for batch_size in (1, 4):  # 11 rows as 11 chunks of 1, and 3 of 4 with a padded last one
        split = generate(tree(table), prompts, batch_size=batch_size, **kwargs)
        np.testing.assert_array_equal(split[0], whole[0])
        np.testing.assert_allclose(split[1], whole[1], rtol=1e-6)
    # and samples do depend on the key (a different key changes some of the 44 draws)
    if mode == "sample":
        other = generate(tree(table), prompts, **{**kwargs, "key": jax.random.key(4)})
        assert not np.array_equal(other[0], whole[0])


def test_compiles_once_per_chunk_shape():
    traces = []

    def counting_decode(table, tokens, cache, position):
        traces.append(tokens.shape)  # runs only while tracing
        return tree_decode(table, tokens, cache, position)

    decoder = Decoder(jnp.asarray(random_table(15, vocab=4, length=5)), counting_decode, tree_init_cache)
    prompts = np.random.default_rng(15).integers(0, 4, (10, 2))
    first = generate(decoder, prompts, max_new_tokens=3, key=jax.random.key(0), batch_size=4)  # 3 chunks
    again = generate(decoder, prompts[:7], max_new_tokens=3, key=jax.random.key(0), batch_size=4)
    assert sum(shape == (4, 2) for shape in traces) == 1  # one trace of the prompt chunk for 5 calls
    np.testing.assert_array_equal(again, first[:7])  # prompt i keeps its key whatever follows it


@pytest.mark.parametrize("kwargs,name", [
    ({"mode": "top"}, "mode"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": 0.0}, "temperature"),
    ({"top_k": 0}, "top_k"), ({"top_p": 1.5}, "top_p"), ({"num_beams": 0}, "num_beams"),
    ({"repetition_penalty": -1.0}, "repetition_penalty"), ({"length_penalty": np.nan}, "length_penalty"),
    ({"eos_token_id": -1}, "eos_token_id"), ({"batch_size": 0}, "batch_size"), ({"key": None}, "key"),
    ({"prompts": np.zeros(3, np.int32)}, "prompts"), ({"prompts": np.full((2, 2), -1)}, "prompts"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    args = {"prompts": np.zeros((2, 2), np.int32), "max_new_tokens": 2, "key": jax.random.key(0), **kwargs}
    with pytest.raises(ValueError, match=name):
        generate(tree(random_table(0, vocab=3, length=3)), args.pop("prompts"), **args)


# -- the GPT: KV-cache decoding against full recomputation


def test_gpt_cached_greedy_and_beam_equal_full_recompute():
    from flax import nnx

    from modelcollapse.lm import model as model_mod

    config = model_mod.GPTConfig(vocab_size=29, context=12, n_layers=2, d_model=32, n_heads=4)
    model = model_mod.GPT(config, rngs=nnx.Rngs(0))
    # GPT-2's 0.02 init gives near-uniform logits; a larger embedding spreads them (logit std ~2), so
    # float rounding between the two computations cannot flip an argmax (margins checked below).
    model.wte.embedding[...] = model.wte.embedding[...] * 20.0
    apply_full, decode_fn = model_mod.model_fns(model)
    state = nnx.state(model)
    decoder = Decoder(state, decode_fn, functools.partial(model_mod.init_cache, model))
    prompts = np.random.default_rng(0).integers(0, 29, (3, 5))

    @jax.jit
    def full(tokens, length):
        """Full forward pass over tokens [B, context] (zeros after `length`); logits at length - 1.

        Causal attention: the padding after the sequence cannot change these logits, and one shape
        compiles once.
        """
        return apply_full(state, tokens)[:, length - 1]

    seq = np.zeros((3, config.context), np.int32)
    seq[:, :5] = prompts
    for length in range(5, 12):  # greedy by recomputing the whole sequence at every step
        logits = np.asarray(full(seq, length))
        top2 = np.sort(logits, axis=-1)[:, -2:]
        assert np.min(top2[:, 1] - top2[:, 0]) > 1e-3
        seq[:, length] = np.argmax(logits, -1)
    tokens = generate(decoder, prompts, max_new_tokens=7, mode="greedy", batch_size=2)
    np.testing.assert_array_equal(tokens, seq[:, 5:12])

    def logp(history):
        padded = np.zeros((1, config.context), np.int32)
        padded[0, :len(history)] = history
        return log_softmax(np.asarray(full(padded, len(history))[0], np.float64))

    tokens, scores = generate(decoder, prompts, max_new_tokens=4, mode="beam", num_beams=3, repetition_penalty=3.0,
                              return_scores=True)
    for row, prompt in enumerate(prompts):
        want, score = ref_beam(logp, prompt, 4, 3, penalty=3.0)
        assert list(tokens[row]) == want
        assert abs(scores[row] - score) < 1e-4  # float32 cache vs float64 sums of four O(10) terms


@pytest.mark.parametrize("seed", [1, 2])
def test_gpt_grouped_beam_with_penalty_equals_plain_reference(seed, monkeypatch):
    # Random small GPTs, 5 prompts in chunks of 4 (the second padded) decoded in groups of 2 prompts
    # (GROUP_ROWS 6 with 3 beams): beam search with the repetition penalty, token for token, against
    # HF's beam search as a Python loop over full forward passes in float64 log-softmax.
    from flax import nnx

    from modelcollapse.lm import model as model_mod

    config = model_mod.GPTConfig(vocab_size=23, context=12, n_layers=1, d_model=32, n_heads=4)
    model = model_mod.GPT(config, rngs=nnx.Rngs(seed))
    model.wte.embedding[...] = model.wte.embedding[...] * 20.0  # spread logits: no float near-ties
    apply_full, decode_fn = model_mod.model_fns(model)
    state = nnx.state(model)
    decoder = Decoder(state, decode_fn, functools.partial(model_mod.init_cache, model))
    prompts = np.random.default_rng(seed).integers(0, 23, (5, 4))
    full = jax.jit(lambda tokens, length: apply_full(state, tokens)[:, length - 1])

    def logp(history):
        padded = np.zeros((1, config.context), np.int32)
        padded[0, :len(history)] = history
        return log_softmax(np.asarray(full(padded, len(history))[0], np.float64))

    monkeypatch.setattr(gen, "GROUP_ROWS", 6)
    tokens, scores = generate(decoder, prompts, max_new_tokens=5, mode="beam", num_beams=3, repetition_penalty=3.0,
                              batch_size=4, return_scores=True)
    for row, prompt in enumerate(prompts):
        want, score = ref_beam(logp, prompt, 5, 3, penalty=3.0)
        assert list(tokens[row]) == want
        assert abs(scores[row] - score) < 1e-4
