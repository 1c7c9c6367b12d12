"""Step distillation: ``fairseq-train --task difformer --distill-steps-from TEACHER.pt
--student-steps K`` trains a student that decodes in K denoiser calls what the teacher decodes in
c = r·K.

The teacher's decoding calls the denoiser at the training timesteps τ_1 > τ_2 > … > τ_c: those it
records if it is itself a student, else its default decoding's (``--teacher-steps S`` evenly spaced
steps of which the last ⌊S/4⌋ are skipped, default :data:`~difformer_core.decoding.DEFAULT_STEPS`),
moving between them with the task's ``--decoding-sampler`` and noise options. The student calls it
at every r-th, σ_j = τ_{(j−1)r+1} for j = 1 … K, and its ẑ0 at σ_j learns the teacher's ẑ0 after
the r calls τ_{(j−1)r+1} … τ_{jr} from the same latent:

    z        ~ q(z_{σ_j} | z0)                      the teacher's decoding process (schedule, F)
    ẑ0_prev  = 0, or with p = --self-cond-prob (training only) the student's own ẑ0 of (z, σ_j, 0),
               without gradient: the self-conditioning of every Difformer training
    teacher  ẑ0⁽ⁱ⁾ = f_T(z⁽ⁱ⁾, τ_{(j−1)r+i}, ẑ0⁽ⁱ⁻¹⁾) for i = 1 … r,  z⁽¹⁾ = z,  ẑ0⁽⁰⁾ = ẑ0_prev,
             z⁽ⁱ⁺¹⁾ = the sampler's step from z⁽ⁱ⁾ given ẑ0⁽ⁱ⁾ (no gradient, no dropout)
    target   ẑ0* = ẑ0⁽ʳ⁾;    student  ẑ0 = f_S(z, σ_j, ẑ0_prev)

with one j ~ Uniform{1 … K} per batch; the criterion's MSE term is ‖ẑ0 − ẑ0*‖² / d_latent, its
anchor and length terms are unchanged. r = 2 and halving per round is progressive distillation
(Salimans & Ho 2022). Their target is the x̂0 with which one DDIM step lands where the teacher's two
do; here it is the teacher's ẑ0 itself, because this model's ẑ0 is rounded to words, anchored to
them by the anchor loss and fed back by self-conditioning: it has to stay an estimate of z0.

The student starts from the teacher's weights (a fresh run; a resumed one keeps its own) and needs
its architecture; its model args record ``decoding_timesteps`` = [σ_1, …, σ_K], which the default
decoding (``DecodingConfig.resolved``) takes, and a later round's teacher chain.
"""

import logging
import os
from dataclasses import replace

import torch
from fairseq import checkpoint_utils
from fairseq.models import ARCH_MODEL_REGISTRY

from difformer_core.checkpoints import checkpoint_problem
from difformer_core.decoding import decoding_config
from difformer_core.errors import DifformerError

from .. import dictionary_fingerprints
from ..generator import decoding_sampler
from .ar_init import resumes_from_checkpoint
from .difformer import DifformerModel

logger = logging.getLogger(__name__)

#: the model options a student shares with its teacher: it starts from the teacher's weights
#: and learns the teacher's denoiser at the teacher's timesteps
ARCHITECTURE_OPTIONS = (
    "model_dim", "latent_dim", "encoder_ffn_embed_dim", "decoder_ffn_embed_dim", "encoder_attention_heads",
    "decoder_attention_heads", "encoder_layers", "decoder_layers", "encoder_normalize_before",
    "decoder_normalize_before", "encoder_learned_pos", "decoder_learned_pos", "activation_fn",
    "share_all_embeddings", "no_token_positional_embeddings", "max_source_positions", "max_target_positions",
    "diffusion_steps", "noise_schedule", "rescaling_factor", "vp_rf", "embed_norm", "embed_norm_affine",
    "embed_norm_before_proj", "self_cond", "self_cond_before_proj", "rescale_timesteps", "pred_length_offset",
)


def student_timesteps(teacher_timesteps, student_steps):
    """σ_j = τ_{(j−1)r+1}, j = 1 … K: every r-th of the teacher's timesteps (noisiest first),
    r = c / K; a K that does not divide the teacher's c calls is a ValueError."""
    calls = len(teacher_timesteps)
    if student_steps < 1 or calls % student_steps:
        raise ValueError(f"{student_steps} student steps do not divide the teacher's {calls} calls")
    return list(teacher_timesteps)[::calls // student_steps]


class StepDistillation:
    """The teacher and its decoding chain, attached to a student model for its training
    (not a submodule: it is neither saved nor optimised with the student)."""

    def __init__(self, teacher, sampler, student_steps):
        self.teacher = teacher.eval().requires_grad_(False)
        self.sampler = sampler
        self.student_steps = student_steps
        #: r: teacher calls per student call
        self.calls_per_step = len(sampler.steps) // student_steps
        self.timesteps = student_timesteps(sampler.timesteps, student_steps)

    def draw(self, student, src_tokens, src_lengths, z0, padding_mask, encoder_out, j=None):
        """One draw of the student's inputs and target (module docstring): (t, z, ẑ0_prev, ẑ0*),
        t the training timestep σ_j of every sentence, the tensors B × T × d_latent; ``j`` counts
        the student's steps from 0 (None: drawn)."""
        if j is None:
            j = int(torch.randint(0, self.student_steps, ()))
        first = j * self.calls_per_step
        sampler = self.sampler.to(z0.device)
        teacher = self.teacher_on(z0.device)
        step = torch.full((z0.size(0),), sampler.steps[first], dtype=torch.long, device=z0.device)
        z = sampler.diffusion.q_sample(z0.float(), step).to(z0.dtype)
        t = torch.full_like(step, sampler.timesteps[first])

        z0_prev = student.self_conditioning_input(z, t, encoder_out, padding_mask)
        return t, z, z0_prev, self.teacher_target(teacher, sampler, first, src_tokens, src_lengths, z, z0_prev,
                                                  padding_mask).to(z.dtype)

    @torch.no_grad()
    def teacher_target(self, teacher, sampler, first, src_tokens, src_lengths, z, z0_prev, padding_mask):
        """ẑ0⁽ʳ⁾: the teacher's ẑ0 after its calls ``first`` … ``first`` + r − 1 from (z, ẑ0_prev),
        in float32."""
        encoder_out = teacher.encoder(src_tokens, src_lengths=src_lengths)
        z, z0_hat, previous = z.float(), z0_prev.float(), None
        for i in range(first, first + self.calls_per_step):
            if i > first:
                z = sampler.step(z, z0_hat, sampler.steps[i - 1], previous)
                previous = z0_hat
            t = torch.full((z.size(0),), sampler.timesteps[i], dtype=torch.long, device=z.device)
            z0_hat = teacher.decoder(z, t, z0_hat, encoder_out, padding_mask)
        return z0_hat

    def teacher_on(self, device):
        """The teacher, moved to the student's device on first use (fairseq moves the student
        after building it); it computes in float32 whatever the student's dtype."""
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        return self.teacher


def maybe_start_step_distillation(model, args, task):
    """--distill-steps-from TEACHER.pt --student-steps K on a model built for training: the teacher
    attached, the student's decoding timesteps recorded in ``args``, and on a fresh run (not one
    that resumes from its own checkpoint) the teacher's weights copied into the student."""
    path = getattr(args, "distill_steps_from", None)
    if not path:
        return
    args.distill_steps_from = os.path.abspath(path)
    state, teacher = load_teacher(path, args, task)
    # The teacher's chain: its default decoding's steps, with the task's sampler and noise options.
    config = replace(decoding_config(lambda name: getattr(task.cfg, name)),
                     steps=getattr(args, "teacher_steps", None), early_stopping=None)
    config = config.resolved(getattr(teacher.args, "decoding_timesteps", None))
    config.validate(teacher.args.diffusion_steps)
    sampler = decoding_sampler(config, teacher.args)
    calls = len(sampler.steps)
    if getattr(args, "student_steps", None) is None:  # halving, as progressive distillation
        args.student_steps = max(calls // 2, 1)
    if calls % args.student_steps:
        raise DifformerError(
            f"--student-steps {args.student_steps} does not divide the teacher's {calls} denoiser calls "
            f"(timesteps {list(sampler.timesteps)}): each student step stands for the same number of "
            f"teacher steps; give a divisor of {calls} (halving: {calls // 2 or 1}) or another --teacher-steps"
        )
    distillation = StepDistillation(teacher, sampler, args.student_steps)
    args.decoding_timesteps = distillation.timesteps
    model.step_distillation = distillation
    if resumes_from_checkpoint(args):
        logger.info(f"--distill-steps-from {path}: the student resumes from its own checkpoint")
    else:
        model.load_state_dict(state["model"], strict=True)
        logger.info(f"--distill-steps-from {path}: the student starts from the teacher's weights")
    logger.info(f"step distillation: the teacher's {calls} calls at timesteps {list(sampler.timesteps)} "
                f"({config.sampler}), the student's {args.student_steps} at {distillation.timesteps}")


def load_teacher(path, args, task):
    """(the teacher checkpoint's state, the teacher model in eval mode); one-line errors for a
    missing or unreadable file, another model, other dictionaries or another architecture."""
    problem = checkpoint_problem(path)
    if problem is not None:
        raise DifformerError(f"--distill-steps-from {path} does not load: {problem}")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    teacher_args = (state.get("cfg") or {}).get("model") or state.get("args")
    arch = getattr(teacher_args, "arch", None)
    if not isinstance(ARCH_MODEL_REGISTRY.get(arch), type) or not issubclass(ARCH_MODEL_REGISTRY[arch], DifformerModel):
        raise DifformerError(f"--distill-steps-from {path}: not a Difformer checkpoint (it holds {arch or 'no model'}): "
                             f"give a checkpoint of fairseq-train --task difformer")
    dictionary_fingerprints.check(teacher_args, task, f"teacher {path}")
    check_same_architecture(path, teacher_args, args)
    teacher_args.ar_freeze_updates = 0  # the teacher does not train
    teacher = ARCH_MODEL_REGISTRY[arch].build_model(teacher_args, task)
    teacher.load_state_dict(state["model"], strict=True)
    return state, teacher.eval()


def check_same_architecture(path, teacher_args, args):
    """The student has the teacher's architecture option for option; else one line naming every
    option that differs."""
    differences = [
        f"--{name.replace('_', '-')} {getattr(teacher_args, name, None)} (the student: {getattr(args, name, None)})"
        for name in ARCHITECTURE_OPTIONS if getattr(teacher_args, name, None) != getattr(args, name, None)
    ]
    if differences:
        raise DifformerError(
            f"--distill-steps-from {path}: the teacher differs in {', '.join(differences)}; the student starts "
            f"from the teacher's weights: give it the teacher's --arch and options"
        )

