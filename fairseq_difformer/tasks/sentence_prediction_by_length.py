"""The ``sentence_prediction_by_length`` task: fairseq's ``sentence_prediction`` with its batches
made of sentences of similar length.

fairseq's task orders its examples by a random permutation alone, so each batch of ``--batch-size``
sentences is padded to its longest one: on SST-2 (median 9 tokens, 90th percentile 27) batches of
64 are about 47 positions wide, and a network over them (a frozen denoiser and a Transformer head)
spends about three quarters of its time on padding. Here the examples are ordered by source length
first, the same permutation breaking ties (``np.lexsort([permutation, lengths])``), as fairseq's
translation tasks order theirs; the epoch iterator still shuffles the order of the batches every
epoch. Every sentence is in some batch (:class:`~fairseq_difformer.batching.EverySentenceBatches`:
fairseq 0.12.3 drops the last n mod 8). Data, options, criterion and metrics are
``sentence_prediction``'s::

    fairseq-train data-bin --task sentence_prediction_by_length --criterion sentence_prediction \\
        --num-classes 2 --arch difformer_fusion --difformer-checkpoint text.pt --batch-size 64 …
"""

from dataclasses import dataclass

from fairseq.data import SortDataset
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from ..batching import EverySentenceBatches
from ..training_run import guard_save_dir, is_training_run


@dataclass
class SentencePredictionByLengthConfig(SentencePredictionConfig):
    pass


@register_task("sentence_prediction_by_length", dataclass=SentencePredictionByLengthConfig)
class SentencePredictionByLengthTask(EverySentenceBatches, SentencePredictionTask):
    def load_dataset(self, split, combine=False, **kwargs):
        dataset = super().load_dataset(split, combine=combine, **kwargs)
        if isinstance(dataset, SortDataset):  # not with --no-shuffle, which keeps the file's order
            (lengths,) = dataset.dataset.sizes  # one input: the (joined) source's token counts
            dataset.sort_order = [*dataset.sort_order, lengths]
        return dataset

    def build_model(self, cfg, from_checkpoint=False):
        """fairseq's, with the save dir of a training run guarded (:mod:`..training_run`)."""
        if not from_checkpoint and is_training_run(cfg):
            guard_save_dir(cfg)
        return super().build_model(cfg, from_checkpoint)
