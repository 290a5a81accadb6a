"""A verifier of the synthetic language's transitions (issue 21: can filtering synthetic text prevent collapse?).

The truth forbids most transitions (each word has `n_successors` of V possible successors), so a
verifier that knows the truth can judge every transition a model writes. A verifier of set
accuracy rejects a forbidden transition with probability `recall` (its true-positive rate) and an
allowed one with probability `false_rejection` (its false-positive rate); the oracle is recall 1,
false_rejection 0. Its judgements are a fixed table drawn once per chain (a verifier's errors are
systematic: the same pair is judged the same way every time), rejected [V, V].

How it filters: each generation's continuations are written with every rejected transition vetoed
(`generate.veto_rejected`): a next token is proposed by the model and a rejected one redrawn, so
each token comes from the model's law conditioned on acceptance, and beam search ranks those
renormalised log-probabilities. Filtering whole 64-token continuations instead does not work here:
measured on the default run's regime-A continuations, 98.8% of the blocks of generation 1 (and
99.9% of sampled ones) hold at least one forbidden transition (3.6 per block on average), so a
block-level oracle would keep about 12 of 1,000 blocks.

A row whose every transition would be rejected is left unjudged (nothing rejected), so decoding can
always continue; `accuracy` reports the realised rates.
"""

from __future__ import annotations

import numpy as np


def rejection_table(allowed: np.ndarray, *, recall: float, false_rejection: float, seed: int) -> np.ndarray:
    """bool [V, V]: rejected[i, j] = the verifier rejects word j after word i. allowed: the truth's
    bool [V, V] (transition probability > 0). One uniform per pair from `seed`: a forbidden pair is
    rejected when it is below `recall`, an allowed pair when it is below `false_rejection`."""
    allowed = np.asarray(allowed, bool)
    if allowed.ndim != 2 or allowed.shape[0] != allowed.shape[1]:
        raise ValueError(f"allowed must be a square bool table [V, V], got shape {allowed.shape}")
    for name, value in (("recall", recall), ("false_rejection", false_rejection)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    u = np.random.default_rng(seed).random(allowed.shape)
    rejected = np.where(allowed, u < false_rejection, u < recall)
    rejected[rejected.all(axis=1)] = False
    return rejected


def accuracy(rejected: np.ndarray, allowed: np.ndarray) -> dict[str, float]:
    """The table's realised rates: recall (share of forbidden pairs rejected), false_rejection (share
    of allowed pairs rejected), and the share of the truth's successors it lets through."""
    rejected, allowed = np.asarray(rejected, bool), np.asarray(allowed, bool)
    return {"verifier_recall": float(rejected[~allowed].mean()) if (~allowed).any() else 1.0,
            "verifier_false_rejection": float(rejected[allowed].mean())}
