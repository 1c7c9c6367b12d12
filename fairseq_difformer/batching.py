"""Batching: rows of different lengths in groups of similar length, each run at its own width, so
that fewer padded positions go through a network (the denoiser, the AR reranker); and datasets
whose batches cover every sentence, each sentence within --max-tokens and the model's positions
(or said in one line)."""

import logging
import math
from typing import List

import numpy as np
import torch

from difformer_core.errors import DifformerError

logger = logging.getLogger(__name__)

# What one more call of the network costs, in target positions: a group of rows runs in a call of
# its own when that saves more padded positions than this. On the quickstart model
# (difformer_small, 2 CPU cores, test2016 in batches of 100) 16, 64 and 256 decode equally fast
# within the machine's noise, and a call per distinct length (0) is slower at one candidate per
# sentence. The grouping changes the speed, never the result.
GROUP_CALL_COST = 64


def length_groups(lengths: torch.Tensor, call_cost: int = GROUP_CALL_COST) -> List[torch.Tensor]:
    """Rows split by length into groups, each to be run at its own width.

    Groups are runs of the distinct lengths u_1 < … < u_D, cut where they minimise the positions
    the network runs over plus ``call_cost`` per call: Σ_groups (rows · max length + call_cost),
    by dynamic programming over the D lengths. Returns each group's rows, in their original order,
    shortest group first."""
    values, counts = (x.tolist() for x in torch.unique(lengths, return_counts=True))
    # best[j]: the least cost of the lengths up to u_j; cut[j]: where its last group starts.
    best, cut = [0] + [math.inf] * len(values), [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        rows = 0
        for i in range(j, 0, -1):
            rows += counts[i - 1]
            cost = best[i - 1] + rows * values[j - 1] + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds, j = [], len(values)
    while j > 0:
        bounds.append((values[cut[j] - 1], values[j - 1]))
        j = cut[j] - 1
    return [((lengths >= low) & (lengths <= high)).nonzero().squeeze(1) for low, high in reversed(bounds)]


def batch_every_sentence(batch_by_size, indices, *args, **kwargs):
    """``batch_by_size`` whose batches cover all ``indices``: fairseq cuts them into consecutive
    batches and may drop the last one; the sentences it left out become a final batch."""
    batches = batch_by_size(indices, *args, **kwargs)
    covered = sum(len(b) for b in batches)
    if covered < len(indices):
        batches = list(batches) + [np.asarray(indices[covered:], dtype=np.int64)]
    return batches


def batching_every_sentence(dataset, skip_too_long=False, split="input"):
    """``dataset`` with every sentence in some batch (the tasks' ``get_batch_iterator``).

    fairseq 0.12.3 drops the last batch when its size is not a multiple of
    ``--required-batch-size-multiple`` (default 8): the last n mod 8 sentences of a split would go
    unused without a word, and a split of fewer than 8 sentences would be empty. The left-over
    sentences form one more batch instead (as in fairseq 0.10). A sentence longer than
    ``--max-tokens`` (fairseq's AssertionError from inside its batching) is one line naming the
    longest, or skipped with a warning when ``skip_too_long`` (the skip flag fairseq passes)."""
    dataset.skip_too_long, dataset.split_name = skip_too_long, split
    if not getattr(dataset, "batches_every_sentence", False):
        batch_by_size = dataset.batch_by_size

        def batch_within_max_tokens(indices, max_tokens=None, *args, **kwargs):
            indices = within_max_tokens(dataset, indices, max_tokens)
            return batch_every_sentence(batch_by_size, indices, max_tokens, *args, **kwargs)

        dataset.batch_by_size = batch_within_max_tokens
        dataset.batches_every_sentence = True
    return dataset


def within_max_tokens(dataset, indices, max_tokens):
    """``indices`` whose sentences fit in a batch of ``max_tokens`` tokens; the others stop the
    run in one line, or are left out with a warning when the dataset's ``skip_too_long``."""
    if not max_tokens or len(indices) == 0:
        return indices
    indices = np.asarray(indices, dtype=np.int64)
    sizes = np.asarray(dataset.num_tokens_vec(indices) if hasattr(dataset, "num_tokens_vec")
                       else [dataset.num_tokens(i) for i in indices])
    over = sizes > max_tokens
    if not over.any():
        return indices
    count, longest = int(over.sum()), int(sizes.max())
    which = f"{count} {dataset.split_name} sentence{'s' if count > 1 else ''}"
    if not dataset.skip_too_long:
        raise DifformerError(
            f"--max-tokens {max_tokens} is smaller than {which} (the longest has {longest} tokens, sentence "
            f"{int(indices[sizes.argmax()])}): give --max-tokens {longest} or more, or skip them with "
            f"--skip-invalid-size-inputs-valid-test"
        )
    logger.warning(f"skipping {which} longer than --max-tokens {max_tokens} (the longest has {longest} tokens)")
    return indices[~over]


def within_max_positions(dataset, indices, max_positions, skip_too_long, cut=None):
    """fairseq's ``filter_indices_by_size``: ``indices`` whose sentences fit the model's positions
    (``max_positions``: the (source, target) limits, or one); the others stop the run in one line
    naming the split, how many, the longest and the limit, or are left out with a warning when
    ``skip_too_long`` (--skip-invalid-size-inputs-valid-test). ``cut``: the flags that would cut
    over-long sources to fit, where there are such flags."""
    indices, ignored = dataset.filter_indices_by_size(indices, max_positions)
    if len(ignored) == 0:
        return indices
    limits = tuple(max_positions) if isinstance(max_positions, (tuple, list)) else (max_positions,)
    sides = ("source ", "target ") if len(limits) == 2 else ("",)
    sizes = np.array([np.atleast_1d(dataset.size(i))[: len(limits)] for i in ignored], dtype=np.int64)
    ignored = np.asarray(ignored, dtype=np.int64)
    # (side, the longest size, the first sentence of that size) of each side over its limit
    longest = [(side, int(sizes[:, k].max()), int(ignored[sizes[:, k] == sizes[:, k].max()].min()))
               for k, (side, limit) in enumerate(zip(sides, limits))
               if limit is not None and sizes[:, k].max() > limit]
    count = len(ignored)
    which = f"{count} {getattr(dataset, 'split_name', 'input')} sentence{'s' if count > 1 else ''}"
    takes = " and ".join(f"{limit} {side}tokens" for side, limit in zip(sides, limits) if limit is not None)
    has = " and ".join(f"{size} {side}tokens (sentence {i})" for side, size, i in longest)
    if skip_too_long:
        logger.warning(f"skipping {which} longer than the model's positions (at most {takes}): the longest has {has}")
        return indices
    sources_only = [side for side, *_ in longest] == ["source "]
    raise DifformerError(
        f"{which} {'are' if count > 1 else 'is'} longer than the model's positions (at most {takes}): the "
        f"longest has {has}; skip {'them' if count > 1 else 'it'} with --skip-invalid-size-inputs-valid-test"
        + (f", or cut the sources to fit with {cut}" if cut and sources_only else "")
    )
