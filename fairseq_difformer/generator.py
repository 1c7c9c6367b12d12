"""Decoding a Difformer model over N spaced steps, with length and noise beams decoded as one
batch and one hypothesis selected per source.

Per source sentence: predict a length ℓ, take the L lengths around it, draw N noises for each,
so K = L × N candidates z_T ~ N(0, F_dec² I). Then for each of the N − early_stopping steps,
from t = T − 1 down:  ẑ0 = f(z_t, t, ẑ0_prev, x);  z_{t'} = the sampler's step from z_t given ẑ0
(--decoding-sampler: the DDPM posterior by default, DDIM, DPM-Solver++; diffusion/samplers.py).
The words are argmax(ẑ0 · Eᵀ) of the last ẑ0, each run of one repeated word collapsed to its
first (unless --decoding-keep-repeats).

Returns fairseq's hypothesis dicts (``tokens``, ``score``, ``positional_scores``, ``steps``,
``history``, ``alignment``, ``attention``), all K candidates per source, the selected one first.
"""

import contextlib
from dataclasses import dataclass

import torch

from difformer_core.decoding import DecodingConfig
from difformer_core.diffusion import GaussianDiffusion, build_sampler
from difformer_core.errors import DifformerError

from .length_groups import GROUP_CALL_COST, length_groups
from .quantization import QuantizedCopy, int8_applies
from .selection import bleu_mbr, build_reranker, candidate_strings, mean_log_prob


def collapse_repeats(tokens, positional_scores, lengths, pad):
    """Each run of one token collapsed to its first: position i of a row is kept iff
    y_i ≠ y_{i−1} ("two men play in in the park" → "two men play in the park"), with its score.

    tokens, positional_scores: N × ℓ_max, right-padded with ``pad``; lengths: N.
    Returns the kept tokens and scores, right-padded to the longest kept row, and their lengths."""
    keep = tokens.ne(pad)
    keep[:, 1:] &= tokens[:, 1:].ne(tokens[:, :-1])
    new_lengths = keep.sum(1)
    rows = torch.arange(len(tokens), device=tokens.device)[:, None].expand_as(tokens)[keep]
    columns = (keep.cumsum(1) - 1)[keep]
    width = int(new_lengths.max())
    kept_tokens = tokens.new_full((len(tokens), width), pad)
    kept_tokens[rows, columns] = tokens[keep]
    kept_scores = positional_scores.new_zeros(len(tokens), width)
    kept_scores[rows, columns] = positional_scores[keep]
    return kept_tokens, kept_scores, new_lengths.to(lengths)


@dataclass
class LengthGroup:
    """Candidates denoised together: their rows, their width (longest length), the source
    encoding in their order, and the cross-attention cache kept across the steps."""

    rows: torch.Tensor
    width: int
    encoder_out: dict
    cache: dict


class DifformerGenerator:
    """Drives a Difformer model through decoding: the model predicts lengths, draws z_T, denoises
    and rounds to words (DifformerModel.predict_lengths, initial_latents, denoise,
    round_to_words); the sampler moves the latents from step to step; the generator batches the
    L × N candidates, groups them by length, keeps the history and selects."""

    def __init__(self, model, tgt_dict, config: DecodingConfig, reranker=None, reranker_files=None):
        args = model.args
        config.validate(args.diffusion_steps)
        if config.selection == "reranker" and reranker is None:
            raise DifformerError(
                "--ppl-mbr reranks with an autoregressive Transformer given as a second checkpoint: "
                "--path difformer.pt:transformer.pt (from Python: from_pretrained(..., reranker=PATH))"
            )
        self.config = config
        self.tgt_dict = tgt_dict
        self.eos = tgt_dict.eos()  # fairseq-generate strips it from the printed hypotheses
        self.pad = tgt_dict.pad()
        # reranker: the loaded AR model; reranker_files (selection.RerankerFiles): where it came from
        self.reranker = (build_reranker(config.reranker_engine, reranker, tgt_dict, reranker_files)
                         if config.selection == "reranker" else None)
        self.int8_model = QuantizedCopy()
        process = GaussianDiffusion.from_schedule(
            config.noise_schedule or args.noise_schedule,
            args.diffusion_steps,
            rescaling_factor=config.rescaling_factor,
            vp_rf=config.vp_rf,
        ).respace(config.steps)
        self.sampler = build_sampler(config.sampler, process, config.early_stopping, eta=config.eta)
        self.max_len = model.max_decoder_positions()

    def decoding_timesteps(self):
        """The training timestep t the model is fed at each decoding step, in decoding order
        (T − 1 first): one per step taken, so early stopping leaves out the last ones."""
        return list(self.sampler.timesteps)

    @property
    def candidates_per_source(self):
        return self.config.length_beam * self.config.noise_beam

    def candidate_lengths(self, predicted: torch.Tensor) -> torch.Tensor:
        """B predicted lengths → (B·L·N) lengths: ℓ + (0 … L−1) − ⌊L/2⌋, each repeated N times,
        clamped to [1, max target positions]."""
        L, N = self.config.length_beam, self.config.noise_beam
        offsets = torch.arange(L, device=predicted.device) - L // 2
        lengths = (predicted[:, None] + offsets[None, :]).clamp(1, self.max_len)
        return lengths.repeat_interleave(N, dim=1).reshape(-1)

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, rng=None, **kwargs):
        """fairseq's hypothesis dicts of every source of ``sample``. ``rng``: the torch.Generator
        every random draw of the batch comes from (z_T and the sampler's noise), for batches decoded
        at once on several threads; None: torch's default generator."""
        if prefix_tokens is not None or constraints is not None:
            # Every position is denoised at once: there is no left-to-right prefix to force, and
            # fairseq's own non-autoregressive generator refuses both too.
            raise DifformerError(
                "Difformer decoding supports neither --prefix-size nor --constraints: "
                "drop the flag (every position is denoised at once)"
            )
        model = models[0]
        precision = self.precision(model)
        if precision == "int8" and isinstance(model, torch.nn.Module):  # an engine has its own int8 graphs
            model = self.int8_model(model)
        # One bfloat16 context for the whole batch (with bf16): autocast casts each weight once
        # and reuses the cast in every call, where a context per call would cast it each time.
        with self.autocast(model, precision):
            return self.decode_batch(model, sample, precision, rng)

    def precision(self, model):
        """The precision this batch decodes in: --decoding-precision, with ``auto`` resolved for
        the model as it is now (its device and dtype); an engine's (engine/runtime.py) is the one
        its graphs were loaded in."""
        engine_precision = getattr(model, "engine_precision", None)
        if engine_precision is not None:
            return "int8" if engine_precision == "int8" else "model"
        if self.config.precision != "auto":
            return self.config.precision
        return "int8" if int8_applies(model) else "model"

    def decode_batch(self, model, sample, precision="model", rng=None):
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        bsz, k = src_tokens.size(0), self.candidates_per_source
        float32 = self.float32(model, precision)
        # The sampler follows the model's device (it may have been built before the model moved).
        sampler = self.sampler.to(next(model.parameters()).device)

        encoder_out = model.forward_encoder([src_tokens, src_lengths])
        lengths = self.candidate_lengths(self.centre_lengths(model, encoder_out, sample))  # B·K
        # All candidates' z_T drawn at once, in candidate order, whatever the grouping.
        z_t, padding_mask = model.initial_latents(lengths, sampler.prior_scale, rng)   # B·K × ℓ × d
        source_of = torch.arange(bsz, device=lengths.device).repeat_interleave(k)
        groups = [
            LengthGroup(rows, int(lengths[rows].max()),
                        model.encoder.reorder_encoder_out(encoder_out, source_of[rows]), {})
            for rows in length_groups(lengths, GROUP_CALL_COST)
        ]

        z0_hat = torch.zeros_like(z_t)
        history = []
        last = len(sampler.steps) - 1
        needs_words = self.config.clamping or self.config.retain_history
        for i, (step, timestep) in enumerate(zip(sampler.steps, sampler.timesteps)):
            z0_prev = z0_hat
            z0_hat = self.denoise(model, groups, z_t, timestep, z0_prev, padding_mask)
            with float32:
                if needs_words or i == last:  # the vocabulary projection ẑ0·Eᵀ only where it is used
                    tokens, positional_scores = model.round_to_words(z0_hat, lengths, padding_mask)
                    if self.config.retain_history:
                        history.append(tokens)
                    if self.config.clamping:
                        z0_hat = model.embed_words(tokens)
                if i < last:
                    previous = z0_prev if i > 0 else None
                    if rng is None:
                        z_t = sampler.step(z_t, z0_hat, step, previous)
                    else:
                        noise = torch.randn(z_t.shape, generator=rng, dtype=z_t.dtype, device=z_t.device)
                        z_t = sampler.step(z_t, z0_hat, step, previous, noise=noise)

        history_lengths = lengths.tolist()  # each step's words, as decoded (before collapsing)
        if self.config.remove_repeats:
            tokens, positional_scores, lengths = collapse_repeats(
                tokens, positional_scores, lengths, self.pad)
            padding_mask = tokens.eq(self.pad)
        keep = (~padding_mask).type_as(positional_scores)
        scores = mean_log_prob(positional_scores, keep)
        selection = self.selection_scores(src_tokens, src_lengths, tokens, scores, lengths, precision)
        return self.hypotheses(tokens, positional_scores, scores, selection, lengths,
                               history, history_lengths, bsz)

    def centre_lengths(self, model, encoder_out, sample):
        """The length each source's length beam is centred on: the predicted one, or with
        ``oracle_length`` the reference's (its tokens and </s>, as the predictor is trained),
        plus ``length_offset``."""
        if not self.config.oracle_length:
            return model.predict_lengths(encoder_out) + self.config.length_offset
        if sample.get("target") is None:
            raise DifformerError(
                "--decoding-oracle-length decodes at the reference's length, but this batch has no "
                "references: generate from a data-bin split with its target side"
            )
        return sample["target"].ne(self.pad).sum(1) + self.config.length_offset

    @staticmethod
    def autocast(model, precision):
        """With bf16: torch.autocast(bfloat16) on the model's device, under which the encoder's,
        the denoiser's and the AR reranker's matrix products run in bfloat16; otherwise no change."""
        if precision != "bf16":
            return contextlib.nullcontext()
        parameter = next(model.parameters())
        if parameter.dtype != torch.float32:
            raise DifformerError(
                f"--decoding-precision bf16 runs a float32 model's matrix products in bfloat16, but "
                f"this model is in {parameter.dtype}: drop --fp16 (or --decoding-precision bf16)"
            )
        return torch.autocast(parameter.device.type, dtype=torch.bfloat16)

    @staticmethod
    def float32(model, precision):
        """Inside :meth:`autocast`: the rounding and the sampler's step stay in float32."""
        if precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(next(model.parameters()).device.type, enabled=False)

    @staticmethod
    def denoise(model, groups, z_t, timestep, z0_prev, padding_mask):
        """ẑ0 of every candidate (in z_t's dtype), each group denoised at its own width (the
        positions beyond a group's width are padding for all its rows and stay 0)."""
        if len(groups) == 1:  # all candidates at full width: no copies in or out
            (group,) = groups
            t = torch.full((z_t.size(0),), timestep, dtype=torch.long, device=z_t.device)
            return model.denoise(z_t, t, z0_prev, group.encoder_out, padding_mask, group.cache).to(z_t.dtype)
        z0_hat = torch.zeros_like(z_t)
        for group in groups:
            rows, width = group.rows, group.width
            t = torch.full((len(rows),), timestep, dtype=torch.long, device=z_t.device)
            z0_hat[rows, :width] = model.denoise(
                z_t[rows, :width], t, z0_prev[rows, :width], group.encoder_out,
                padding_mask[rows, :width], group.cache,
            ).to(z_t.dtype)
        return z0_hat

    def selection_scores(self, src_tokens, src_lengths, tokens, scores, lengths, precision="model"):
        if self.config.selection == "reranker":
            return self.reranker.score(src_tokens, src_lengths, tokens, self.candidates_per_source,
                                       int8=precision == "int8")
        if self.config.selection == "bleu_mbr":
            words = candidate_strings(tokens, lengths, self.tgt_dict)
            return bleu_mbr(words, self.candidates_per_source).to(scores)
        return scores

    def hypotheses(self, tokens, positional_scores, scores, selection, lengths, history, history_lengths, bsz):
        k = self.candidates_per_source
        n_steps = len(self.sampler.steps)
        lengths = lengths.tolist()
        finalized = []
        for b in range(bsz):
            ranked = sorted(range(b * k, (b + 1) * k), key=lambda c: -float(selection[c]))
            hypos = []
            for c in ranked:
                n = lengths[c]
                hypos.append({
                    "steps": n_steps,
                    "tokens": tokens[c, :n],
                    "positional_scores": positional_scores[c, :n],
                    "score": scores[c],
                    "selection_score": selection[c],
                    "alignment": None,
                    "attention": None,
                    "hypo_attn": None,
                    "history": [
                        {"tokens": h[c, :history_lengths[c]], "positional_scores": None, "score": None,
                         "alignment": None, "hypo_attn": None}
                        for h in history
                    ],
                })
            finalized.append(hypos)
        return finalized
