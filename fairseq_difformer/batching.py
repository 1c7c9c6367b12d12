"""A task's batches of a dataset that cover every sentence, each sentence within --max-tokens and
the model's positions (or said in one line): fairseq 0.12.3 drops the last batch of a split when
its size is not a multiple of --required-batch-size-multiple."""

import logging

import numpy as np

from difformer_core.errors import DifformerError

logger = logging.getLogger(__name__)


class EverySentenceBatches:
    """A fairseq task mixin (before the fairseq task among the bases): ``get_batch_iterator`` with
    every sentence in some batch.

    fairseq 0.12.3 drops the last batch when its size is not a multiple of
    ``--required-batch-size-multiple`` (default 8): the last n mod 8 sentences of a test set would
    go untranslated without a word. The left-over sentences form one more batch instead (as in
    fairseq 0.10). A sentence longer than --max-tokens is one line naming the longest, or skipped
    when fairseq passes its skip flag (--skip-invalid-size-inputs-valid-test)."""

    def get_batch_iterator(self, dataset, *args, **kwargs):
        split = next((name for name, held in self.datasets.items() if held is dataset), "input")
        batching = keep_every_sentence(dataset, kwargs.get("ignore_invalid_inputs", False), split)
        return super().get_batch_iterator(batching, *args, **kwargs)


def batches_with_the_rest(batch_by_size, indices, *args, **kwargs):
    """``batch_by_size`` whose batches cover all ``indices``: fairseq cuts them into consecutive
    batches and may drop the last one; the sentences it left out become a final batch."""
    batches = batch_by_size(indices, *args, **kwargs)
    covered = sum(len(b) for b in batches)
    if covered < len(indices):
        batches = list(batches) + [np.asarray(indices[covered:], dtype=np.int64)]
    return batches


def keep_every_sentence(dataset, skip_too_long=False, split="input"):
    """``dataset`` with every sentence in some batch (:class:`EverySentenceBatches`).

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
            return batches_with_the_rest(batch_by_size, indices, max_tokens, *args, **kwargs)

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
