"""The precision a Difformer decoding runs in (--decoding-precision) and the contexts that apply it:
``model`` (the model's own dtype), ``int8`` (dynamically quantised linear layers, :mod:`.quantization`)
or ``bf16`` (torch.autocast to bfloat16 around the batch, the rounding and the sampler's step kept
in float32)."""

import contextlib

import torch

from difformer_core.errors import DifformerError

from .quantization import int8_applies


def resolve_precision(requested, model):
    """The precision a batch decodes in: ``requested`` (--decoding-precision), with ``auto``
    resolved for the model as it is now (int8 where it applies to its device and dtype, else the
    model's own); an engine's (engine/runtime.py) is the one its graphs were loaded in."""
    engine_precision = getattr(model, "engine_precision", None)
    if engine_precision is not None:
        return "int8" if engine_precision == "int8" else "model"
    if requested != "auto":
        return requested
    return "int8" if int8_applies(model) else "model"


def batch_autocast(model, precision):
    """With bf16: torch.autocast(bfloat16) on the model's device, under which the encoder's,
    the denoiser's and the AR reranker's matrix products run in bfloat16; otherwise no change.
    One context per batch: autocast casts each weight once and reuses the cast in every call."""
    if precision != "bf16":
        return contextlib.nullcontext()
    parameter = next(model.parameters())
    if parameter.dtype != torch.float32:
        raise DifformerError(
            f"--decoding-precision bf16 runs a float32 model's matrix products in bfloat16, but "
            f"this model is in {parameter.dtype}: drop --fp16 (or --decoding-precision bf16)"
        )
    return torch.autocast(parameter.device.type, dtype=torch.bfloat16)


def float32_inside(model, precision):
    """Inside :func:`batch_autocast`: a context in which the rounding and the sampler's step stay
    in float32 (no change for other precisions)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, enabled=False)
