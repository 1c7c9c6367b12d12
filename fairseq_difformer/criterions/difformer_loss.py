"""The Difformer training objective.

    L = L_mse + w_anchor · L_anchor + λ_len · L_length

    L_mse    = mean over non-pad target positions of ‖ẑ0 − z0‖² / d_latent
               (a step-distillation student: ‖ẑ0 − ẑ0*‖², ẑ0* its teacher's; models/step_distillation.py)
    L_anchor = label-smoothed cross-entropy of rounding ẑ0 to the target words, logits ẑ0 · Eᵀ
    L_length = cross-entropy of the length classifier (λ_len = the model's --length-loss-factor)

Ablations: ``--rounding-loss`` rounds the clean z0 instead of ẑ0 (Diffusion-LM's rounding loss),
``--no-anchor-loss`` drops the term. Each term is logged on its own.
"""

import math
from dataclasses import dataclass, field

import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass

from difformer_core.errors import DifformerError


@dataclass
class DifformerCriterionConfig(FairseqDataclass):
    label_smoothing: float = field(
        default=0.1, metadata={"help": "label smoothing ε of the anchor (or rounding) loss"}
    )
    anchor_loss_weight: float = field(
        default=1.0, metadata={"help": "weight of the anchor (or rounding) loss"}
    )
    rounding_loss: bool = field(
        default=False,
        metadata={"help": "ablation: round the clean z0 instead of the predicted ẑ0 "
                          "(Diffusion-LM's rounding loss) in place of the anchor loss"},
    )
    no_anchor_loss: bool = field(
        default=False, metadata={"help": "ablation: train with the diffusion and length losses only"}
    )


@register_criterion("difformer", dataclass=DifformerCriterionConfig)
class DifformerCriterion(FairseqCriterion):
    def __init__(self, task, label_smoothing, anchor_loss_weight, rounding_loss, no_anchor_loss):
        super().__init__(task)
        if rounding_loss and no_anchor_loss:
            raise DifformerError("--rounding-loss and --no-anchor-loss exclude each other: pick one ablation")
        if not 0 <= label_smoothing < 1:
            raise DifformerError(f"--label-smoothing must be in [0, 1) (got {label_smoothing})")
        self.eps = label_smoothing
        self.anchor_loss_weight = 0.0 if no_anchor_loss else anchor_loss_weight
        # Which embedding is rounded back to the words: the prediction (anchor) or the target.
        self.rounded = "z0" if rounding_loss else "z0_hat"

    def forward(self, model, sample, reduce=True):
        net_input = sample["net_input"]
        out = model(
            net_input["src_tokens"],
            net_input["src_lengths"],
            net_input.get("prev_output_tokens"),
            sample["target"],
        )
        losses = self.compute_losses(model, out, sample["target"])
        length_factor = model.decoder.length_loss_factor
        loss = losses["mse"] + self.anchor_loss_weight * losses["anchor"] + length_factor * losses["length"]

        # Every term is a mean over its batch, so one batch counts as one sample (as nat_loss).
        # All terms are logged in the units they are optimised in (nats; the MSE as it is), so that
        # the logged loss is the objective; ppl is e^nll.
        sample_size = 1
        logging_output = {
            "loss": loss.data,
            "nll_loss": losses["nll"].data,
            "mse": losses["mse"].data,
            "anchor": losses["anchor"].data,
            "length": losses["length"].data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    def compute_losses(self, model, out, target):
        """The per-term means over non-pad target positions (and sentences, for the length)."""
        keep = ~out["padding_mask"]                                               # B × T
        z0_target, z0_hat = out.get("z0_target", out["z0"]), out["z0_hat"]
        # In float32 whatever the model's dtype (fp16 / bf16 training): a sum of squares.
        mse = (z0_hat.float() - z0_target.float()).pow(2).mean(-1)[keep].mean()

        logits = model.decoder.output_layer(out[self.rounded][keep])              # N × |V|
        lprobs = utils.log_softmax(logits, dim=-1, onnx_trace=False).float()
        anchor, nll = label_smoothed_nll_loss(lprobs, target[keep], self.eps, reduce=False)
        length = F.cross_entropy(out["length_out"].float(), out["length_tgt"])
        return {"mse": mse, "anchor": anchor.mean(), "nll": nll.mean(), "length": length}

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        for key in ("loss", "nll_loss", "mse", "anchor", "length"):
            value = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, value / sample_size, sample_size, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg, base=math.e))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
