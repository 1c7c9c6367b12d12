"""The ``difformer_lm`` task: a text-free Difformer, a diffusion model of the sentences themselves.

Every training pair is (the empty sentence, a sentence of the corpus): the source is ``</s>``
alone, so the encoder's output is one learned constant, the denoiser learns p(text) with nothing to
condition on, and the length predictor learns the corpus's length distribution. Model, loss and
decoding are the ``difformer`` task's; ``fairseq-generate --task difformer_lm`` samples sentences
(with ``--decoding-oracle-length`` at the lengths of the split's sentences, otherwise at the most
likely length). Its checkpoints are what ``--arch difformer_fusion`` reads features from.

The data-bin is monolingual, as fairseq's language models read it: ``dict.txt`` and
``{split}.bin/.idx`` (``fairseq-preprocess --only-source``, or ``difformer-prepare-text``).
"""

import logging
import os

import numpy as np
import torch
from fairseq import utils
from fairseq.data import FairseqDataset, LanguagePairDataset, data_utils
from fairseq.tasks import register_task

from difformer_core.errors import DifformerError

from .difformer_task import DifformerConfig, DifformerTask

logger = logging.getLogger(__name__)


class EmptySourceDataset(FairseqDataset):
    """``n`` copies of the empty sentence, ``[</s>]``: the source side of a text-free model."""

    def __init__(self, n: int, eos: int):
        self.n = n
        self.item = torch.tensor([eos], dtype=torch.long)
        self.sizes = np.ones(n, dtype=np.int64)

    def __getitem__(self, index):
        return self.item

    def __len__(self):
        return self.n

    def size(self, index):
        return 1

    def num_tokens(self, index):
        return 1


@register_task("difformer_lm", dataclass=DifformerConfig)
class DifformerLMTask(DifformerTask):
    """Difformer on monolingual text, with the empty sentence as every source."""

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        paths = utils.split_paths(cfg.data)
        if not paths:
            raise DifformerError("--task difformer_lm needs a data-bin (the first positional argument)")
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.isfile(dict_path):
            raise DifformerError(
                f"{paths[0]} has no dict.txt: --task difformer_lm reads a monolingual data-bin "
                f"(difformer-prepare-text, or fairseq-preprocess --only-source without --source-lang)"
            )
        dictionary = cls.load_dictionary(dict_path)
        logger.info(f"[text] dictionary: {len(dictionary)} types")
        return cls(cfg, dictionary, dictionary)

    def dictionary_files(self):
        dictionary = os.path.join(utils.split_paths(self.cfg.data)[0], "dict.txt")
        return dictionary, dictionary

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        paths = utils.split_paths(self.cfg.data)
        prefix = os.path.join(paths[(epoch - 1) % len(paths)], split)
        text = data_utils.load_indexed_dataset(prefix, self.tgt_dict, self.cfg.dataset_impl, combine=combine)
        if text is None:
            raise FileNotFoundError(f"no {split} split in {os.path.dirname(prefix)} ({prefix}.bin/.idx)")
        source = EmptySourceDataset(len(text), self.src_dict.eos())
        self.datasets[split] = LanguagePairDataset(
            source, source.sizes, self.src_dict, text, text.sizes, self.tgt_dict,
            left_pad_source=self.cfg.left_pad_source, left_pad_target=self.cfg.left_pad_target,
            shuffle=split != "test",
            num_buckets=self.cfg.num_batch_buckets,
        )
        logger.info(f"{prefix}: {len(text)} sentences")
