"""The ``difformer`` architecture's options: their declaration (argparse, as fairseq's models
declare theirs) and the checks of their values, each a one-line error naming the flag."""

import argparse

from difformer_core.diffusion import NOISE_SCHEDULES, check_rescaling_factor
from difformer_core.errors import DifformerError


def add_difformer_args(parser):
    """The Difformer architecture's own options (beside fairseq's NAT model options)."""
    flag = dict(action=argparse.BooleanOptionalAction)
    # Model-specific arguments have no parser default: the architecture functions set them.
    parser.add_argument("--model-dim", type=int, metavar="D",
                        help="Transformer width d_model (sets encoder and decoder embed dims)")
    parser.add_argument("--latent-dim", type=int, metavar="D",
                        help="width d_latent of the token embeddings the diffusion runs on")
    parser.add_argument("--diffusion-steps", type=int, metavar="T",
                        help="number of training diffusion steps T (default 2000)")
    parser.add_argument("--noise-schedule", choices=NOISE_SCHEDULES,
                        help="ᾱ schedule (default sqrt)")
    parser.add_argument("--rescaling-factor", type=float, metavar="F",
                        help="noise rescaling factor F ≥ 1 (default 1; the paper's recipes use 4)")
    parser.add_argument("--vp-rf", **flag,
                        help="apply F by rescaling the schedule (variance preserving) "
                             "instead of scaling the noise")
    parser.add_argument("--embed-norm", **flag,
                        help="LayerNorm on the decoder's embedding input (default on)")
    parser.add_argument("--embed-norm-affine", **flag,
                        help="give the embedding LayerNorm a learned gain and bias (default on)")
    parser.add_argument("--embed-norm-before-proj", **flag,
                        help="apply the embedding LayerNorm to z_t before the latent→model "
                             "projection instead of after adding time and position")
    parser.add_argument("--self-cond", **flag,
                        help="self-conditioning on the previous ẑ0 (default on)")
    parser.add_argument("--self-cond-prob", type=float, metavar="P",
                        help="probability that a training batch is self-conditioned (default 0.5)")
    parser.add_argument("--self-cond-before-proj", **flag,
                        help="concatenate [z_t; ẑ0_prev] before the projection instead of after")
    parser.add_argument("--spaced-timestep-prob", type=float, metavar="P",
                        help="probability that a sentence's training timestep is one of the "
                             "--spaced-timestep-steps timesteps an N-step decoding visits, "
                             "instead of uniform over 0..T-1 (default 0: uniform, the paper's)")
    parser.add_argument("--spaced-timestep-steps", type=int, metavar="N",
                        help="the decoding steps N whose timesteps --spaced-timestep-prob "
                             "draws from (default 5, the default decoding's)")
    parser.add_argument("--self-attn-anneal-updates", type=int, metavar="N",
                        help="anneal the decoder's self-attention from causal to full over the first N "
                             "updates: at update u each later position is hidden with probability 1 − u/N "
                             "(attention-mask annealing, for a decoder copied from an AR model with "
                             "--init-from-ar); decoding always attends fully (default 0: full from the start)")
    parser.add_argument("--ar-freeze-updates", type=int, metavar="N",
                        help="with --init-from-ar: for the first N updates only the parts without an AR "
                             "counterpart train (time embedding, self-conditioning, embedding LayerNorm, "
                             "length predictor); the copied ones get no gradient (default 0)")
    parser.add_argument("--distill-steps-from", metavar="TEACHER.pt",
                        help="step distillation: train a student that decodes in --student-steps denoiser "
                             "calls what this Difformer checkpoint decodes in more; the student starts from "
                             "the teacher's weights (a fresh run) and needs its architecture, and its "
                             "checkpoints record the timesteps its default decoding takes")
    parser.add_argument("--student-steps", type=int, metavar="K",
                        help="with --distill-steps-from: the student's denoiser calls, a divisor of the "
                             "teacher's (default: half the teacher's, as progressive distillation)")
    parser.add_argument("--teacher-steps", type=int, metavar="S",
                        help="with --distill-steps-from: the teacher's decoding the student learns, S evenly "
                             "spaced steps of which the last ⌊S/4⌋ are skipped, as --decoding-steps (default: "
                             "the teacher's own: the steps it records if it is a student, else the default "
                             "decoding's); --decoding-sampler and the --decoding-* noise options apply")
    parser.add_argument("--rescale-timesteps", **flag,
                        help="feed t' = t · 1000 / T to the time embedding (default on)")
    parser.add_argument("--pred-length-offset", **flag,
                        help="predict the target length as an offset from the source length")
    parser.add_argument("--sg-length-pred", **flag,
                        help="stop the length loss's gradient at the encoder")
    parser.add_argument("--length-loss-factor", type=float,
                        help="weight of the length prediction loss (default 0.1)")
    parser.add_argument("--init-from-ar", metavar="AR.pt",
                        help="start a fresh run from a fairseq AR Transformer translation checkpoint "
                             "of the same sizes and dictionary: its layers, positions and embedding "
                             "table (rank-d_latent SVD) are copied (not when the run resumes from its "
                             "own checkpoint_last.pt, as --finetune-from-model)")


def validate_model_args(args):
    """Reject option values that would make the diffusion ill-defined, naming the flag."""
    if args.diffusion_steps < 1:
        raise DifformerError(f"--diffusion-steps must be at least 1 (got {args.diffusion_steps})")
    check_rescaling_factor(args.rescaling_factor, "--rescaling-factor")
    if args.latent_dim < 1 or args.model_dim < 1:
        raise DifformerError("--latent-dim and --model-dim must be positive")
    if not 0 <= args.self_cond_prob <= 1:
        raise DifformerError(f"--self-cond-prob must be in [0, 1] (got {args.self_cond_prob})")
    if not 0 <= args.spaced_timestep_prob <= 1:
        raise DifformerError(f"--spaced-timestep-prob must be in [0, 1] (got {args.spaced_timestep_prob})")
    if not 1 <= args.spaced_timestep_steps <= args.diffusion_steps:
        raise DifformerError(
            f"--spaced-timestep-steps must be between 1 and --diffusion-steps ({args.diffusion_steps}); "
            f"got {args.spaced_timestep_steps}"
        )
    if args.self_attn_anneal_updates < 0:
        raise DifformerError(f"--self-attn-anneal-updates must be ≥ 0 (got {args.self_attn_anneal_updates})")
    if args.ar_freeze_updates < 0:
        raise DifformerError(f"--ar-freeze-updates must be ≥ 0 (got {args.ar_freeze_updates})")
    if args.ar_freeze_updates and not getattr(args, "init_from_ar", None):
        raise DifformerError("--ar-freeze-updates keeps the parts copied from an AR model fixed: give "
                             "--init-from-ar AR.pt (or drop --ar-freeze-updates)")
    check_step_distillation_args(args)
    if getattr(args, "no_scale_embedding", False):
        raise DifformerError(
            "--no-scale-embedding is not supported: the diffusion runs on z0 = √d_latent · E[w] "
            "(drop the flag)"
        )


def check_step_distillation_args(args):
    """--student-steps and --teacher-steps are options of --distill-steps-from, each ≥ 1; the
    student starts from its teacher's weights, so no other option may set them."""
    teacher = getattr(args, "distill_steps_from", None)
    for other in ("init_from_ar", "finetune_from_model"):
        if teacher and getattr(args, other, None):
            raise DifformerError(f"--distill-steps-from and --{other.replace('_', '-')} both set the starting "
                                 f"weights (the student starts from its teacher's): give one")
    for name in ("student_steps", "teacher_steps"):
        value, flag = getattr(args, name, None), "--" + name.replace("_", "-")
        if value is None:
            continue
        if not teacher:
            raise DifformerError(f"{flag} is an option of step distillation: give --distill-steps-from "
                                 f"TEACHER.pt (or drop {flag})")
        if value < 1:
            raise DifformerError(f"{flag} must be at least 1 (got {value})")


def check_shared_dictionary(args, src_dict, tgt_dict, data):
    """--share-all-embeddings needs one joined dictionary (one table for source and target)."""
    if args.share_all_embeddings and src_dict != tgt_dict:
        raise DifformerError(
            f"--share-all-embeddings needs one joined dictionary, but the data-bin {data} has separate "
            f"source ({len(src_dict)} types) and target ({len(tgt_dict)} types) dictionaries: re-run "
            f"fairseq-preprocess with --joined-dictionary, or train without --share-all-embeddings"
        )
