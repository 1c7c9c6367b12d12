"""A Difformer's engine folder (:mod:`~fairseq_difformer.engine.export`) on ONNX Runtime, behind
the decoding interface :class:`~fairseq_difformer.generator.DifformerGenerator` drives.

The generator asks a model for ``forward_encoder``, ``predict_lengths``,
``encoder.reorder_encoder_out``, ``initial_latents``, ``denoise`` and ``round_to_words``;
:class:`EngineModel` answers each with one graph call (the rounding: PyTorch over the exported
embedding table, as the eager model rounds; the others: none), so the loop, the samplers, the
candidate grouping and the selection are the eager decoding's own code, fed by the same random
draws: in float32 the engine decodes the words the eager model decodes, up to the last bits of
the floating-point sums.

Sessions run with ONNX Runtime's full graph optimisations (operator fusion: layer norm, MatMul +
Add, the int8 products) and a fixed number of intra-op threads; ``inter_op`` threads are of no use
on these sequential graphs.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from difformer_core.errors import DifformerError

from ..vocabulary_scores import round_to_words
from .export import ENGINE_FORMAT, INT8_GRAPHS

#: the engine precisions: the graphs each runs
ENGINE_PRECISIONS = ("int8", "float32")


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise DifformerError(
            "the ONNX Runtime engine needs onnxruntime: pip install 'fairseq-difformer[engine]', "
            "or decode without it (engine=None, the eager PyTorch path)"
        ) from None
    return onnxruntime


def session_options(threads):
    """ONNX Runtime session options: full graph optimisation, ``threads`` intra-op threads, no
    spinning between calls (the Python loop runs between them; spinning threads would take the
    cores from it and from a second stream)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class EngineModel:
    """The decoding interface of a DifformerModel over ONNX Runtime sessions of an engine folder.

    Tensors cross into the sessions as NumPy views of CPU torch tensors and come back as torch
    tensors over the sessions' outputs: no copies either way."""

    def __init__(self, folder, precision="int8", threads=1):
        ort = require_onnxruntime()
        folder = Path(folder)
        manifest_path = folder / "engine.json"
        if not manifest_path.is_file():
            raise DifformerError(f"{folder} is not a Difformer engine folder (no engine.json): export the "
                                 f"checkpoint first (difformer-translate does it on first use)")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != ENGINE_FORMAT:
            raise DifformerError(f"{folder} has engine format {self.manifest.get('format')}, this version "
                                 f"reads {ENGINE_FORMAT}: export the checkpoint again")
        if precision not in ENGINE_PRECISIONS:
            raise DifformerError(f"engine precision {precision!r}: choose one of {', '.join(ENGINE_PRECISIONS)}")
        if precision == "int8" and not self.manifest["int8"]:
            raise DifformerError(f"{folder} was exported without int8 graphs: export it again with int8, "
                                 f"or decode in float32")
        self.folder, self.engine_precision, self.threads = folder, precision, threads
        options = session_options(threads)

        def session(name):
            suffix = ".int8.onnx" if precision == "int8" and name in INT8_GRAPHS else ".onnx"
            return ort.InferenceSession(str(folder / f"{name}{suffix}"), options, providers=["CPUExecutionProvider"])

        self.encoder_session = session("encoder")
        self.denoiser_session = session("denoiser")
        #: E, the embedding table ẑ0 is rounded with (|V| × d_latent)
        self.embedding = torch.from_numpy(np.load(folder / "embedding.npy"))
        self.layers = self.manifest["layers"]
        self.latent_dim = self.manifest["latent_dim"]
        self.pad, self.eos = self.manifest["pad"], self.manifest["eos"]
        self.args = _ModelArgs(self.manifest)
        self.encoder = _Encoder()
        self._device_tensor = torch.zeros(())

    # The generator reads the device and dtype of a model's first parameter.
    def parameters(self):
        yield self._device_tensor

    def max_decoder_positions(self):
        return self.manifest["max_target_positions"]

    def forward_encoder(self, encoder_inputs):
        """{lengths, source_mask, keys and values} of the sources (the first of ``encoder_inputs``)."""
        src_tokens = encoder_inputs[0]
        outputs = self.encoder_session.run(None, {"src_tokens": _numpy(src_tokens, np.int64)})
        lengths, source_mask, *keys_and_values = outputs
        return {
            "lengths": torch.from_numpy(lengths),
            "source_mask": source_mask,
            "keys_and_values": keys_and_values,
            "source_of": None,  # every source once, in order
        }

    def predict_lengths(self, encoder_out):
        return encoder_out["lengths"]

    def initial_latents(self, lengths, noise_scale, rng=None):
        """z_T = F ε as DifformerModel.initial_latents draws it (the same call, on ``rng`` or torch's
        default generator)."""
        max_len = int(lengths.max())
        padding_mask = torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]
        z_T = torch.randn(len(lengths), max_len, self.latent_dim, generator=rng)
        return z_T * noise_scale, padding_mask

    def denoise(self, z_t, t, z0_prev, encoder_out, padding_mask, cross_attention_cache=None):
        """One denoiser call: ẑ0 of each candidate, reading its source's keys and values."""
        source_of = encoder_out["source_of"]
        if source_of is None:
            source_of = torch.arange(len(encoder_out["source_mask"]))
        feeds = {
            "z_t": _numpy(z_t, np.float32), "t": _numpy(t, np.int64), "z0_prev": _numpy(z0_prev, np.float32),
            "padding_mask": _numpy(padding_mask, np.bool_), "source_of": _numpy(source_of, np.int64),
            "source_mask": encoder_out["source_mask"],
        }
        for i, array in enumerate(encoder_out["keys_and_values"]):
            kind, layer = ("key", i) if i < self.layers else ("value", i - self.layers)
            feeds[f"{kind}_{layer}"] = array
        (z0_hat,) = self.denoiser_session.run(None, feeds)
        return torch.from_numpy(z0_hat)

    def round_to_words(self, z0_hat, lengths, padding_mask):
        """As DifformerModel.round_to_words, with the same code over the exported table E: the best
        real word of each non-pad position and its log-probability, </s> at position ℓ−1, pad beyond."""
        embedding, eos = self.embedding, self.eos
        return round_to_words(lambda z: F.linear(z, embedding), z0_hat, lengths, padding_mask,
                              self.manifest["non_words"], len(embedding), eos, self.pad,
                              eos_logit_of=lambda z: z @ embedding[eos])

    def embed_words(self, tokens):
        raise DifformerError("clamping (ẑ0 replaced by its words' embeddings) is not in the engine's graphs: "
                             "decode with clamping on the eager path (engine=None)")


class _ModelArgs:
    """The model arguments the generator reads (its diffusion process's, and a step-distilled
    student's decoding timesteps)."""

    def __init__(self, manifest):
        self.diffusion_steps = manifest["diffusion_steps"]
        self.noise_schedule = manifest["noise_schedule"]
        self.latent_dim = manifest["latent_dim"]
        self.decoding_timesteps = manifest.get("decoding_timesteps")


class _Encoder:
    """What the generator asks of ``model.encoder``: the encoder output for a reordering of the
    sources (here: only the index, which the denoiser graph gathers with)."""

    @staticmethod
    def reorder_encoder_out(encoder_out, new_order):
        previous = encoder_out["source_of"]
        return {**encoder_out, "source_of": new_order if previous is None else previous[new_order]}


def _numpy(tensor, dtype):
    array = tensor.detach().cpu().numpy()
    return array if array.dtype == dtype else array.astype(dtype)
