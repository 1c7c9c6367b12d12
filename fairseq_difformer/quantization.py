"""Int8 decoding on the CPU (--decoding-precision int8, which ``auto``, the default, picks there).

Each chosen ``nn.Linear`` y = x Wᵀ + b becomes torch's dynamic int8 linear layer
(``torch.ao.quantization.quantize_dynamic``): W is stored once as int8, W ≈ s_W · W_q with one
scale per tensor; each call quantizes its input with the input's own range, x ≈ s_x · (x_q − z_x),
multiplies in integers with int32 accumulation and returns float32,
y ≈ s_x s_W (x_q − z_x) W_qᵀ + b.

At batch 1 a denoiser call reads every weight of the decoder for a dozen target positions, and the
weights no longer fit the cache: int8 weights are a quarter of the bytes to read. At batch 100 the
int8 products themselves are faster. Quantized are

* every dense layer of a Difformer's decoder layers (attention projections and feed-forward) and
  of its latent input (the self-conditioning MLP); while decoding, these attention layers always
  run fairseq's unfused attention path, which calls its projections as modules;
* the feed-forward layers (fc1, fc2) of every other encoder or decoder layer: the Difformer
  encoder's and an AR reranker's. Their attention may take PyTorch's fused path, which reads the
  projections' float weights directly;
* an AR reranker's output projection to the vocabulary, which scores every candidate token
  against every word, the largest product of the reranker. Its log-probabilities move slightly,
  and the reranker may pick another candidate for a few sentences.

The rest stays float32: embeddings and the Difformer's rounding to words (an argmax over the
vocabulary, where an int8 grid would break near-ties), positions, the length predictor, the
timestep MLP (one row per call), the layer norms and the output projection to ẑ0.

The model the user holds is not touched: decoding runs on a copy of its module tree (sharing the
float parameters) with the int8 layers swapped in, made again whenever the model's parameters
change (as between validations while training).
"""

import copy
import warnings

import torch
from torch import nn

from difformer_core.errors import DifformerError


def int8_linear_names(model: nn.Module):
    """The qualified names of the ``nn.Linear`` modules of ``model`` that int8 decoding
    quantizes (see the module docstring). A denoiser names the children to quantise whole in its
    class attribute ``int8_children`` (``DifformerDecoder``: its layers and its latent input);
    its ``output_projection`` maps ẑ0 to the words it is rounded to and stays float32."""
    denoisers = {prefix: module.int8_children for prefix, module in model.named_modules()
                 if getattr(module, "int8_children", None)}
    denoiser_parts = tuple(
        f"{prefix}.{child}." if prefix else f"{child}."
        for prefix, children in denoisers.items() for child in children
    )
    rounding = {f"{prefix}.output_projection" if prefix else "output_projection" for prefix in denoisers}
    names = set()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        parts = name.split(".")
        feed_forward = len(parts) >= 3 and parts[-3] == "layers" and parts[-1] in ("fc1", "fc2")
        vocabulary = parts[-1] == "output_projection" and name not in rounding
        if feed_forward or vocabulary or name.startswith(denoiser_parts):
            names.add(name)
    return names


def int8_kernels_available() -> bool:
    """Whether this PyTorch build has the x86 int8 kernels (fbgemm) dynamic quantization runs on."""
    return bool({"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines))


def int8_applies(model: nn.Module) -> bool:
    """What --decoding-precision auto picks int8 for: a float32 model on the CPU, where the
    int8 kernels exist."""
    parameter = next(model.parameters())
    return parameter.device.type == "cpu" and parameter.dtype == torch.float32 and int8_kernels_available()


def quantize_for_decoding(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with :func:`int8_linear_names` as dynamic int8 layers."""
    parameter = next(model.parameters())
    if parameter.device.type != "cpu":
        raise DifformerError(
            f"--decoding-precision int8 quantizes for CPU decoding, but the model is on "
            f"{parameter.device}: decode with --decoding-precision auto, model or bf16"
        )
    if parameter.dtype != torch.float32:
        raise DifformerError(
            f"--decoding-precision int8 quantizes a float32 model, but this model is in "
            f"{parameter.dtype}: drop --fp16 / --bf16 (or decode with --decoding-precision model)"
        )
    if not int8_kernels_available():
        raise DifformerError(
            "--decoding-precision int8 needs PyTorch's x86 int8 kernels (fbgemm), which this PyTorch "
            f"build lacks (engines: {', '.join(torch.backends.quantized.supported_engines)}): decode "
            f"with --decoding-precision model"
        )
    names = int8_linear_names(model)
    quantized = module_tree_copy(model)
    quantized.eval()  # not chained: after fairseq-generate's make_generation_fast_, train() returns None
    with warnings.catch_warnings():
        # torch 2.13 marks eager-mode quantization as deprecated in favour of torchao, whose CPU
        # int8 path needs torch.compile; the eager kernels are the ones used here, once per model.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        return torch.ao.quantization.quantize_dynamic(quantized, names, dtype=torch.qint8, inplace=True)


def module_tree_copy(module: nn.Module, memo=None) -> nn.Module:
    """A copy of the module tree that shares the parameters and buffers: each module is a shallow
    copy with its own table of children, so that swapping a child in the copy (as quantization
    does) leaves the original alone. A module reached twice (a shared embedding) is copied once."""
    memo = {} if memo is None else memo
    if id(module) not in memo:
        clone = copy.copy(module)
        memo[id(module)] = clone
        clone._parameters = dict(module._parameters)
        clone._buffers = dict(module._buffers)
        clone._modules = {
            name: None if child is None else module_tree_copy(child, memo)
            for name, child in module._modules.items()
        }
    return memo[id(module)]


class QuantizedCopy:
    """Holds the int8 copy of one model, made again when the model or its parameters change:
    an in-place update of a parameter that autograd sees (``load_state_dict``, ``p.add_`` under
    ``no_grad``) advances the tensor's version counter, and moving the model gives it new
    storage. A write through ``p.data``, as fairseq's optimizers make, advances neither: code
    that trains calls :meth:`forget` before decoding again (the task does, at each validation)."""

    def __init__(self):
        self.source = None
        self.versions = None
        self.copy = None

    def forget(self):
        """Drop the copy: the next call quantizes the model's current weights."""
        self.source = self.versions = self.copy = None

    def __call__(self, model: nn.Module) -> nn.Module:
        versions = tuple((p.data_ptr(), p._version) for p in model.parameters())
        if model is not self.source or versions != self.versions:
            self.copy = quantize_for_decoding(model)
            self.source, self.versions = model, versions
        return self.copy
