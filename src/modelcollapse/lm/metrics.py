"""Text statistics of a generation's data: diversity (distinct-n, unigram entropy) and the tail
(the share of tokens from the original data's rarest half of probability mass).

Texts are int token blocks [n, T]; n-grams are counted within blocks (a block boundary is not
text), as distinct-n of Li et al. (2016): distinct n-grams / all n-grams.
"""

from __future__ import annotations

import numpy as np


def _blocks(blocks) -> np.ndarray:
    b = np.asarray(blocks)
    if b.ndim != 2 or not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"blocks must be an integer array [n, T], got {b.dtype}{b.shape}")
    return b.astype(np.int64)


def distinct_n(blocks, n: int) -> float:
    """Distinct n-grams / n-grams over all blocks (0 if the blocks are shorter than n)."""
    b = _blocks(blocks)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if b.shape[1] < n or b.shape[0] == 0:
        return 0.0
    grams = np.stack([b[:, i:b.shape[1] - n + 1 + i] for i in range(n)], axis=-1).reshape(-1, n)
    return float(len(np.unique(grams, axis=0)) / len(grams))


def unigram_counts(blocks, vocab_size: int) -> np.ndarray:
    b = _blocks(blocks)
    if b.size and (b.min() < 0 or b.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size})")
    return np.bincount(b.ravel(), minlength=vocab_size)


def unigram_entropy(blocks, vocab_size: int) -> float:
    """Entropy (nats) of the empirical token distribution of the blocks."""
    counts = unigram_counts(blocks, vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def rare_mask(reference_blocks, vocab_size: int, mass: float = 0.5) -> np.ndarray:
    """Tokens of the reference's rarest `mass` of probability: bool [V].

    Tokens sorted from rarest to most frequent (ties by id); a token is rare if the cumulative
    mass up to and including it is at most `mass`. Tokens absent from the reference are rare.
    """
    if not 0 < mass < 1:
        raise ValueError(f"mass must be in (0, 1), got {mass}")
    counts = unigram_counts(reference_blocks, vocab_size)
    order = np.lexsort((np.arange(vocab_size), counts))  # rarest first
    cumulative = np.cumsum(counts[order]) / counts.sum()
    mask = np.zeros(vocab_size, bool)
    mask[order[cumulative <= mass]] = True
    return mask


def rare_share(blocks, mask: np.ndarray) -> float:
    """Share of the blocks' tokens that `mask` marks rare."""
    b = _blocks(blocks)
    return float(np.mean(mask[b])) if b.size else 0.0
