"""Where raw text comes into the ``difformer`` task (fairseq-interactive, tools that feed input
lines): the tokenizer and BPE the data-bin's ``preprocessing.json`` records, input bytes that are
not UTF-8 refused by line, over-long input cut to the model's positions."""

import logging
import os

import torch
from fairseq import utils
from omegaconf import DictConfig, OmegaConf

from difformer_core.errors import DifformerError
from difformer_core.text import undecodable

from .. import preprocessing
from ..entry_points import running

logger = logging.getLogger(__name__)


class RawInputHooks:
    """A task mixin, before fairseq's translation task among the bases: its raw-input hooks."""

    #: tools that feed raw text set this (difformer-trajectory on input lines); fairseq-interactive
    #: is recognised by itself
    use_recorded_preprocessing = False

    def recorded_preprocessing(self):
        """The data-bin's record of its preprocessing where raw text comes in (fairseq-interactive,
        or ``use_recorded_preprocessing``); None elsewhere: fairseq-generate reads binarised text,
        and its scores must not change with a record."""
        if not (self.use_recorded_preprocessing or running("fairseq_cli.interactive")):
            return None
        return preprocessing.read_record(utils.split_paths(self.cfg.data)[0])

    def build_tokenizer(self, args):
        """fairseq's ``--tokenizer``; in fairseq-interactive, by default the one the data-bin's
        ``preprocessing.json`` records (difformer-prepare writes it)."""
        args = preprocessing.interactive_tokenizer(args, self.recorded_preprocessing(),
                                                   (self.cfg.source_lang, self.cfg.target_lang))
        return super().build_tokenizer(args)

    def build_bpe(self, args):
        """fairseq's ``--bpe`` (fairseq-interactive / fairseq-generate), with subword-nmt's missing
        ``--bpe-codes`` said in one line instead of omegaconf's or fairseq's traceback; in
        fairseq-interactive, by default the BPE and codes the data-bin's record names."""
        args = preprocessing.interactive_bpe(args, self.recorded_preprocessing())
        if getattr(args, "_name", None) == "subword_nmt" or getattr(args, "bpe", None) == "subword_nmt":
            missing = isinstance(args, DictConfig) and OmegaConf.is_missing(args, "bpe_codes")
            codes = None if missing else args.bpe_codes
            if not codes:
                raise DifformerError(
                    "--bpe subword_nmt needs --bpe-codes CODES, the subword-nmt codes the training data "
                    "was segmented with (difformer-prepare writes DESTDIR/codes)"
                )
            if "://" not in codes and not os.path.isfile(codes):
                raise DifformerError(f"--bpe-codes {codes} not found")
        return super().build_bpe(args)

    def get_interactive_tokens_and_lengths(self, lines, encode_fn):
        """fairseq-interactive's input lines, refused with their line number where they hold bytes
        that were not UTF-8 (see :mod:`difformer_core.text`)."""
        for line in lines:
            self.interactive_lines = getattr(self, "interactive_lines", 0) + 1
            found = undecodable(line)
            if found is not None:
                raise DifformerError(
                    f"input line {self.interactive_lines}, column {found[0]}: {found[1]}; convert the input "
                    f"to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                )
        return super().get_interactive_tokens_and_lengths(lines, encode_fn)

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None):
        """Interactive input longer than --max-source-positions is cut (keeping </s>) with a
        warning, instead of stopping the whole run."""
        limit = self.cfg.max_source_positions
        for i, tokens in enumerate(src_tokens):
            if len(tokens) > limit:
                logger.warning(
                    f"input line of {len(tokens)} tokens truncated to --max-source-positions {limit}"
                )
                src_tokens[i] = torch.cat([tokens[: limit - 1], tokens[-1:]])
        src_lengths = [len(t) for t in src_tokens]
        return super().build_dataset_for_inference(src_tokens, src_lengths, constraints)
