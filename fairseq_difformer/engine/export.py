"""A Difformer checkpoint → an engine folder of ONNX graphs that ONNX Runtime runs
(:mod:`~fairseq_difformer.engine.runtime`).

Decoding calls three networks; each becomes a graph with dynamic batch and length axes:

* ``encoder.onnx``: source tokens X (B × S, padded with pad) → the predicted target length ℓ (B),
  the source padding mask (B × S) and, for each decoder layer i, the cross-attention keys and
  values K_i = P_K · Encoder(X), V_i = P_V · Encoder(X) (B × H × S × d_head): the source side of
  every denoising step, computed once;
* ``denoiser.onnx``: ẑ0 = f(z_t, t, ẑ0_prev, x) of N candidates (N × T × d_latent), each reading
  the keys and values of its source (``source_of``: N indices into the B sources);
* ``embedding.npy``: the embedding table E (|V| × d_latent) the words are rounded with,
  w = argmax_{v ∉ non-words} ẑ0·E_vᵀ, in PyTorch as the eager model rounds (a graph call costs more
  than the product at batch 1).

The graphs are traced from fairseq's own modules (encoder, decoder layers with their cached
cross-attention, length predictor) in float32. With ``int8`` the encoder and denoiser graphs are
also written with ONNX Runtime's dynamic int8 quantization of their matrix products
(``*.int8.onnx``: int8 weights, one scale per tensor, the input quantized per call with its own
range); the rounding stays float32, as in the eager int8 decoding. ``engine.json`` records what
decoding needs besides the graphs: the special symbols, the training schedule, the model's
largest target length, and the checkpoint the graphs came from.
"""

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from difformer_core.errors import DifformerError
from difformer_core.locks import remove_dead_temporaries, temporary_beside

#: the version of the folder layout; the runtime refuses other versions
ENGINE_FORMAT = 1
#: the graphs, each also written as an int8 graph
INT8_GRAPHS = ("encoder", "denoiser")
OPSET = 17


class EncoderGraph(nn.Module):
    """Source tokens → (predicted lengths, source padding mask, K_1 … K_L, V_1 … V_L)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.pad = model.encoder.padding_idx

    def forward(self, src_tokens):
        src_lengths = src_tokens.ne(self.pad).sum(1)
        encoder_out = self.model.encoder(src_tokens, src_lengths=src_lengths)
        lengths = self.model.predict_lengths(encoder_out)
        states = encoder_out["encoder_out"][0]                                     # S × B × d
        keys, values = [], []
        for layer in self.model.decoder.layers:
            attention = layer.encoder_attn
            keys.append(_heads(attention.k_proj(states), attention))
            values.append(_heads(attention.v_proj(states), attention))
        return (lengths, encoder_out["encoder_padding_mask"][0], *keys, *values)


def _heads(projected, attention):
    """S × B × d → B × H × S × d_head, the layout fairseq's attention caches keys and values in."""
    src_len, bsz, _ = projected.shape
    return projected.reshape(src_len, bsz * attention.num_heads, attention.head_dim).transpose(0, 1) \
        .reshape(bsz, attention.num_heads, src_len, attention.head_dim)


class DenoiserGraph(nn.Module):
    """(z_t, t, ẑ0_prev, padding mask, source_of, source mask, K_1 … K_L, V_1 … V_L) → ẑ0, through
    the model's own denoiser with each layer's cross-attention cache filled from K_i, V_i."""

    def __init__(self, model):
        super().__init__()
        self.decoder = model.decoder

    def forward(self, z_t, t, z0_prev, padding_mask, source_of, source_mask, *keys_and_values):
        layers = self.decoder.layers
        source_mask = source_mask.index_select(0, source_of)                      # N × S
        cache = {}
        for i, layer in enumerate(layers):
            layer.encoder_attn._set_input_buffer(cache, {
                "prev_key": keys_and_values[i].index_select(0, source_of),
                "prev_value": keys_and_values[len(layers) + i].index_select(0, source_of),
                "prev_key_padding_mask": source_mask,
            })
        # The source states themselves are never read once the cache holds the keys and values:
        # any S × N tensor stands for them.
        stand_in = source_mask.t().unsqueeze(-1).to(z_t.dtype)
        encoder_out = {"encoder_out": [stand_in], "encoder_padding_mask": [source_mask]}
        return self.decoder(z_t, t, z0_prev, encoder_out, padding_mask, cross_attention_cache=cache)


def example_inputs(model, bsz=2, src_len=7, candidates=3, tgt_len=5):
    """Inputs to trace the graphs with: padded rows in every batch (the encoder keeps its padding
    path only where the traced batch has padding)."""
    pad, unk = model.encoder.padding_idx, model.encoder.dictionary.unk()
    src_tokens = torch.full((bsz, src_len), unk + 1, dtype=torch.long)
    src_tokens[1:, : src_len // 2] = pad
    latent_dim = model.args.latent_dim
    z = torch.randn(candidates, tgt_len, latent_dim)
    padding_mask = torch.zeros(candidates, tgt_len, dtype=torch.bool)
    padding_mask[1:, -2:] = True
    t = torch.full((candidates,), model.diffusion.num_timesteps - 1, dtype=torch.long)
    source_of = torch.arange(candidates) % bsz
    return src_tokens, z, t, padding_mask, source_of


def export(model, folder, int8=True, checkpoint=None, databin=None, languages=(None, None)):
    """Write ``model``'s engine folder (see the module docstring); returns its path. The folder
    is written beside and renamed into place, so a folder that exists is complete."""
    folder = Path(folder)
    if next(model.parameters()).dtype != torch.float32 or next(model.parameters()).device.type != "cpu":
        raise DifformerError("the engine export takes a float32 model on the CPU: load it without --fp16 "
                             "and call model.float().cpu() first")
    # The tracer takes only tensors that need no gradient as the graph's constants.
    needed_grad = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    model.requires_grad_(False)
    try:
        return _export(model, folder, int8, checkpoint, databin, languages)
    finally:
        for parameter in needed_grad:
            parameter.requires_grad_(True)
        model.train(was_training)


def _export(model, folder, int8, checkpoint, databin, languages):
    layers = len(model.decoder.layers)
    src_tokens, z, t, padding_mask, source_of = example_inputs(model)
    with torch.no_grad():
        encoded = EncoderGraph(model)(src_tokens)
    kv_names = [f"key_{i}" for i in range(layers)] + [f"value_{i}" for i in range(layers)]
    source_axes = {name: {0: "sources", 2: "source_length"} for name in kv_names}

    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(folder)
    staging = temporary_beside(folder)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _trace(EncoderGraph(model), (src_tokens,), staging / "encoder.onnx",
               ["src_tokens"], ["lengths", "source_mask", *kv_names],
               {"src_tokens": {0: "sources", 1: "source_length"}, "lengths": {0: "sources"},
                "source_mask": {0: "sources", 1: "source_length"}, **source_axes})
        candidate_axes = {0: "candidates", 1: "target_length"}
        _trace(DenoiserGraph(model), (z, t, torch.zeros_like(z), padding_mask, source_of, encoded[1], *encoded[2:]),
               staging / "denoiser.onnx",
               ["z_t", "t", "z0_prev", "padding_mask", "source_of", "source_mask", *kv_names], ["z0_hat"],
               {"z_t": candidate_axes, "z0_prev": candidate_axes, "padding_mask": candidate_axes,
                "t": {0: "candidates"}, "source_of": {0: "candidates"},
                "source_mask": {0: "sources", 1: "source_length"}, **source_axes, "z0_hat": candidate_axes})
        np.save(staging / "embedding.npy", model.decoder.output_projection.weight.detach().numpy())
        if int8:
            for name in INT8_GRAPHS:
                quantize_int8(staging / f"{name}.onnx", staging / f"{name}.int8.onnx")
        manifest = {
            "format": ENGINE_FORMAT,
            "int8": int8,
            "layers": layers,
            "latent_dim": model.args.latent_dim,
            "vocab_size": len(model.decoder.dictionary),
            "non_words": list(model.non_words),
            "diffusion_steps": model.args.diffusion_steps,
            "noise_schedule": model.args.noise_schedule,
            # a step-distilled student's own decoding (models/step_distillation.py), else None
            "decoding_timesteps": list(getattr(model.args, "decoding_timesteps", None) or []) or None,
            "max_target_positions": model.max_decoder_positions(),
            "pad": model.pad, "eos": model.eos, "bos": model.decoder.dictionary.bos(),
            "unk": model.decoder.dictionary.unk(),
            "source": _file_record(checkpoint) if checkpoint else None,
            "databin": str(Path(databin).resolve()) if databin else None,
            "languages": list(languages),
        }
        (staging / "engine.json").write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _trace(module, inputs, path, input_names, output_names, dynamic_axes):
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns at every Python-side shape read of fairseq's attention; the exported
        # graphs are checked against the eager model by the tests, at other shapes than traced.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def quantize_int8(source, target):
    """ONNX Runtime's dynamic int8 quantization of the graph's matrix products (MatMul, Gemm):
    weights stored as int8 with one scale per tensor, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs every tensor it leaves alone, and advises a pre-processing step that is for
    # static quantization, on the root logger.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.setLevel(level)


def _file_record(path):
    """What identifies a checkpoint file: its resolved path, size and modification time."""
    stat = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


def is_current(folder, checkpoint):
    """Whether ``folder`` is an engine folder of this layout made from ``checkpoint`` as it is now."""
    manifest = Path(folder) / "engine.json"
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())
    return recorded.get("format") == ENGINE_FORMAT and recorded.get("source") == _file_record(checkpoint)


def default_folder(checkpoint):
    """Where the engine folder of a checkpoint goes: beside it, ``<checkpoint>.onnx/``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".onnx")


def require_onnx():
    """Raise one line when the export's packages are missing."""
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise DifformerError(
                f"the ONNX Runtime engine needs {module}: pip install 'fairseq-difformer[engine]' "
                f"(onnxruntime and onnx), or decode with the eager path (engine=None)"
            ) from None
