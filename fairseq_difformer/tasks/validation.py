"""The ``difformer`` task's validation: the criterion's losses, plus --eval-bleu's n-gram
statistics and --eval-rouge's F1 sums of one decoding of each validation batch, all sums that add
up across workers."""

import json
import logging
from argparse import Namespace

import numpy as np
import sacrebleu
from fairseq import metrics, utils
from fairseq.data import encoders
from fairseq.tasks import FairseqTask
from fairseq.tasks.translation import EVAL_BLEU_ORDER
from sacrebleu.metrics import BLEU

from difformer_core.rouge import ROUGE_TYPES, rouge_f1_sums

from ..generator import DifformerGenerator

logger = logging.getLogger(__name__)


class ValidationMetrics:
    """A task mixin, before fairseq's translation task among the bases: its validation hooks."""

    def build_validation_generator(self, model):
        """fairseq's translation task builds the validation decoder for --eval-bleu only; with
        --eval-rouge alone it is built here, from the same --eval-bleu-* options."""
        if self.cfg.eval_rouge and not self.cfg.eval_bleu:
            self.tokenizer = encoders.build_tokenizer(
                Namespace(tokenizer=self.cfg.eval_bleu_detok, **json.loads(self.cfg.eval_bleu_detok_args))
            )
            self.sequence_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_bleu_args)))

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
