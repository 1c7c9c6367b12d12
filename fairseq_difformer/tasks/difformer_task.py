"""The ``difformer`` task: fairseq's translation task (data, ``--eval-bleu``, interactive input)
with Difformer decoding options and generator.

``fairseq-generate --path difformer.pt:transformer.pt`` loads the AR Transformer reranker through
this task too; both must have been trained on the same (joined) dictionary.
"""

import logging
import os
from dataclasses import dataclass, field, make_dataclass
from typing import Optional

from fairseq import utils
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import DictConfig, OmegaConf

from difformer_core.decoding import CHOICES, DECODING_OPTIONS, DecodingOptions, decoding_config
from difformer_core.errors import DifformerError

from .. import dictionary_fingerprints, interactive_input
from ..batching import EverySentenceBatches, within_max_positions
from ..criterions.difformer_loss import DifformerCriterion
from ..entry_points import running
from ..generator import DifformerGenerator
from ..models.ar_init import maybe_init_from_ar
from ..models.difformer import DifformerModel
from ..models.step_distillation import maybe_start_step_distillation
from ..selection import RerankerFiles
from ..training_run import guard_save_dir, is_training_run
from .checkpoint_checks import CheckpointChecks
from .command_checks import check_databin, check_no_beam_search, check_precision_flags, check_split, command_config
from .raw_input import RawInputHooks
from .validation import ValidationMetrics

logger = logging.getLogger(__name__)


@dataclass
class DifformerTaskOptions(TranslationConfig, DecodingOptions):
    """The task's options: fairseq's translation task's, the decoding options, and these."""

    min_lr: Optional[float] = field(
        default=None,
        metadata={"help": "accepted for the original Difformer recipes: fairseq 0.10's --min-lr (stop "
                          "training once the learning rate falls below it) is --stop-min-lr in fairseq "
                          "0.12; the recipes' 1e-09 is never reached under inverse_sqrt, so it has no effect"},
    )
    eval_rouge: bool = field(
        default=False,
        metadata={"help": "decode the validation set and log ROUGE-1/2/L F1 (rouge1, rouge2, rougeL; "
                          "e.g. --best-checkpoint-metric rougeL --maximize-best-checkpoint-metric); uses "
                          "the --eval-bleu-args/-detok/-remove-bpe options for decoding"},
    )


def _choice_field(name):
    """The decoding option ``name`` of :data:`~difformer_core.decoding.CHOICES`, typed as fairseq's
    ``ChoiceEnum`` of its choices (Optional where its default is None), so that argparse lists and
    checks them: (name, type, field)."""
    declared = DecodingOptions.__dataclass_fields__[name]
    kind = ChoiceEnum(list(CHOICES[name]))
    return (name, Optional[kind] if declared.default is None else kind,
            field(default=declared.default, metadata=declared.metadata))


#: DifformerTaskOptions with the options that take one of a few names typed for argparse: the
#: choices are declared once, in difformer_core.decoding.DecodingOptions
DifformerConfig = make_dataclass("DifformerConfig", [_choice_field(name) for name in CHOICES],
                                 bases=(DifformerTaskOptions,))
DifformerConfig.__module__ = __name__


@register_task("difformer", dataclass=DifformerConfig)
class DifformerTask(EverySentenceBatches, ValidationMetrics, RawInputHooks, CheckpointChecks, TranslationTask):
    """fairseq's translation task with the Difformer's model, criterion and generator. Its hooks
    delegate: batches that keep every sentence (:mod:`..batching`), the validation metrics
    (:mod:`.validation`), raw input (:mod:`.raw_input`), checkpoint checks
    (:mod:`.checkpoint_checks`), and the input checks of :mod:`.command_checks`."""

    cfg: DifformerConfig

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if cfg.min_lr is not None:
            logger.warning(
                f"--min-lr {cfg.min_lr} is ignored: fairseq 0.12 calls it --stop-min-lr (stop training "
                f"once the learning rate falls below it); the inverse_sqrt schedule of the original "
                f"recipes never falls to 1e-09 within their updates"
            )

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        check_databin(cfg.data)
        command = command_config(cfg)
        if running("fairseq_cli.generate") or running("fairseq_cli.interactive"):
            check_no_beam_search(command)
        if running("fairseq_cli.interactive"):
            interactive_input.install(OmegaConf.select(command, "interactive.input", default=None))
        return super().setup_task(cfg, **kwargs)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        """fairseq's translation data; a split the data-bin does not hold is one line naming it, the
        data-bin and the splits it holds (fairseq: ``FileNotFoundError: Dataset not found``)."""
        paths = utils.split_paths(self.cfg.data)
        if split != self.cfg.train_subset:  # as fairseq: other splits come from the first data-bin
            paths = paths[:1]
        if running("fairseq_cli.train") or running("fairseq_cli.validate"):
            flag = "--train-subset" if split == self.cfg.train_subset else "--valid-subset"
        else:  # fairseq-generate, and the tools that decode a split as it does
            flag = "--gen-subset"
        check_split(paths[(epoch - 1) % len(paths)], split, self.cfg.source_lang, self.cfg.target_lang,
                    self.cfg.dataset_impl, flag)
        super().load_dataset(split, epoch, combine, **kwargs)

    def build_criterion(self, cfg, from_checkpoint=False):
        """``--criterion nat_loss`` (what the original recipes pass) trains with the difformer
        criterion, keeping its ``--label-smoothing``; fairseq's nat_loss cannot read this model."""
        if getattr(cfg, "_name", None) == "nat_loss":
            logger.warning(
                "--criterion nat_loss (the original recipes' name) trains with --criterion difformer "
                "here: same terms (diffusion MSE, label-smoothed anchor loss, length loss)"
            )
            return DifformerCriterion(
                self, label_smoothing=cfg.label_smoothing, anchor_loss_weight=1.0,
                rounding_loss=False, no_anchor_loss=False,
            )
        return super().build_criterion(cfg, from_checkpoint)

    def build_model(self, cfg, from_checkpoint=False):
        """fairseq's model, with: for a checkpoint, its dictionaries' fingerprints checked; for a
        new model, the precision flags checked, a training run's save dir guarded (and the
        checkpoint it resumes from checked), the fingerprints recorded, and --init-from-ar or
        --distill-steps-from applied;
        for both, the checks of a state dict before it loads and the --eval-rouge generator."""
        if from_checkpoint:
            dictionary_fingerprints.check(cfg, self, dictionary_fingerprints.role_of(cfg))
        else:
            self._prepare_new_model(cfg)
        model = super().build_model(cfg, from_checkpoint)
        if not from_checkpoint:
            maybe_init_from_ar(model, cfg, self.source_dictionary, self.target_dictionary, self.cfg.data,
                               (self.cfg.source_lang, self.cfg.target_lang))
            maybe_start_step_distillation(model, cfg, self)
        self.register_checkpoint_checks(model)
        self.build_validation_generator(model)
        return model

    def _prepare_new_model(self, cfg):
        check_precision_flags(cfg)
        resume = guard_save_dir(cfg) if is_training_run(cfg) else None
        if resume is not None:
            dictionary_fingerprints.check_resumed(resume, self)
        dictionary_fingerprints.record(cfg, self)

    def dictionary_files(self):
        """The source and target dictionary files (``dict.LANG.txt`` of the first data-bin)."""
        data = utils.split_paths(self.cfg.data)[0]
        return tuple(os.path.join(data, f"dict.{lang}.txt") for lang in (self.cfg.source_lang, self.cfg.target_lang))

    def filter_indices_by_size(self, indices, dataset, max_positions=None, ignore_invalid_inputs=False):
        """fairseq's filter of the sentences longer than the model's positions, with those said in
        one line (the split, how many, the longest, the limit and the fix) instead of fairseq's
        ``Exception: Size of sample #3 is invalid``, or skipped with a warning under
        --skip-invalid-size-inputs-valid-test (:func:`~fairseq_difformer.batching.within_max_positions`)."""
        if not isinstance(max_positions, (int, tuple, list)):
            return super().filter_indices_by_size(indices, dataset, max_positions, ignore_invalid_inputs)
        return within_max_positions(dataset, indices, max_positions, ignore_invalid_inputs,
                                    self._source_cut(dataset, max_positions))

    def _source_cut(self, dataset, max_positions):
        """The flags that cut over-long sources of ``dataset`` to the model's source positions:
        --truncate-source (a binarised split; fairseq-interactive cuts its lines anyway) and the
        limit itself where the task's --max-source-positions is above it."""
        limit = max_positions[0] if isinstance(max_positions, (tuple, list)) else max_positions
        if limit is None:
            return None
        flags = []
        if not self.cfg.truncate_source and any(held is dataset for held in self.datasets.values()):
            flags.append("--truncate-source")
        if self.cfg.max_source_positions != limit:
            flags.append(f"--max-source-positions {limit}")
        return " ".join(flags) or None

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        """The Difformer generator of ``models`` (the Difformer model, and an AR reranker), with
        the decoding options of ``args`` where given there, else the task's."""
        model, reranker = check_generator_models(models)
        option = self._decoding_option(args)
        # fairseq-generate's summary line reports cfg.generation.beam: the L × N candidates.
        if hasattr(args, "beam"):
            args.beam = option("length_beam_size") * option("noise_beam_size")
        config = decoding_config(option, selection_of(option, reranker),
                                 retain_history=bool(getattr(args, "retain_iter_history", False)))
        files = None if reranker is None else RerankerFiles(
            reranker_checkpoint(args), utils.split_paths(self.cfg.data)[0], (self.cfg.source_lang, self.cfg.target_lang))
        return DifformerGenerator(model, self.target_dictionary, config, reranker=reranker, reranker_files=files)

    def _decoding_option(self, args):
        """A decoding option from the generation args when given there (``--eval-bleu-args
        '{"decoding_steps": 10}'``), else from the task's flags."""

        def option(name):
            assert name in DECODING_OPTIONS, f"{name} missing from DECODING_OPTIONS"
            value = getattr(args, name, None)
            return getattr(self.cfg, name) if value is None else value

        return option

def check_generator_models(models):
    """(the Difformer model, the AR reranker or None) of ``--path difformer.pt[:transformer.pt]``;
    another order or number of checkpoints is one line."""
    if not isinstance(models[0], DifformerModel):
        raise DifformerError(
            f"the first --path checkpoint holds a {type(models[0]).__name__}, not a Difformer model: "
            f"put the Difformer checkpoint first, e.g. --path difformer.pt:transformer.pt"
        )
    if len(models) > 2:
        raise DifformerError(
            "--path takes the Difformer checkpoint and at most one AR reranker "
            "(difformer.pt:transformer.pt); average checkpoints instead of ensembling them"
        )
    return models[0], models[1] if len(models) == 2 else None


def selection_of(option, reranker):
    """How the generator picks a hypothesis among the candidates: ``bleu_mbr`` (--bleu-mbr),
    ``reranker`` (--ppl-mbr, or an AR reranker given; without one the generator says what is
    missing), else ``logprob``."""
    ppl_mbr, bleu_mbr = option("ppl_mbr"), option("bleu_mbr")
    if ppl_mbr and bleu_mbr:
        raise DifformerError("--ppl-mbr and --bleu-mbr are two ways to pick a hypothesis: use one")
    if bleu_mbr:
        return "bleu_mbr"
    return "reranker" if ppl_mbr or reranker is not None else "logprob"


def reranker_checkpoint(generation_args):
    """The reranker's checkpoint file, the second of ``--path difformer.pt:transformer.pt``, or None.

    fairseq-generate and fairseq-interactive pass build_generator their ``cfg.generation``, whose
    parent configuration holds ``common_eval.path``; the hub passes a copy of the Difformer
    checkpoint's own, which names no reranker."""
    parent = generation_args._get_parent() if isinstance(generation_args, DictConfig) else None
    path = OmegaConf.select(parent, "common_eval.path", default=None) if parent is not None else None
    paths = utils.split_paths(path) if path else []
    return paths[1] if len(paths) == 2 and os.path.isfile(paths[1]) else None


