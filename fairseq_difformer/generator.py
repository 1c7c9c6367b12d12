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

import torch

from difformer_core.decoding import DecodingConfig
from difformer_core.diffusion import GaussianDiffusion, build_sampler
from difformer_core.errors import DifformerError

from .decoding_precision import batch_autocast, float32_inside, resolve_precision
from .grouped_denoising import denoise_groups, group_candidates
from .quantization import QuantizedCopy
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


class DifformerGenerator:
    """Drives a Difformer model through decoding: the model predicts lengths, draws z_T, denoises
    and rounds to words (DifformerModel.predict_lengths, initial_latents, denoise,
    round_to_words); the sampler moves the latents from step to step; the generator batches the
    L × N candidates, groups them by length, keeps the history and selects."""

    def __init__(self, model, tgt_dict, config: DecodingConfig, reranker=None, reranker_files=None):
        args = model.args
        config = config.resolved(getattr(args, "decoding_timesteps", None))
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
        self.sampler = decoding_sampler(config, args)
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
        with batch_autocast(model, precision):
            return self.decode_batch(model, sample, precision, rng)

    def precision(self, model):
        """The precision a batch of ``model`` decodes in (:func:`.decoding_precision.resolve_precision`)."""
        return resolve_precision(self.config.precision, model)

    def decode_batch(self, model, sample, precision="model", rng=None):
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        k = self.candidates_per_source
        float32 = float32_inside(model, precision)
        # The sampler follows the model's device (it may have been built before the model moved).
        sampler = self.sampler.to(next(model.parameters()).device)

        encoder_out = model.forward_encoder([src_tokens, src_lengths])
        lengths = self.candidate_lengths(self.centre_lengths(model, encoder_out, sample))  # B·K
        # All candidates' z_T drawn at once, in candidate order, whatever the grouping.
        z_t, padding_mask = model.initial_latents(lengths, sampler.prior_scale, rng)   # B·K × ℓ × d
        groups = group_candidates(model, encoder_out, lengths, k)

        z0_hat = torch.zeros_like(z_t)
        history = []
        last = len(sampler.steps) - 1
        needs_words = self.config.clamping or self.config.retain_history
        for i, (step, timestep) in enumerate(zip(sampler.steps, sampler.timesteps)):
            z0_prev = z0_hat
            z0_hat = denoise_groups(model, groups, z_t, timestep, z0_prev, padding_mask)
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
        return hypothesis_dicts(tokens, positional_scores, scores, selection, lengths.tolist(),
                                [(h, history_lengths) for h in history], k, len(self.sampler.steps))

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

    def selection_scores(self, src_tokens, src_lengths, tokens, scores, lengths, precision="model"):
        if self.config.selection == "reranker":
            return self.reranker.score(src_tokens, src_lengths, tokens, self.candidates_per_source,
                                       int8=precision == "int8")
        if self.config.selection == "bleu_mbr":
            words = candidate_strings(tokens, lengths, self.tgt_dict)
            return bleu_mbr(words, self.candidates_per_source).to(scores)
        return scores


def decoding_sampler(config: DecodingConfig, args):
    """The sampler of a :meth:`~DecodingConfig.resolved` configuration, on the model's (``args``)
    process respaced to the decoding's steps: the ``config.timesteps`` a step-distilled model
    records, else ``config.steps`` evenly spaced ones; --decoding-noise-schedule and F apply."""
    process = GaussianDiffusion.from_schedule(
        config.noise_schedule or args.noise_schedule,
        args.diffusion_steps,
        rescaling_factor=config.rescaling_factor,
        vp_rf=config.vp_rf,
    )
    process = process.respace_to(config.timesteps) if config.timesteps else process.respace(config.steps)
    return build_sampler(config.sampler, process, config.early_stopping, eta=config.eta)


def hypothesis_dicts(tokens, positional_scores, scores, selection, lengths, history, k, steps):
    """fairseq's hypothesis dicts: per source (K = ``k`` consecutive candidates), its candidates
    ranked by ``selection`` (highest first), each with its ``tokens`` and ``positional_scores`` cut
    to its length, ``score`` (mean log-probability), ``selection_score``, ``steps`` and
    ``history``: the words of each decoding step, as ``(tokens, lengths)`` pairs."""
    finalized = []
    for first in range(0, len(tokens), k):
        hypos = []
        for c in sorted(range(first, first + k), key=lambda c: -float(selection[c])):
            n = lengths[c]
            hypos.append({
                "steps": steps,
                "tokens": tokens[c, :n],
                "positional_scores": positional_scores[c, :n],
                "score": scores[c],
                "selection_score": selection[c],
                "alignment": None,
                "attention": None,
                "hypo_attn": None,
                "history": [
                    {"tokens": step_tokens[c, :step_lengths[c]], "positional_scores": None, "score": None,
                     "alignment": None, "hypo_attn": None}
                    for step_tokens, step_lengths in history
                ],
            })
        finalized.append(hypos)
    return finalized
