"""Log-probabilities over the vocabulary, computed a block of positions at a time.

At batch 100 with 3 × 2 candidates, the logits of every candidate position form a P × V matrix of
about 8,000 × 8,000 floats (250 MB). Every pass over it (log-softmax, masking, max) would stream it
from memory; computed for a block of rows that fits in the CPU's cache, the passes after the matrix
product read it from there. A word's log-probability is formed as its logit minus the row's
log-sum-exp, log p(w) = s_w − log Σ_v exp(s_v), never as a whole log-softmax matrix.
"""

from typing import Callable, Sequence, Tuple

import torch

#: Logits per block: 2^20 floats (4 MiB), which stays in a server core's share of the cache.
BLOCK_ELEMENTS = 2 ** 20


def row_blocks(rows: int, vocab_size: int) -> int:
    """Rows per block: as many as keep a block's logits within :data:`BLOCK_ELEMENTS`."""
    return max(1, min(rows, BLOCK_ELEMENTS // max(vocab_size, 1)))


def _logit_blocks(logits_of: Callable, features: torch.Tensor, vocab_size: int):
    """(rows, logits) for each block of :func:`row_blocks` rows of ``features``: the slice of the
    rows and their logits in float32 (b × V)."""
    if len(features) == 0:
        return
    size = row_blocks(len(features), vocab_size)
    for start in range(0, len(features), size):
        rows = slice(start, start + size)
        yield rows, logits_of(features[rows]).float()


def word_log_probs(
    logits_of: Callable, features: torch.Tensor, words: torch.Tensor, vocab_size: int
) -> torch.Tensor:
    """log p(y_i) = s_i[y_i] − logsumexp(s_i), s_i = logits_of(features_i) (in float32).

    features: P × d; words: P; vocab_size: V, the width of the logits. Returns P
    log-probabilities, equal to −cross_entropy(logits_of(features), words, reduction="none")."""
    out = features.new_empty(len(features), dtype=torch.float32)
    for rows, logits in _logit_blocks(logits_of, features, vocab_size):
        out[rows] = logits.gather(1, words[rows, None]).squeeze(1) - torch.logsumexp(logits, -1)
    return out


def best_word_log_probs(
    logits_of: Callable, features: torch.Tensor, excluded: Sequence[int], vocab_size: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The most likely word of each row outside ``excluded``, with its log-probability under the
    softmax over the whole vocabulary (the excluded symbols included):

        w_i = argmax_{v ∉ excluded} s_i[v],   log p(w_i) = s_i[w_i] − logsumexp_v s_i[v].

    features: P × d; vocab_size: V. Returns the log-probabilities, the words and the
    log-sum-exps, P each."""
    scores = features.new_empty(len(features), dtype=torch.float32)
    words = torch.empty(len(features), dtype=torch.long, device=features.device)
    normalisers = torch.empty_like(scores)
    excluded = torch.as_tensor(list(excluded), dtype=torch.long, device=features.device)
    for rows, logits in _logit_blocks(logits_of, features, vocab_size):
        normalisers[rows] = torch.logsumexp(logits, -1)
        best, words[rows] = logits.index_fill_(1, excluded, float("-inf")).max(-1)
        scores[rows] = best - normalisers[rows]
    return scores, words, normalisers


def round_to_words(logits_of: Callable, z0_hat: torch.Tensor, lengths: torch.Tensor, padding_mask: torch.Tensor,
                   non_words: Sequence[int], vocab_size: int, eos: int, pad: int, eos_logit_of: Callable = None):
    """The words of ẑ0 (N × ℓ_max × d): argmax over the real words (never ``non_words``) of the
    logits ``logits_of(ẑ0)``, each with its log-probability over the whole vocabulary
    (:func:`best_word_log_probs`, non-pad positions only); position ℓ−1 of each row is </s>, with
    log p(</s>) = s_eos − logsumexp (s_eos from ``eos_logit_of`` where given, e.g. one dot product,
    else from ``logits_of``), padding is pad. Returns tokens and their log-probabilities, N × ℓ_max each."""
    real = ~padding_mask
    z0_real = z0_hat[real]                                                     # P × d
    scores, words, normalisers = best_word_log_probs(logits_of, z0_real, non_words, vocab_size)
    last = lengths.cumsum(0) - 1  # each row's position ℓ−1 among the P real positions
    ends = z0_real[last]
    eos_logits = (eos_logit_of(ends) if eos_logit_of is not None else logits_of(ends)[:, eos]).float()
    words[last], scores[last] = eos, eos_logits - normalisers[last]
    tokens = padding_mask.long().mul(pad).masked_scatter(real, words)
    positional_scores = torch.zeros_like(z0_hat[..., 0], dtype=scores.dtype).masked_scatter(real, scores)
    return tokens, positional_scores
