"""The Difformer model: a Transformer encoder–decoder that denoises token embeddings.

    z0   = √d_latent · E[w]                                   one table E (|V| × d_latent)
    z_t  = √ᾱ_t · z0 + F · √(1 − ᾱ_t) · ε                       (diffusion/gaussian_diffusion.py)
    h    = LatentInput(z_t, ẑ0_prev) + TimeMLP(sinusoid(t')) + pos   → embedding LayerNorm → dropout
           (with --embed-norm-before-proj the LayerNorm is on z0 = LN(√d_latent · E[w]) instead)
    ẑ0   = P_out · Decoder(h, Encoder(source))                 bias-free P_out: d_model → d_latent
    logits = ẑ0 · Eᵀ

The encoder, the decoder layers and the length predictor are fairseq's (``fairseq.models.nat``);
what is Difformer's own is the latent input, the time conditioning, the embedding LayerNorm,
self-conditioning and the training diffusion process (``model.diffusion``; decoding builds its
own, respaced and with the --decoding-* schedule and F: see generator.py).
"""

import math
import re

import torch
from fairseq.models import register_model, register_model_architecture
from fairseq.models.nat import FairseqNATEncoder, FairseqNATModel
from fairseq.models.nat.nonautoregressive_transformer import NATransformerDecoder
from fairseq.models.transformer import Embedding, Linear
from fairseq.modules import LayerNorm
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from torch import nn

from difformer_core.diffusion import GaussianDiffusion, training_timesteps

from ..vocabulary_scores import round_to_words
from . import hub_interface
from .ar_init import NEW_PARTS
from .difformer_layers import ScaledLatentEmbedding, TimestepEmbedding, annealed_causal_mask, build_latent_input
from .difformer_options import add_difformer_args, check_shared_dictionary, validate_model_args


@register_model("difformer")
class DifformerModel(FairseqNATModel):
    """Difformer (Gao et al.): embedding diffusion with anchor loss, embedding LayerNorm and
    noise rescaling. ``forward`` runs one training step of the diffusion objective."""

    def __init__(self, args, encoder, decoder):
        super().__init__(args, encoder, decoder)
        self.diffusion = GaussianDiffusion.from_schedule(
            args.noise_schedule,
            args.diffusion_steps,
            rescaling_factor=args.rescaling_factor,
            vp_rf=args.vp_rf,
        )
        #: symbols decoding never outputs at a word's position (they are not words): pad, bos, eos
        #: (only at position ℓ−1, where it is placed) and the madeupwordNNNN fillers fairseq adds to
        #: pad a dictionary to a multiple of 8
        self.non_words = [self.pad, decoder.dictionary.bos(), self.eos, *filler_symbols(decoder.dictionary)]
        self.num_updates = 0
        #: the teacher of a step-distillation training (step_distillation.StepDistillation), or None
        self.step_distillation = None
        if getattr(args, "ar_freeze_updates", 0):
            freeze_copied_parts(self, args.ar_freeze_updates)

    @staticmethod
    def add_args(parser):
        FairseqNATModel.add_args(parser)
        add_difformer_args(parser)

    @classmethod
    def build_model(cls, args, task):
        base_architecture(args)
        validate_model_args(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        check_shared_dictionary(args, src_dict, tgt_dict, getattr(task.cfg, "data", ""))
        # ẑ0 · Eᵀ: the output layer is the target embedding table by definition.
        args.share_decoder_input_output_embed = True
        args.decoder_output_dim = args.latent_dim
        tgt_embed = Embedding(len(tgt_dict), args.latent_dim, tgt_dict.pad())
        src_embed = (
            tgt_embed if args.share_all_embeddings
            else Embedding(len(src_dict), args.latent_dim, src_dict.pad())
        )
        encoder = cls.build_encoder(args, src_dict, src_embed)
        decoder = cls.build_decoder(args, tgt_dict, tgt_embed)
        return cls(args, encoder, decoder)

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="checkpoint_best.pt", data_name_or_path=".",
                        **kwargs):
        """A trained model as a hub interface that translates raw text, e.g.
        ``DifformerModel.from_pretrained("checkpoints", data_name_or_path="data-bin").translate("Ein Hund
        rennt.", decoding_steps=10)``; the options (tokenizer, bpe, reranker, engine, …) are those of
        :func:`fairseq_difformer.models.hub_interface.from_pretrained`."""
        return hub_interface.from_pretrained(model_name_or_path, checkpoint_file, data_name_or_path,
                                             archive_map=cls.hub_models(), **kwargs)

    @classmethod
    def build_encoder(cls, args, src_dict, embed_tokens):
        return DifformerEncoder(args, src_dict, ScaledLatentEmbedding(embed_tokens, args.model_dim))

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        decoder = DifformerDecoder(args, tgt_dict, embed_tokens)
        if args.apply_bert_init:
            # As the original code: BERT-style init of the decoder (and with it the shared
            # embedding table); the encoder keeps fairseq's Transformer init.
            decoder.apply(init_bert_params)
        return decoder

    def forward(self, src_tokens, src_lengths, prev_output_tokens, tgt_tokens, t=None, noise=None, **kwargs):
        """One draw of the training objective's random variables.

        t ~ Uniform{0 … T−1} per sentence, ε ~ N(0, I); with self-conditioning, a batch first
        predicts ẑ0_prev without gradient and feeds it back with probability --self-cond-prob
        (0.5, Chen et al.). A step-distillation student draws its inputs and its target ẑ0*
        (``z0_target``, the teacher's) from its teacher instead (step_distillation.py).
        Returns the tensors the criterion needs; the losses themselves live in the criterion.
        """
        encoder_out = self.encoder(src_tokens, src_lengths=src_lengths)
        length_out = self.decoder.forward_length(normalize=False, encoder_out=encoder_out)
        length_tgt = self.decoder.forward_length_prediction(length_out, encoder_out, tgt_tokens)

        padding_mask = tgt_tokens.eq(self.pad)                                   # B × T
        z0 = self.decoder.embed_latent(tgt_tokens)                               # B × T × d_lat
        if self.step_distillation is not None:
            t, z_t, z0_prev, z0_target = self.step_distillation.draw(self, src_tokens, src_lengths, z0,
                                                                     padding_mask, encoder_out)
        else:
            t, z_t, z0_prev = self.diffusion_inputs(z0, t, noise, encoder_out, padding_mask)
            z0_target = z0
        z0_hat = self.decoder(z_t, t, z0_prev, encoder_out, padding_mask)

        return {
            "z0": z0,
            "z0_target": z0_target,
            "z0_hat": z0_hat,
            "padding_mask": padding_mask,
            "length_out": length_out,
            "length_tgt": length_tgt,
        }

    def diffusion_inputs(self, z0, t, noise, encoder_out, padding_mask):
        """(t, z_t, ẑ0_prev) of the training objective: t drawn where not given, z_t ~ q(z_t | z0),
        and ẑ0_prev of :meth:`self_conditioning_input`."""
        if t is None:
            t = self.sample_timesteps(z0.size(0), z0.device)
        z_t = self.diffusion.q_sample(z0, t, noise)
        return t, z_t, self.self_conditioning_input(z_t, t, encoder_out, padding_mask)

    def self_conditioning_input(self, z_t, t, encoder_out, padding_mask):
        """ẑ0_prev of a training step: 0, or with probability --self-cond-prob (in training) the
        model's own ẑ0 of (z_t, t, 0), without gradient."""
        z0_prev = torch.zeros_like(z_t)
        # One coin per batch, drawn on the host: a branch decision, no device tensor to sync on.
        if self.decoder.self_cond and self.training and torch.rand(()) < self.args.self_cond_prob:
            with torch.no_grad():
                z0_prev = self.decoder(z_t, t, z0_prev, encoder_out, padding_mask)
        return z0_prev

    def set_num_updates(self, num_updates):
        """The trainer's update count, kept here (--ar-freeze-updates) and passed on to the decoder."""
        self.num_updates = num_updates
        super().set_num_updates(num_updates)

    def sample_timesteps(self, n, device):
        """n training timesteps (:func:`~difformer_core.diffusion.training_timesteps`)."""
        return training_timesteps(n, self.diffusion.num_timesteps, device, self.args.spaced_timestep_prob,
                                  self.args.spaced_timestep_steps)

    # The steps of decoding the generator drives (as fairseq's IterativeRefinementGenerator drives
    # a NAT model through initialize_output_tokens and forward_decoder); the move from z_t to the
    # next latent is the sampler's (diffusion/samplers.py).

    def predict_lengths(self, encoder_out):
        """The length predictor's most likely target length ℓ of each source, [B]."""
        length_out = self.decoder.forward_length(normalize=True, encoder_out=encoder_out)
        return self.decoder.forward_length_prediction(length_out, encoder_out)

    def initial_latents(self, lengths, noise_scale, rng=None):
        """z_T = F ε, ε ~ N(0, I), for candidates of the given target lengths [N], in the model's
        dtype and on its device, and their padding mask (True beyond each length); ε is drawn
        from ``rng`` (a torch.Generator), or torch's default generator.

        Returns z_T: N × ℓ_max × d_latent and padding_mask: N × ℓ_max."""
        weight = self.decoder.embed_tokens.weight
        max_len = int(lengths.max())
        padding_mask = torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]
        z_T = torch.randn(len(lengths), max_len, self.args.latent_dim, generator=rng, device=weight.device,
                          dtype=weight.dtype)
        return z_T * noise_scale, padding_mask

    def denoise(self, z_t, t, z0_prev, encoder_out, padding_mask, cross_attention_cache=None):
        """One call of the denoiser: ẑ0 = f(z_t, t, ẑ0_prev, x) (see DifformerDecoder.forward)."""
        return self.decoder(z_t, t, z0_prev, encoder_out, padding_mask,
                            cross_attention_cache=cross_attention_cache)

    def round_to_words(self, z0_hat, lengths, padding_mask):
        """The words of ẑ0: argmax(ẑ0 · Eᵀ) over real words (never pad, bos, </s> or the
        dictionary's madeupwordNNNN fillers); position ℓ−1 is </s>, padding is pad. Each word's score is its
        log-probability log_softmax(ẑ0 · Eᵀ) over the whole dictionary.

        Only the non-pad positions go through the vocabulary projection, a block of positions at
        a time (:mod:`~fairseq_difformer.vocabulary_scores`).
        Returns tokens and their log-probabilities, N × ℓ_max each."""
        return round_to_words(self.decoder.output_layer, z0_hat, lengths, padding_mask, self.non_words,
                              len(self.decoder.dictionary), self.eos, self.pad)

    def embed_words(self, tokens):
        """z0 of the given words (clamping: ẑ0 replaced by the embedding of its words)."""
        return self.decoder.embed_latent(tokens)


class DifformerEncoder(FairseqNATEncoder):
    """fairseq's Transformer encoder over P_src · (√d_latent · E[w]) (see ScaledLatentEmbedding)."""

    def __init__(self, args, dictionary, embed_tokens):
        super().__init__(args, dictionary, embed_tokens)
        # The latent embedding applies its own √d_latent; fairseq's √d_model must not stack on it.
        self.embed_scale = 1.0


class DifformerDecoder(NATransformerDecoder):
    """The denoiser: predicts ẑ0 from (z_t, t, ẑ0_prev) while attending to the source.

    Layers, length predictor and output layer are fairseq's NAT decoder's; the input path is
    replaced by the Difformer one (no tokens go in, only latents).
    """

    #: The children int8 decoding quantises whole (quantization.int8_linear_names); the output
    #: projection rounds ẑ0 to words and stays float32.
    int8_children = ("layers", "latent_input")

    def __init__(self, args, dictionary, embed_tokens):
        super().__init__(args, dictionary, embed_tokens)
        latent_dim, model_dim = embed_tokens.embedding_dim, args.model_dim
        self.latent_scale = math.sqrt(latent_dim)
        self.self_cond = args.self_cond
        self.time_scale = 1000.0 / args.diffusion_steps if args.rescale_timesteps else 1.0
        #: --self-attn-anneal-updates, and the trainer's update count (set_num_updates)
        self.anneal_updates, self.num_updates = getattr(args, "self_attn_anneal_updates", 0), 0

        # fairseq's token-input projection is replaced by the (self-conditioned) latent input.
        self.project_in_dim = None
        # P_out: d_model → d_latent, a learned map at every width (fairseq leaves None where the
        # widths are equal).
        if self.project_out_dim is None:
            self.project_out_dim = Linear(model_dim, latent_dim, bias=False)
        self.latent_input = build_latent_input(
            latent_dim, model_dim, args.self_cond, args.self_cond_before_proj,
            activation=args.activation_fn, dropout=args.dropout,
        )
        self.time_embed = TimestepEmbedding(model_dim, args.activation_fn)

        norm_dim = latent_dim if args.embed_norm_before_proj else model_dim
        norm = (
            LayerNorm(norm_dim, elementwise_affine=args.embed_norm_affine)
            if args.embed_norm else nn.Identity()
        )
        # Before the projection the norm shapes the clean embeddings the diffusion runs on (the
        # original code's placement); after it, the denoiser's summed input.
        self.z0_norm = norm if args.embed_norm_before_proj else nn.Identity()
        self.embed_norm = nn.Identity() if args.embed_norm_before_proj else norm

    def set_num_updates(self, num_updates):
        """The trainer's update count (fairseq calls this before every update)."""
        self.num_updates = num_updates

    def self_attn_mask(self, length, like):
        """None (full attention) in decoding and once annealing is over; while training within
        --self-attn-anneal-updates N, the mask of :func:`annealed_causal_mask` at u / N."""
        if not self.training or self.num_updates >= self.anneal_updates:
            return None
        return annealed_causal_mask(length, self.num_updates / self.anneal_updates, like)

    def embed_latent(self, tokens):
        """z0 = √d_latent · E[w] (normalised, z0 = LN(√d_latent · E[w]), with --embed-norm-before-proj)."""
        return self.z0_norm(self.latent_scale * self.embed_tokens(tokens))

    def forward(self, z_t, t, z0_prev, encoder_out, padding_mask, cross_attention_cache=None,
                layer_hook=None):
        """ẑ0 = P_out · Layers(EmbedNorm(LatentInput(z_t, ẑ0_prev) + TimeMLP(t') + pos)).

        z_t, z0_prev: B × T × d_latent; t: B (training-schedule timesteps); padding_mask: B × T.
        Returns ẑ0: B × T × d_latent.

        ``cross_attention_cache``: a dict kept across the denoising steps of one batch (same
        ``encoder_out``). The first call fills it with every layer's source-side attention keys
        and values, later calls reuse them instead of projecting the source again.

        ``layer_hook(i, x)``: called with the residual stream x (T × B × d_model) after each layer
        i = 1 … N (and i = 0 for the layers' input); what it returns goes on. The features of
        :mod:`fairseq_difformer.models.difformer_fusion` are read (and fed back) here.
        """
        x = self.latent_input(z_t, z0_prev)                                        # B × T × d
        x = x + self.time_embed(t * self.time_scale)[:, None, :]
        if self.embed_positions is not None:
            # Positions only need the padding pattern: any non-pad symbol stands for a word.
            x = x + self.embed_positions(padding_mask.long() * (self.padding_idx - self.unk) + self.unk)
        x = self.dropout_module(self.embed_norm(x))

        x = x.transpose(0, 1)                                                      # T × B × d
        if layer_hook is not None:
            x = layer_hook(0, x)
        encoder_states = encoder_out["encoder_out"][0]
        encoder_padding_mask = (
            encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        )
        # fairseq's incremental state, holding only the cached source keys and values: the
        # self-attention finds nothing of its own there and attends over the whole target.
        state = None if cross_attention_cache is None else dict(cross_attention_cache)
        self_attn_mask = self.self_attn_mask(x.size(0), x)
        for i, layer in enumerate(self.layers, 1):
            x, _, _ = layer(
                x,
                encoder_states,
                encoder_padding_mask,
                incremental_state=state,
                self_attn_mask=self_attn_mask,  # None: the denoiser sees the whole target
                self_attn_padding_mask=padding_mask,
            )
            if layer_hook is not None:
                x = layer_hook(i, x)
        if cross_attention_cache is not None and not cross_attention_cache:
            for layer in self.layers:
                layer.encoder_attn._set_input_buffer(
                    cross_attention_cache, layer.encoder_attn._get_input_buffer(state)
                )
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.project_out_dim(x.transpose(0, 1))                            # B × T × d_lat


def freeze_copied_parts(model, updates):
    """While ``model.num_updates`` < ``updates``, the gradient of every parameter with an AR
    counterpart (all but :data:`~.ar_init.NEW_PARTS`) is zero: Adam then leaves it unchanged, up to
    the weight decay's shrinking."""
    def hook(grad):
        return torch.zeros_like(grad) if model.num_updates < updates else grad

    for name, parameter in model.named_parameters():
        if not name.startswith(tuple(NEW_PARTS)):
            parameter.register_hook(hook)


def filler_symbols(dictionary):
    """Indices of the ``madeupwordNNNN`` symbols of ``Dictionary.pad_to_multiple_``."""
    return [i for i, symbol in enumerate(dictionary.symbols) if re.fullmatch(r"madeupword\d{4}", symbol)]


def _default_model_dim(args, default):
    """--model-dim, else fairseq's --encoder-embed-dim if given, else the architecture's width."""
    args.model_dim = getattr(args, "model_dim", None) or getattr(args, "encoder_embed_dim", None) or default


@register_model_architecture("difformer", "difformer")
def base_architecture(args):
    """Defaults of every Difformer architecture (d_model 512, FFN 2048, 8 heads, 6+6, latent 128)."""
    _default_model_dim(args, 512)
    args.latent_dim = getattr(args, "latent_dim", 128)
    args.encoder_embed_dim = args.model_dim
    args.decoder_embed_dim = args.model_dim
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 2048)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", args.encoder_ffn_embed_dim)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 8)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", args.encoder_attention_heads)
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.decoder_layers = getattr(args, "decoder_layers", 6)
    args.encoder_normalize_before = getattr(args, "encoder_normalize_before", False)
    args.decoder_normalize_before = getattr(args, "decoder_normalize_before", False)
    args.encoder_learned_pos = getattr(args, "encoder_learned_pos", True)
    args.decoder_learned_pos = getattr(args, "decoder_learned_pos", True)
    args.dropout = getattr(args, "dropout", 0.1)
    args.attention_dropout = getattr(args, "attention_dropout", 0.0)
    args.activation_dropout = getattr(args, "activation_dropout", 0.0)
    args.activation_fn = getattr(args, "activation_fn", "relu")
    args.share_all_embeddings = getattr(args, "share_all_embeddings", False)
    args.no_token_positional_embeddings = getattr(args, "no_token_positional_embeddings", False)
    args.apply_bert_init = getattr(args, "apply_bert_init", False)
    # As fairseq's Transformer: the task's --max-*-positions, else 1024.
    args.max_source_positions = getattr(args, "max_source_positions", None) or 1024
    args.max_target_positions = getattr(args, "max_target_positions", None) or 1024

    args.diffusion_steps = getattr(args, "diffusion_steps", 2000)
    args.noise_schedule = getattr(args, "noise_schedule", "sqrt")
    args.rescaling_factor = getattr(args, "rescaling_factor", 1.0)
    args.vp_rf = bool(getattr(args, "vp_rf", False))
    args.embed_norm = bool(getattr(args, "embed_norm", True))
    args.embed_norm_affine = bool(getattr(args, "embed_norm_affine", True))
    args.embed_norm_before_proj = bool(getattr(args, "embed_norm_before_proj", False))
    args.self_cond = bool(getattr(args, "self_cond", True))
    args.self_cond_before_proj = bool(getattr(args, "self_cond_before_proj", False))
    args.self_cond_prob = getattr(args, "self_cond_prob", None)
    if args.self_cond_prob is None:
        args.self_cond_prob = 0.5
    if getattr(args, "spaced_timestep_prob", None) is None:
        args.spaced_timestep_prob = 0.0
    if getattr(args, "spaced_timestep_steps", None) is None:
        args.spaced_timestep_steps = 5
    args.rescale_timesteps = bool(getattr(args, "rescale_timesteps", True))
    if getattr(args, "self_attn_anneal_updates", None) is None:
        args.self_attn_anneal_updates = 0
    if getattr(args, "ar_freeze_updates", None) is None:
        args.ar_freeze_updates = 0

    args.pred_length_offset = bool(getattr(args, "pred_length_offset", False))
    args.sg_length_pred = bool(getattr(args, "sg_length_pred", False))
    args.length_loss_factor = getattr(args, "length_loss_factor", 0.1)


@register_model_architecture("difformer", "difformer_iwslt_de_en")
def difformer_iwslt_de_en(args):
    _default_model_dim(args, 512)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 1024)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    base_architecture(args)


@register_model_architecture("difformer", "difformer_base")
def difformer_base(args):
    _default_model_dim(args, 768)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 3072)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 12)
    base_architecture(args)


@register_model_architecture("difformer", "difformer_small")
def difformer_small(args):
    """For CPU work: d_model 256, FFN 1024, 4 heads, 3+3 layers, latent 128."""
    _default_model_dim(args, 256)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 1024)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.encoder_layers = getattr(args, "encoder_layers", 3)
    args.decoder_layers = getattr(args, "decoder_layers", 3)
    base_architecture(args)
