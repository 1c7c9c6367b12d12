"""The ``difformer`` task: fairseq's translation task (data, ``--eval-bleu``, interactive input)
with Difformer decoding options and generator.

``fairseq-generate --path difformer.pt:transformer.pt`` loads the AR Transformer reranker through
this task too; both must have been trained on the same (joined) dictionary.
"""

import json
import logging
import os
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import sacrebleu
import torch
from fairseq import metrics, utils
from fairseq.data import encoders, indexed_dataset
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.translation import EVAL_BLEU_ORDER, TranslationConfig, TranslationTask
from omegaconf import DictConfig, OmegaConf
from sacrebleu.metrics import BLEU

from difformer_core.decoding import DECODING_OPTIONS, PRECISIONS, RERANKER_ENGINES, DecodingOptions, decoding_config
from difformer_core.diffusion import NOISE_SCHEDULES, SAMPLERS
from difformer_core.errors import DifformerError
from difformer_core.rouge import ROUGE_TYPES, rouge_f1_sums
from difformer_core.text import undecodable

from .. import dictionary_fingerprints, interactive_input, preprocessing
from ..entry_points import running
from ..batching import batching_every_sentence, within_max_positions
from ..criterions.difformer_loss import DifformerCriterion
from ..generator import DifformerGenerator
from ..models.ar_init import maybe_init_from_ar
from ..models.difformer import DifformerModel
from ..selection import RerankerFiles
from ..training_run import guard_save_dir, is_training_run

logger = logging.getLogger(__name__)


def _choices_of(name):
    """The :class:`DecodingOptions` field ``name`` (default and help) again, for a redeclaration
    typed as fairseq's ``ChoiceEnum``, so that argparse lists and checks its choices."""
    declared = DecodingOptions.__dataclass_fields__[name]
    return field(default=declared.default, metadata=declared.metadata)


@dataclass
class DifformerConfig(TranslationConfig, DecodingOptions):
    decoding_noise_schedule: Optional[ChoiceEnum(NOISE_SCHEDULES)] = _choices_of("decoding_noise_schedule")
    decoding_sampler: ChoiceEnum(list(SAMPLERS)) = _choices_of("decoding_sampler")
    decoding_precision: ChoiceEnum(list(PRECISIONS)) = _choices_of("decoding_precision")
    reranker_engine: ChoiceEnum(list(RERANKER_ENGINES)) = _choices_of("reranker_engine")
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


# Parameter names of checkpoints written by fairseq-difformer 0.1, whose time and
# self-conditioning MLPs used SiLU and whose --embed-norm-before-proj normalised z_t.
PRE_0_2_KEYS = ("decoder.time_embed.mlp.", "decoder.latent_input.self_cond.", "decoder.latent_norm.")


@register_task("difformer", dataclass=DifformerConfig)
class DifformerTask(TranslationTask):
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
        flag = ("--gen-subset" if running("fairseq_cli.generate")
                else "--train-subset" if split == self.cfg.train_subset else "--valid-subset")
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
        if from_checkpoint:
            dictionary_fingerprints.check(cfg, self, dictionary_fingerprints.role_of(cfg))
        else:
            check_precision_flags(cfg)
            resume = guard_save_dir(cfg) if is_training_run(cfg) else None
            if resume is not None:
                dictionary_fingerprints.check_resumed(resume, self)
            dictionary_fingerprints.record(cfg, self)
        model = super().build_model(cfg, from_checkpoint)
        if not from_checkpoint:
            maybe_init_from_ar(model, cfg, self.source_dictionary, self.target_dictionary, self.cfg.data,
                               (self.cfg.source_lang, self.cfg.target_lang))
        model.register_load_state_dict_pre_hook(self._check_checkpoint_layout)
        model.register_load_state_dict_pre_hook(self._check_checkpoint_dictionary)
        if self.cfg.eval_rouge and not self.cfg.eval_bleu:
            # fairseq's translation task builds the validation decoder for --eval-bleu only.
            self.tokenizer = encoders.build_tokenizer(
                Namespace(tokenizer=self.cfg.eval_bleu_detok, **json.loads(self.cfg.eval_bleu_detok_args))
            )
            self.sequence_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_bleu_args)))
        return model

    def dictionary_files(self):
        """The source and target dictionary files (``dict.LANG.txt`` of the first data-bin)."""
        data = utils.split_paths(self.cfg.data)[0]
        return tuple(os.path.join(data, f"dict.{lang}.txt") for lang in (self.cfg.source_lang, self.cfg.target_lang))

    def begin_valid_epoch(self, epoch, model):
        """Each validation decodes with the weights trained so far: the validation generator's
        int8 copy of the model is made again (fairseq's optimizers write through ``p.data``,
        which the copy cannot see)."""
        super().begin_valid_epoch(epoch, model)
        generator = getattr(self, "sequence_generator", None)
        if isinstance(generator, DifformerGenerator):
            generator.int8_model.forget()

    def valid_step(self, sample, model, criterion):
        """The criterion's losses, plus the BLEU n-gram statistics (--eval-bleu) and ROUGE F1 sums
        (--eval-rouge) of one decoding of the batch; all are sums, so they add up across workers."""
        loss, sample_size, logging_output = FairseqTask.valid_step(self, sample, model, criterion)
        if self.cfg.eval_bleu or self.cfg.eval_rouge:
            hyps, refs = self._decode_validation_batch(sample, model)
            if self.cfg.eval_bleu:
                bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none" if self.cfg.eval_tokenized_bleu else "13a")
                logging_output["_bleu_sys_len"] = bleu.sys_len
                logging_output["_bleu_ref_len"] = bleu.ref_len
                for i in range(EVAL_BLEU_ORDER):
                    logging_output[f"_bleu_counts_{i}"] = bleu.counts[i]
                    logging_output[f"_bleu_totals_{i}"] = bleu.totals[i]
            if self.cfg.eval_rouge:
                logging_output.update(rouge_sums(hyps, refs))
        return loss, sample_size, logging_output

    def _decode_validation_batch(self, sample, model):
        """Detokenised hypotheses and references of a validation batch, as --eval-bleu decodes them."""

        def decode(tokens, unk_string):
            text = self.tgt_dict.string(tokens.int().cpu(), self.cfg.eval_bleu_remove_bpe, unk_string=unk_string)
            return self.tokenizer.decode(text) if self.tokenizer else text

        gen_out = self.inference_step(self.sequence_generator, [model], sample, prefix_tokens=None)
        # Distinct unknown-word strings, so that <unk> never matches <unk>.
        hyps = [decode(out[0]["tokens"], "UNKNOWNTOKENINHYP") for out in gen_out]
        refs = [decode(utils.strip_pad(t, self.tgt_dict.pad()), "UNKNOWNTOKENINREF") for t in sample["target"]]
        if self.cfg.eval_bleu_print_samples:
            logger.info("example hypothesis: " + hyps[0])
            logger.info("example reference: " + refs[0])
        return hyps, refs

    def reduce_metrics(self, logging_outputs, criterion):
        FairseqTask.reduce_metrics(self, logging_outputs, criterion)
        if self.cfg.eval_bleu:
            reduce_bleu_statistics(logging_outputs)
        count = sum(log.get("_rouge_count", 0) for log in logging_outputs)
        if self.cfg.eval_rouge and count > 0:
            metrics.log_scalar("_rouge_count", count)
            for name in ROUGE_TYPES:
                metrics.log_scalar(f"_{name}_sum", sum(log.get(f"_{name}_sum", 0) for log in logging_outputs))
                metrics.log_derived(
                    name, lambda meters, name=name: round(meters[f"_{name}_sum"].sum / meters["_rouge_count"].sum, 2)
                )

    def get_batch_iterator(self, dataset, *args, **kwargs):
        """fairseq's batching, with every sentence in some batch.

        fairseq 0.12.3 drops the last batch when its size is not a multiple of
        ``--required-batch-size-multiple`` (default 8): the last n mod 8 sentences of a test set
        would go untranslated without a word. The left-over sentences form one more batch instead
        (as in fairseq 0.10). A sentence longer than --max-tokens is one line naming the longest,
        or skipped when fairseq passes its skip flag (--skip-invalid-size-inputs-valid-test)."""
        split = next((name for name, held in self.datasets.items() if held is dataset), "input")
        batching = batching_every_sentence(dataset, kwargs.get("ignore_invalid_inputs", False), split)
        return super().get_batch_iterator(batching, *args, **kwargs)

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

    def _check_checkpoint_layout(self, module, state_dict, prefix, *args):
        """A checkpoint of another Difformer layout fails with what to do, not a key list."""
        if not isinstance(module, DifformerModel):
            return
        keys = list(state_dict)
        if any(k.startswith(prefix + old) for k in keys for old in PRE_0_2_KEYS):
            raise DifformerError(
                "this checkpoint was written by fairseq-difformer 0.1, whose time and "
                "self-conditioning MLPs used SiLU instead of the model's --activation-fn: it cannot "
                "be decoded by this version; retrain it (same command)"
            )
        if any(k.startswith(prefix + name) for k in keys
               for name in ("encoder.project_in_dim.", "decoder.embed_time.", "decoder.self_cond_proj.")):
            raise DifformerError(
                "this checkpoint comes from the original Difformer code: convert it first with "
                "difformer-convert-checkpoint ORIGINAL.pt CONVERTED.pt, then pass CONVERTED.pt to --path"
            )

    def _check_checkpoint_dictionary(self, module, state_dict, prefix, *args):
        """A checkpoint built on another dictionary fails here with the fix, not with a
        "size mismatch" from deep inside torch."""
        expected = len(self.target_dictionary)
        for key in ("decoder.embed_tokens.weight", "decoder.output_projection.weight"):
            weight = state_dict.get(prefix + key)
            if weight is not None and weight.size(0) != expected:
                role = "Difformer model" if isinstance(module, DifformerModel) else "reranker (second --path)"
                raise DifformerError(
                    f"the {role} checkpoint was trained with a dictionary of {weight.size(0)} types, "
                    f"but {self.cfg.data} has {expected}: generate with the data-bin the model was "
                    f"trained on; an AR reranker must be trained on the Difformer model's data-bin "
                    f"(same dict.*.txt)"
                )

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        model = models[0]
        if not isinstance(model, DifformerModel):
            raise DifformerError(
                f"the first --path checkpoint holds a {type(model).__name__}, not a Difformer model: "
                f"put the Difformer checkpoint first, e.g. --path difformer.pt:transformer.pt"
            )
        if len(models) > 2:
            raise DifformerError(
                "--path takes the Difformer checkpoint and at most one AR reranker "
                "(difformer.pt:transformer.pt); average checkpoints instead of ensembling them"
            )
        option = self._decoding_option(args)
        ppl_mbr, bleu_mbr = option("ppl_mbr"), option("bleu_mbr")
        if ppl_mbr and bleu_mbr:
            raise DifformerError("--ppl-mbr and --bleu-mbr are two ways to pick a hypothesis: use one")
        reranker = models[1] if len(models) == 2 else None
        if bleu_mbr:
            selection = "bleu_mbr"
        elif ppl_mbr or reranker is not None:
            selection = "reranker"  # without a second checkpoint the generator says what is missing
        else:
            selection = "logprob"
        # fairseq-generate's summary line reports cfg.generation.beam: the L × N candidates.
        if hasattr(args, "beam"):
            args.beam = option("length_beam_size") * option("noise_beam_size")
        config = decoding_config(option, selection, retain_history=bool(getattr(args, "retain_iter_history", False)))
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


def reranker_checkpoint(generation_args):
    """The reranker's checkpoint file, the second of ``--path difformer.pt:transformer.pt``, or None.

    fairseq-generate and fairseq-interactive pass build_generator their ``cfg.generation``, whose
    parent configuration holds ``common_eval.path``; the hub passes a copy of the Difformer
    checkpoint's own, which names no reranker."""
    parent = generation_args._get_parent() if isinstance(generation_args, DictConfig) else None
    path = OmegaConf.select(parent, "common_eval.path", default=None) if parent is not None else None
    paths = utils.split_paths(path) if path else []
    return paths[1] if len(paths) == 2 and os.path.isfile(paths[1]) else None


def command_config(task_cfg):
    """The whole configuration of the running fairseq command (``generation``, ``interactive``, …)
    that ``task_cfg`` is the ``task`` part of; empty for a task set up on its own."""
    parent = task_cfg._get_parent() if isinstance(task_cfg, DictConfig) else None
    return parent if parent is not None else OmegaConf.create()


#: fairseq's --beam default: cfg.generation.beam holds it whether or not --beam was given
FAIRSEQ_BEAM = 5


def check_no_beam_search(command):
    """fairseq-generate / fairseq-interactive with --beam: Difformer has no beam search, and the
    option would be ignored without a word. An explicit --beam 5 (fairseq's default) is seen on the
    command line of fairseq's own console scripts."""
    beam = OmegaConf.select(command, "generation.beam", default=FAIRSEQ_BEAM)
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    given = program in ("fairseq-generate", "fairseq-interactive") and any(
        arg == "--beam" or arg.startswith("--beam=") for arg in sys.argv[1:])
    if given or beam != FAIRSEQ_BEAM:
        raise DifformerError(
            "--beam: Difformer has no beam search; it decodes --length-beam-size L × --noise-beam-size N "
            "candidates per sentence (e.g. --length-beam-size 3 --noise-beam-size 2) and keeps the most "
            "probable, or with --ppl-mbr the one an AR reranker prefers (--path difformer.pt:transformer.pt): "
            "drop --beam"
        )


def check_split(data_path, split, src, tgt, dataset_impl, flag):
    """The data-bin ``data_path`` holds ``split`` of the language pair (either direction, as fairseq
    looks), else one line naming the split (and ``flag``, the option that named it), the data-bin
    and the splits it holds."""
    suffixes = [f".{src}-{tgt}.{src}", f".{tgt}-{src}.{src}"]
    if any(indexed_dataset.dataset_exists(os.path.join(data_path, split + suffix), impl=dataset_impl)
           for suffix in suffixes):
        return
    stems = {name.removesuffix(".bin").removesuffix(".idx") for name in os.listdir(data_path)}
    held = sorted({stem[: -len(suffix)] for stem in stems for suffix in suffixes if stem.endswith(suffix)})
    raise DifformerError(
        f"{flag} {split}: the data-bin {data_path} holds no {split} split of {src}-{tgt}; "
        + (f"its splits are {', '.join(held)}" if held else "it holds no split of that language pair")
    )


def check_databin(data):
    """The data-bin folders of ``data`` (``DATA-BIN[:DATA-BIN…]``) exist, and the first holds the
    dictionaries (fairseq reads them there); else one line naming the folder."""
    paths = utils.split_paths(data) if data else []
    if not paths:
        raise DifformerError("no data-bin given: the first argument is the folder fairseq-preprocess "
                             "(or difformer-prepare) wrote, the one holding dict.*.txt")
    for path in paths:
        if not os.path.isdir(path):
            raise DifformerError(f"data-bin {path} not found: give the folder fairseq-preprocess "
                                 f"(or difformer-prepare, as DESTDIR/bin) wrote, the one holding dict.*.txt")
    if not any(name.startswith("dict.") and name.endswith(".txt") for name in os.listdir(paths[0])):
        raise DifformerError(f"{paths[0]} holds no dict.*.txt, so it is no fairseq data-bin: give the "
                             f"folder fairseq-preprocess wrote (difformer-prepare writes it as DESTDIR/bin)")


def check_precision_flags(args):
    """--fp16 / --amp / --bf16 where they cannot run stop with the flag and the fix (fairseq would
    train in half precision on the CPU, or take its TPU path for --bf16)."""
    cpu = getattr(args, "cpu", False) or not torch.cuda.is_available()
    for flag in ("fp16", "memory_efficient_fp16", "amp", "bf16", "memory_efficient_bf16"):
        if not getattr(args, flag, False):
            continue
        name = "--" + flag.replace("_", "-")
        if cpu:
            raise DifformerError(
                f"{name} needs a CUDA GPU, and this run is on the CPU"
                f"{' (--cpu)' if getattr(args, 'cpu', False) else ''}: drop {name} to train in float32"
            )
        if "bf16" in flag and not torch.cuda.is_bf16_supported():
            raise DifformerError(
                f"{name}: this GPU ({torch.cuda.get_device_name()}) has no bfloat16 support; "
                f"use --fp16 instead"
            )


def reduce_bleu_statistics(logging_outputs):
    """Add the --eval-bleu n-gram statistics of ``logging_outputs`` to the meters and derive
    ``bleu``: corpus BLEU = BP · exp(¼ Σ_n log p_n) × 100 over everything validated so far, with
    BP = min(1, exp(1 − ref_len / sys_len)) and sacrebleu's exp smoothing (as fairseq's).

    fairseq's translation task skips a batch none of whose hypotheses has a word: its reference
    length is left out of the brevity penalty (BLEU comes out too high), and a validation where
    every hypothesis is empty, as an untrained length predictor gives, logs no ``bleu`` at all
    (``--best-checkpoint-metric bleu`` then fails with KeyError). Here every batch with
    references counts, and such a validation logs BLEU 0."""

    def total(key):
        return sum(log.get(key, 0) for log in logging_outputs)

    if total("_bleu_ref_len") == 0:  # no validation decoding in these outputs (a training step)
        return
    orders = range(EVAL_BLEU_ORDER)
    metrics.log_scalar("_bleu_counts", np.array([total(f"_bleu_counts_{i}") for i in orders]))
    metrics.log_scalar("_bleu_totals", np.array([total(f"_bleu_totals_{i}") for i in orders]))
    metrics.log_scalar("_bleu_sys_len", total("_bleu_sys_len"))
    metrics.log_scalar("_bleu_ref_len", total("_bleu_ref_len"))

    def corpus_bleu(meters):
        bleu = BLEU.compute_bleu(
            correct=[int(c) for c in meters["_bleu_counts"].sum],
            total=[int(t) for t in meters["_bleu_totals"].sum],
            sys_len=int(meters["_bleu_sys_len"].sum),
            ref_len=int(meters["_bleu_ref_len"].sum),
            smooth_method="exp",
        )
        return round(bleu.score, 2)

    metrics.log_derived("bleu", corpus_bleu)


def rouge_sums(hyps, refs):
    """The ROUGE-1/2/L F1 sums (×100) of a batch and its sentence count, as logging-output keys."""
    sums = {f"_{name}_sum": value for name, value in rouge_f1_sums(hyps, refs).items()}
    return {**sums, "_rouge_count": len(hyps)}
