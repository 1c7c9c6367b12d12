"""The decoding options, without fairseq: the task's flags (:class:`DecodingOptions`, also the
keyword arguments of the hub's ``translate``) and the generator's resolved configuration
(:class:`DecodingConfig`)."""

import numbers
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Optional, Sequence, Tuple

from .diffusion import NOISE_SCHEDULES, SAMPLERS, check_rescaling_factor
from .errors import DifformerError

#: --decoding-precision: how the encoder's, the denoiser's and the AR reranker's matrix products run.
PRECISIONS = {
    "auto": "int8 for a float32 model on the CPU (where PyTorch has the int8 kernels), else model",
    "model": "the model's own weights and dtype (float32, or float16 when loaded with --fp16)",
    "bf16": "torch.autocast(bfloat16), one context per batch",
    "int8": "dynamic int8 layers on a copy of the model (quantization.py; CPU only)",
}

#: --reranker-engine: what runs the AR reranker of --ppl-mbr.
RERANKER_ENGINES = {
    "fairseq": "the second --path checkpoint as fairseq loaded it, in --decoding-precision",
    "ctranslate2": "that checkpoint converted to CTranslate2 on the CPU: int8 where the decoding is "
                   "int8, else float32 (fairseq_difformer/ctranslate2_ar.py)",
}


#: the default number of decoding steps, for a model that records none of its own (a step-distilled
#: student records the timesteps it was trained to take: models/step_distillation.py)
DEFAULT_STEPS = 5


@dataclass
class DecodingConfig:
    """The decoding options (the task's --decoding-* and beam flags). ``steps`` and
    ``early_stopping`` None are the defaults that depend on the model (:meth:`resolved`)."""

    steps: Optional[int] = None
    early_stopping: Optional[int] = None
    #: the training timesteps the steps are on, noisiest first, where the model records them (a
    #: step-distilled student); None: ``steps`` evenly spaced ones (diffusion.spaced_timesteps)
    timesteps: Optional[Tuple[int, ...]] = None
    rescaling_factor: float = 1.0
    vp_rf: bool = False
    noise_schedule: Optional[str] = None  # None: the schedule the model was trained with
    sampler: str = "ddpm"  # a key of diffusion.samplers.SAMPLERS
    eta: Optional[float] = None  # DDIM's η; None: 0
    precision: str = "auto"  # a key of PRECISIONS
    clamping: bool = False
    remove_repeats: bool = True  # collapse each run of one word to its first, before scoring
    length_offset: int = 0  # added to the predicted (or reference) length
    oracle_length: bool = False  # the length beam around the reference's length (analysis)
    length_beam: int = 1
    noise_beam: int = 1
    selection: str = "logprob"  # "logprob", "reranker" (PPL-MBR) or "bleu_mbr"
    reranker_engine: str = "fairseq"  # a key of RERANKER_ENGINES
    retain_history: bool = False

    def resolved(self, recorded_timesteps: Optional[Sequence[int]] = None) -> "DecodingConfig":
        """This configuration with the model-dependent defaults filled in. With no ``steps`` given
        and ``recorded_timesteps`` (a step-distilled model's), the steps are those timesteps, none
        skipped unless ``early_stopping`` says so; else ``steps`` (default :data:`DEFAULT_STEPS`)
        evenly spaced ones, of which the last ⌊steps / 4⌋ are skipped by default."""
        if self.steps is None and recorded_timesteps:
            timesteps = tuple(sorted((int(t) for t in recorded_timesteps), reverse=True))
            early = 0 if self.early_stopping is None else self.early_stopping
            return replace(self, steps=len(timesteps), early_stopping=early, timesteps=timesteps)
        steps = DEFAULT_STEPS if self.steps is None else self.steps
        return replace(self, steps=steps, early_stopping=default_early_stopping(steps, self.early_stopping),
                       timesteps=None)

    def validate(self, diffusion_steps: int):
        """The checks of the configuration (:meth:`resolved` where it is not) against the model's
        --diffusion-steps."""
        if self.steps is None or self.early_stopping is None:
            return self.resolved().validate(diffusion_steps)
        if self.timesteps is not None and not all(0 <= t < diffusion_steps for t in self.timesteps):
            raise DifformerError(
                f"the model records decoding timesteps {list(self.timesteps)} outside its --diffusion-steps "
                f"({diffusion_steps}): give --decoding-steps"
            )
        if not 1 <= self.steps <= diffusion_steps:
            raise DifformerError(
                f"--decoding-steps must be between 1 and the model's --diffusion-steps "
                f"({diffusion_steps}); got {self.steps}"
            )
        if not 0 <= self.early_stopping < self.steps:
            raise DifformerError(
                f"--decoding-early-stopping ({self.early_stopping}) must be in [0, --decoding-steps) "
                f"= [0, {self.steps}): it is the number of final steps to skip, at least one must run"
            )
        check_rescaling_factor(self.rescaling_factor, "--decoding-rescaling-factor")
        if self.sampler not in SAMPLERS:
            raise DifformerError(
                f"--decoding-sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}"
            )
        if self.eta is not None and self.sampler != "ddim":
            raise DifformerError(
                f"--decoding-eta is an option of --decoding-sampler ddim, not of {self.sampler}: "
                f"drop it, or decode with --decoding-sampler ddim"
            )
        if self.eta is not None and not 0 <= self.eta <= 1:
            raise DifformerError(
                f"--decoding-eta must be in [0, 1] (got {self.eta}): 0 is deterministic DDIM, "
                f"1 samples from the DDPM posterior"
            )
        if self.precision not in PRECISIONS:
            raise DifformerError(
                f"--decoding-precision {self.precision!r} is not one of {', '.join(PRECISIONS)}"
            )
        if self.reranker_engine not in RERANKER_ENGINES:
            raise DifformerError(
                f"--reranker-engine {self.reranker_engine!r} is not one of {', '.join(RERANKER_ENGINES)}"
            )
        if self.length_beam < 1 or self.noise_beam < 1:
            raise DifformerError(
                f"--length-beam-size and --noise-beam-size must be ≥ 1 "
                f"(got {self.length_beam} and {self.noise_beam})"
            )


@dataclass
class DecodingOptions:
    """The task's decoding flags (``--decoding-steps`` …, ``--length-beam-size``, ``--ppl-mbr``):
    fields of the task's configuration, and the keyword arguments of ``translate``/``generate``.
    Each option is declared here once: its type, default, help and, for those taking one of a few
    names, its ``choices`` (typed ``str`` here; the task gives them fairseq's ``ChoiceEnum`` type
    from :data:`CHOICES`, and the hub checks keywords with :func:`check_option_value`). Ranges
    that depend on the model are checked once, in :meth:`DecodingConfig.validate`."""

    # The default decoding, 5 steps of which the last is skipped (4 denoiser calls against the
    # paper's 15), is the fewest calls the samplers benchmark found near the paper's quality
    # (docs/benchmarks.md).
    decoding_steps: Optional[int] = field(
        default=None, metadata={"help": f"denoising steps, evenly spaced over the training steps T "
                                        f"(default: the model's: the steps a step-distilled student was "
                                        f"trained for, else {DEFAULT_STEPS}; the paper: 20)"}
    )
    decoding_early_stopping: Optional[int] = field(
        default=None,
        metadata={"help": "skip this many final steps and keep the ẑ0 of the last step taken "
                          "(default: a quarter of --decoding-steps, rounded down: 5 → 1, the "
                          "paper's 20 → 5; none for a step-distilled student's own steps)"},
    )
    decoding_rescaling_factor: float = field(
        default=1.0, metadata={"help": "noise rescaling factor F used while decoding"}
    )
    decoding_vp_rf: bool = field(
        default=False, metadata={"help": "apply the decoding F by rescaling the schedule (variance preserving)"}
    )
    decoding_noise_schedule: Optional[str] = field(
        default=None, metadata={"help": "noise schedule while decoding (default: the model's)",
                                "choices": tuple(NOISE_SCHEDULES), "none": "the model's"}
    )
    decoding_sampler: str = field(
        default="ddpm",
        metadata={"help": "how the latents move from one step to the next: ddpm (ancestral, the "
                          "paper's), ddim (--decoding-eta), dpm-solver++ (DPM-Solver++(2M))",
                  "choices": tuple(SAMPLERS)},
    )
    decoding_eta: Optional[float] = field(
        default=None,
        metadata={"help": "DDIM's η in [0, 1] (--decoding-sampler ddim only; default 0): 0 is "
                          "deterministic, 1 samples from the DDPM posterior"},
    )
    decoding_precision: str = field(
        default="auto",
        metadata={"help": "the precision of the matrix products while decoding: int8 (the denoiser's "
                          "dense layers and every feed-forward layer, the encoder's and the AR "
                          "reranker's, as dynamic int8 layers; CPU only), bf16 (torch.autocast; CPUs "
                          "with AVX512-BF16 or AMX, recent GPUs), model (the model's own weights, "
                          "float32 or --fp16's float16), auto (int8 for a float32 model on the CPU, "
                          "else model). The latents, the sampler and the rounding stay float32",
                  "choices": tuple(PRECISIONS)},
    )
    clamping: bool = field(
        default=False, metadata={"help": "replace ẑ0 by the embedding of its argmax word at each step"}
    )
    decoding_keep_repeats: bool = field(
        default=False,
        metadata={"help": "keep runs of one repeated word (\"in in the\"); by default each run is "
                          "collapsed to its first word before the candidates are scored"},
    )
    # 2 was chosen on Multi30k's validation set (docs/benchmarks.md): collapsing repeated words
    # shortens the hypotheses, and a longer canvas makes up for it. With the repeats kept nothing
    # is collapsed to make up for, and the offset costs BLEU: 0 there.
    decoding_length_offset: Optional[int] = field(
        default=None,
        metadata={"help": "add K to the length the length beam is centred on: collapsing repeated "
                          "words shortens hypotheses, and a longer canvas makes up for it (default: "
                          "2, or 0 with --decoding-keep-repeats; the paper: 0)"},
    )
    decoding_oracle_length: bool = field(
        default=False,
        metadata={"help": "centre the length beam on the reference's length instead of the "
                          "predicted one (analysis: the BLEU ceiling of the length predictor; needs "
                          "the references in the data-bin)"},
    )
    length_beam_size: int = field(
        default=1, metadata={"help": "L: decode the L lengths around the predicted one"}
    )
    noise_beam_size: int = field(
        default=1, metadata={"help": "N: decode N noise samples per length"}
    )
    ppl_mbr: bool = field(
        default=False,
        metadata={"help": "pick the candidate an AR Transformer finds most likely "
                          "(--path difformer.pt:transformer.pt)"},
    )
    reranker_engine: str = field(
        default="fairseq",
        metadata={"help": "what runs the AR reranker of --ppl-mbr: fairseq (the second --path "
                          "checkpoint as loaded, in --decoding-precision) or ctranslate2 (that checkpoint "
                          "converted to CTranslate2 once, cached beside it as <stem>.ct2-int8/ or "
                          ".ct2-float32/; int8 where --decoding-precision is int8, or auto on the CPU, else "
                          "float32; pip install 'fairseq-difformer[ctranslate2]')",
                  "choices": tuple(RERANKER_ENGINES)},
    )
    bleu_mbr: bool = field(
        default=False, metadata={"help": "pick the candidate with the highest mean BLEU against the others"}
    )


#: The names of the decoding options, read by the task's build_generator from the generation args
#: when given there, else from the task.
DECODING_OPTIONS = tuple(f.name for f in fields(DecodingOptions))
#: the options that take one of a few names: name → the names
CHOICES = {f.name: f.metadata["choices"] for f in fields(DecodingOptions) if "choices" in f.metadata}


def check_option_value(name, value):
    """A :class:`DifformerError` where ``value`` is not of the declared type of the decoding option
    ``name`` (None is accepted where the default is None), or not one of its choices."""
    declared = DecodingOptions.__dataclass_fields__[name]
    if value is None and declared.default is None:
        return
    if name in CHOICES:
        if not isinstance(value, str) or value not in CHOICES[name]:
            none = f" (None: {declared.metadata['none']})" if "none" in declared.metadata else ""
            raise DifformerError(f"{name}={value!r}: choose one of {', '.join(CHOICES[name])}{none}")
        return
    kind = declared.type
    if type(None) in typing.get_args(kind):
        (kind,) = (t for t in typing.get_args(kind) if t is not type(None))
    if kind is bool:
        valid, described = isinstance(value, bool), "True or False"
    elif kind is int:
        valid, described = isinstance(value, numbers.Integral) and not isinstance(value, bool), "an integer"
    else:
        valid, described = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
    if not valid:
        raise DifformerError(f"decoding option {name}={value!r} must be {described}")


def decoding_config(option, selection="logprob", retain_history=False) -> DecodingConfig:
    """The generator's configuration from the decoding options: ``option(name)`` gives the value
    of a :class:`DecodingOptions` field (the task's flag, a generation argument, a keyword), with
    the defaults that depend on other options resolved; those that depend on the model (the steps)
    are resolved by :meth:`DecodingConfig.resolved`."""
    return DecodingConfig(
        steps=option("decoding_steps"),
        early_stopping=option("decoding_early_stopping"),
        rescaling_factor=option("decoding_rescaling_factor"),
        vp_rf=option("decoding_vp_rf"),
        noise_schedule=option("decoding_noise_schedule"),
        sampler=str(option("decoding_sampler")),
        eta=option("decoding_eta"),
        precision=str(option("decoding_precision")),
        clamping=option("clamping"),
        remove_repeats=not option("decoding_keep_repeats"),
        length_offset=default_length_offset(option("decoding_length_offset"), bool(option("decoding_keep_repeats"))),
        oracle_length=bool(option("decoding_oracle_length")),
        length_beam=option("length_beam_size"),
        noise_beam=option("noise_beam_size"),
        selection=selection,
        reranker_engine=str(option("reranker_engine")),
        retain_history=retain_history,
    )


def default_early_stopping(steps: int, early_stopping: Optional[int]) -> int:
    """--decoding-early-stopping, by default ⌊steps / 4⌋: the paper's 5 of 20 at any number of
    steps (in the samplers benchmark, leaving out the last quarter gained BLEU for every sampler)."""
    return steps // 4 if early_stopping is None else early_stopping


def default_length_offset(length_offset: Optional[int], keep_repeats: bool) -> int:
    """--decoding-length-offset, by default 2 where repeated words are collapsed (they shorten the
    hypotheses; chosen on the benchmark's validation set) and 0 with --decoding-keep-repeats."""
    if length_offset is not None:
        return length_offset
    return 0 if keep_repeats else 2
