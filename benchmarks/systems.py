"""What the benchmark trains and decodes: the systems, the ablation variants, the decoding settings.

The systems' sizes and their common optimisation are the project's training recipes
(:mod:`difformer_cli.recipes`), so that the only difference between them is the model, its loss
and its decoder.
"""

from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

from difformer_cli.recipes import HEADLINE_DECODING, train_args
from difformer_cli.recipes import SYSTEMS  # noqa: F401  (what the benchmark runs)
from difformer_core.decoding import DEFAULT_STEPS

#: the decoding precision flag of each device
DECODE_DEVICE_ARGS = {"cpu": ["--cpu"], "cuda": ["--fp16"]}
#: decoding in each precision on each device (the precision part compares them)
PRECISION_ARGS = {
    "cpu": {"float32": ["--cpu"], "fp16": ["--cpu", "--fp16"]},
    "cuda": {"float32": [], "fp16": ["--fp16"]},
}
#: the decoding settings the precision part decodes in float32 and in fp16
PRECISION_SETTINGS = ("ar_beam5", "difformer_20", "difformer_20_3x2")

# The paper's ablations, each a change to the Difformer system above.
ABLATIONS = {
    "difformer": [],
    "rounding_loss": ["--rounding-loss"],
    "no_anchor_loss": ["--no-anchor-loss"],
    "no_embed_norm": ["--no-embed-norm"],
    "rescaling_1": ["--rescaling-factor", "1"],
    "rescaling_2": ["--rescaling-factor", "2"],
    "no_self_cond": ["--no-self-cond"],
    # The reference again from other seeds: how far two runs of one recipe land apart, the yardstick
    # for reading the differences above.
    "difformer_seed2": ["--seed", "2"],
    "difformer_seed3": ["--seed", "3"],
}
ABLATION_GROUPS = {
    "loss": ("difformer", "rounding_loss", "no_anchor_loss"),
    "embedding LayerNorm": ("difformer", "no_embed_norm"),
    "rescaling factor F": ("rescaling_1", "rescaling_2", "difformer"),
    "self-conditioning": ("difformer", "no_self_cond"),
    "run-to-run (seed)": ("difformer", "difformer_seed2", "difformer_seed3"),
}
SEED_VARIANTS = ABLATION_GROUPS["run-to-run (seed)"]
ABLATION_DESCRIPTIONS = {
    "difformer": "anchor loss, embedding LayerNorm, F = 4, self-conditioning",
    "rounding_loss": "rounding loss (round the clean z0) in place of the anchor loss",
    "no_anchor_loss": "neither anchor nor rounding loss",
    "no_embed_norm": "no embedding LayerNorm",
    "rescaling_1": "noise rescaling F = 1 (no rescaling)",
    "rescaling_2": "noise rescaling F = 2",
    "no_self_cond": "no self-conditioning",
    "difformer_seed2": "the reference, seed 2",
    "difformer_seed3": "the reference, seed 3",
}

# The small-budget recipe sweep: each variant replaces options of the Difformer recipe
# (difformer_cli.recipes), one change at a time, and is trained from every seed of Scale.sweep_seeds.
# The recipe took 1,024-token batches from the sweep's first round, run on 2,048-token batches: the
# `batch_2048` variants are that round, with its own reference (SWEEP_BASELINES).
SWEEP = {
    "reference": {},
    "warmup_200": {"--warmup-updates": "200"},
    "spaced_timesteps": {"--spaced-timestep-prob": "0.5"},
    "batch_512": {"--max-tokens": "512"},
    "lr_2e-3": {"--lr": "2e-3"},
    "self_cond_0.25": {"--self-cond-prob": "0.25"},
    "length_offset": {"--pred-length-offset": None},
    "deeper_narrower": {"--encoder-layers": "4", "--decoder-layers": "4", "--model-dim": "224",
                        "--encoder-ffn-embed-dim": "896", "--decoder-ffn-embed-dim": "896"},
    "shallower_wider": {"--encoder-layers": "2", "--decoder-layers": "2", "--model-dim": "320",
                        "--encoder-ffn-embed-dim": "1280", "--decoder-ffn-embed-dim": "1280"},
    "batch_2048": {"--max-tokens": "2048"},
    "batch_2048_warmup_200": {"--max-tokens": "2048", "--warmup-updates": "200"},
    "batch_2048_spaced_timesteps": {"--max-tokens": "2048", "--spaced-timestep-prob": "0.5"},
}
#: the variant each sweep variant is compared with, where it is not the reference
SWEEP_BASELINES = {"batch_2048_warmup_200": "batch_2048", "batch_2048_spaced_timesteps": "batch_2048"}
SWEEP_DESCRIPTIONS = {
    "reference": "the benchmark's Difformer recipe (peak lr 1e-3 after 400 warm-up updates, 1,024-token "
                 "batches, F = 4, self-conditioning rate 0.5, t uniform, 3+3 layers of width 256)",
    "warmup_200": "200 warm-up updates instead of 400",
    "spaced_timesteps": "half the sentences trained at the 5 timesteps the default decoding visits "
                        "(--spaced-timestep-prob 0.5)",
    "batch_512": "512-token batches instead of 1,024 (about twice the updates)",
    "lr_2e-3": "peak learning rate 2e-3 instead of 1e-3",
    "self_cond_0.25": "self-conditioning rate 0.25 instead of 0.5",
    "length_offset": "the length predictor predicts target − source length (--pred-length-offset)",
    "deeper_narrower": "4+4 layers of width 224 (FFN 896): about the same parameters, deeper",
    "shallower_wider": "2+2 layers of width 320 (FFN 1,280): about the same parameters, shallower",
    "batch_2048": "2,048-token batches instead of 1,024 (half the updates; the recipe before the sweep)",
    "batch_2048_warmup_200": "2,048-token batches and 200 warm-up updates",
    "batch_2048_spaced_timesteps": "2,048-token batches and half the sentences at the default decoding's "
                                   "5 timesteps",
}


def rescaling_factor(variant: str) -> float:
    args = train_args("difformer") + ABLATIONS[variant]
    positions = [i for i, a in enumerate(args) if a == "--rescaling-factor"]
    return float(args[positions[-1] + 1])


@dataclass(frozen=True)
class DecodingSetting:
    """One way of decoding the test set: which trained system, and its generate options."""

    name: str
    system: str
    args: Tuple[str, ...]
    label: str
    reranker: bool = False           # adds the AR system as the second --path (Difformer PPL-MBR)
    steps: Optional[int] = None      # Difformer's --decoding-steps


#: the paper's length beam, centred on the predicted length itself (the task's default adds 2)
PAPER_LENGTH = ("--decoding-length-offset", "0")


def _difformer(name, label, steps, early_stopping=0, lengths=1, noises=1, reranker=False):
    """The paper's decoding: ``steps`` DDPM steps of which the last ``early_stopping`` are left out,
    ``lengths`` × ``noises`` candidates around the predicted length."""
    args = ("--decoding-steps", str(steps), "--decoding-early-stopping", str(early_stopping),
            "--length-beam-size", str(lengths), "--noise-beam-size", str(noises), *PAPER_LENGTH,
            "--seed", "1")
    if reranker:
        args += ("--ppl-mbr",)
    return DecodingSetting(name, "difformer", args, label, reranker=reranker, steps=steps)


#: the task's default decoding: DifformerConfig's decoding_sampler and the default steps of a model
#: that records none (a test keeps them equal), whose default early stopping is a quarter of the
#: steps, named in the labels
DEFAULT_DECODING = ("ddpm", DEFAULT_STEPS)
DEFAULT_LABEL = f"{DEFAULT_DECODING[0]}, {DEFAULT_DECODING[1]} steps, early stop {DEFAULT_DECODING[1] // 4}"


def _default(suffix, what, *flags, reranked=False):
    """The task's default decoding with ``flags`` added, 1×1 (``difformer_default{suffix}``) or
    3×2 with the AR reranker (``difformer_default_3x2_rerank{suffix}``); ``what`` ends the label."""
    beams = ("--length-beam-size", "3", "--noise-beam-size", "2", "--ppl-mbr") if reranked else ()
    candidates = "3×2, AR reranker" if reranked else "1×1"
    label = f"Difformer, default ({DEFAULT_LABEL}), {candidates}" + (f", {what}" if what else "")
    return DecodingSetting(f"difformer_default{'_3x2_rerank' if reranked else ''}{suffix}", "difformer",
                           (*beams, *flags, "--seed", "1"), label, reranker=reranked)

DECODING_SETTINGS: List[DecodingSetting] = [
    DecodingSetting("ar_beam1", "ar", ("--beam", "1"), "AR Transformer, greedy"),
    DecodingSetting("ar_beam5", "ar", ("--beam", "5"), "AR Transformer, beam 5"),
    DecodingSetting("cmlm_lb1", "cmlm", ("--iter-decode-max-iter", "9", "--iter-decode-eos-penalty", "0",
                                         "--iter-decode-with-beam", "1"),
                    "CMLM, 10 iterations, length beam 1"),
    DecodingSetting("cmlm_lb3", "cmlm", ("--iter-decode-max-iter", "9", "--iter-decode-eos-penalty", "0",
                                         "--iter-decode-with-beam", "3"),
                    "CMLM, 10 iterations, length beam 3"),
    _difformer("difformer_20", "Difformer, 20 steps, early stop 5, 1×1", 20, early_stopping=5),
    _difformer("difformer_20_3x2", "Difformer, 20 steps, early stop 5, 3×2", 20, 5, 3, 2),
    _difformer("difformer_20_3x2_rerank", "Difformer, 20 steps, early stop 5, 3×2, AR reranker",
               20, 5, 3, 2, reranker=True),
    # The task's default decoding (no decoding flag given), alone and as 3×2 with the AR reranker.
    _default("", ""),
    _default("", "", reranked=True),
    # What length and repeated tokens cost: the default keeping repeated tokens, and at the
    # reference's length (the ceiling of length prediction).
    _default("_keep_repeats", "repeated tokens kept", "--decoding-keep-repeats"),
    _default("_length0", "--decoding-length-offset 0 (the paper's)", *PAPER_LENGTH),
    _default("_length0", "--decoding-length-offset 0 (the paper's)", *PAPER_LENGTH, reranked=True),
    _default("_length1", "--decoding-length-offset 1", "--decoding-length-offset", "1"),
    _default("_oracle_length", "at the reference's length", "--decoding-oracle-length"),
    # The precision of the matrix products: the default (auto: int8 on the CPU, the model's own
    # precision on a GPU) against the model's own float32 weights and bfloat16 autocast.
    *(_default(f"_{precision}", f"--decoding-precision {precision}", "--decoding-precision", precision,
               reranked=reranked)
      for precision in ("model", "bf16") for reranked in (False, True)),
]
SETTINGS_BY_NAME = {s.name: s for s in DECODING_SETTINGS}

#: the AR decodings' length limit in the summarization part (examples/gigaword/run.py's, difformer-distill's):
#: at most 1.2 × the source length + 10 tokens (fairseq's default allows 200)
HEADLINE_LENGTH_LIMIT = ("--max-len-a", "1.2", "--max-len-b", "10")


def _recorded_as(setting_name, name, *flags, label=None):
    """The decoding setting ``setting_name`` named ``name``, ``flags`` added to its options (and
    ``label`` to its label)."""
    setting = SETTINGS_BY_NAME[setting_name]
    return replace(setting, name=name, args=(*setting.args, *flags),
                   label=f"{setting.label}, {label}" if label else setting.label)


#: the summarization part's decodings of Gigaword's validation set, by record name: AR greedy and beam 5
#: with the length limit, the task's default decoding with the headline recipe's options
#: (HEADLINE_DECODING), and 3×2 candidates of it reranked by the AR model
SUMMARIZATION_SETTINGS = {setting.name: setting for setting in (
    _recorded_as("ar_beam1", "ar_greedy", *HEADLINE_LENGTH_LIMIT),
    _recorded_as("ar_beam5", "ar_beam5", *HEADLINE_LENGTH_LIMIT),
    _recorded_as("difformer_default", "difformer_default", *HEADLINE_DECODING, label=" ".join(HEADLINE_DECODING)),
    _recorded_as("difformer_default_3x2_rerank", "difformer_3x2_rerank", *HEADLINE_DECODING,
                 label=" ".join(HEADLINE_DECODING)),
)}

# The samplers part: every sampler × number of steps × early stopping × candidates (lengths ×
# noises), against AR beam 5 decoded in the same run. Early stopping is given as the fraction of the
# steps left out: 0, and the paper's 5 of 20 wherever it leaves out at least one step.
SAMPLERS = ("ddpm", "ddim", "dpm-solver++")
SAMPLER_BEAMS = ((1, 1), (3, 2))
SAMPLER_STOPS = (0.0, 0.25)


def sampler_early_stopping(steps: int, fraction: float) -> int:
    """E = ⌊fraction · steps⌋, the final steps left out (20 steps at 0.25: 5, the paper's)."""
    return int(fraction * steps)


def sampler_setting(sampler: str, steps: int, lengths: int, noises: int, early_stopping: int = 0) -> DecodingSetting:
    """Difformer decoded with ``sampler`` in ``steps`` steps of which the last ``early_stopping``
    are left out, ``lengths`` × ``noises`` candidates around the predicted length (offset 0, as
    the part first ran: the default's offset of 2 was chosen after it)."""
    args = ("--decoding-sampler", sampler, "--decoding-steps", str(steps),
            "--decoding-early-stopping", str(early_stopping),
            "--length-beam-size", str(lengths), "--noise-beam-size", str(noises), *PAPER_LENGTH,
            "--seed", "1")
    stop = f"es{early_stopping}" if early_stopping else ""
    label_stop = f", early stop {early_stopping}" if early_stopping else ""
    return DecodingSetting(f"{sampler}_{steps}{stop}_{lengths}x{noises}", "difformer", args,
                           f"Difformer, {sampler}, {steps} steps{label_stop}, {lengths}×{noises}", steps=steps)


def sampler_settings(steps_grid) -> List[Tuple[DecodingSetting, int]]:
    """The samplers part's grid: (setting, early stopping) for every sampler × candidates × early
    stopping fraction × steps, without repeats (a fraction that leaves out no step is E = 0)."""
    grid = []
    for sampler in SAMPLERS:
        for lengths, noises in SAMPLER_BEAMS:
            for fraction in SAMPLER_STOPS:
                for steps in steps_grid:
                    stop = sampler_early_stopping(steps, fraction)
                    if fraction and not stop:
                        continue
                    grid.append((sampler_setting(sampler, steps, lengths, noises, stop), stop))
    return grid


BASELINE_SETTING = "ar_beam5"

GENERATE_TASK = {"ar": "translation", "cmlm": "translation_lev", "difformer": "difformer"}


@dataclass
class Scale:
    """How big a run is: the full benchmark or the quick check of every step."""

    train_lines: Optional[int]       # None: all of Multi30k's 29k training pairs
    eval_lines: Optional[int]        # None: all of val (1,014) and test2016 (1,000)
    bpe_merges: int
    throughput_updates: int
    log_interval: int
    decode_batch_sizes: Tuple[int, ...] = (100, 1)   # 0: batches of --max-tokens 8192 instead
    sampler_steps: Tuple[int, ...] = (1, 2, 4, 5, 8, 10, 20)   # the samplers part's step counts
    sweep_seeds: Tuple[int, ...] = (1, 2, 3)   # the seeds each recipe variant of the sweep trains from


FULL = Scale(train_lines=None, eval_lines=None, bpe_merges=8000, throughput_updates=300, log_interval=50)
QUICK = Scale(train_lines=2000, eval_lines=60, bpe_merges=1000, throughput_updates=20, log_interval=5,
              sampler_steps=(1, 4), sweep_seeds=(1,))
# One lent GPU for a few minutes: fewer throughput updates, decoding at batch 100 and --max-tokens.
CUDA = Scale(train_lines=None, eval_lines=None, bpe_merges=8000, throughput_updates=100, log_interval=25,
             decode_batch_sizes=(100, 0))
DECODE_MAX_TOKENS = 8192
