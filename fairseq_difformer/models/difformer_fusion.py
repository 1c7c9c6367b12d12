"""``--arch difformer_fusion``: sentence classification from a frozen Difformer's inner features
(DifFormer and DifFeed, Mukhopadhyay et al.), for fairseq's ``sentence_prediction`` task.

    z0   = √d_latent · E[w]                         the input sentence, as the denoiser embeds it
    z_t  = √ᾱ_t · z0 + F · √(1 − ᾱ_t) · ε_t          ε_t drawn from a generator seeded with
                                                    (--feature-seed, the sentence's tokens)
    f_{l,t} = the residual stream after decoder layer l when denoising z_t (ẑ0_prev = 0), with
              the empty sentence as the source (the text-free model of --task difformer_lm)

The Difformer checkpoint (--difformer-checkpoint) is frozen: its parameters require no gradient and
stay in eval mode. The heads (--head, see fusion_heads.py):

    linear     linear probe on the mean-pooled f_{l,t}              (one layer, one t)
    attention  CLS + small Transformer over f_{l,t}                 (one layer, one t)
    fusion     DifFormer: the layers' projected tokens joined per t, one CLS vector per t,
               concatenated over t → Linear
    feedback   DifFeed: a first pass (no gradient) gives the late layers' outputs; in a second pass
               on the same z_t each --feedback LATE:EARLY pair adds Feedback(f_LATE) to the output of
               layer EARLY; the fusion head reads the second pass

    fairseq-train SST2-BIN --task sentence_prediction --num-classes 2 --criterion sentence_prediction \\
        --arch difformer_fusion --difformer-checkpoint lm/checkpoint_last.pt \\
        --head fusion --feature-layers 1,2,3 --feature-timesteps 100,300,800 …

Layers are numbered 0 (the layers' input) to N (the last decoder layer); timesteps are the
checkpoint's training timesteps, 0 ≤ t < T.
"""

import argparse
import os
import zlib
from typing import Dict, List

import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from fairseq.models import ARCH_MODEL_NAME_REGISTRY, BaseFairseqModel, register_model, register_model_architecture
from omegaconf import DictConfig, OmegaConf
from torch import nn

from difformer_core.errors import DifformerError

from .difformer import DifformerModel
from .fusion_heads import Feedback, FusionHead, LinearProbe, parse_feedback_pairs, parse_int_list

HEADS = ("linear", "attention", "fusion", "feedback")


@register_model("difformer_fusion")
class DifformerFusionModel(BaseFairseqModel):
    def __init__(self, args, difformer: DifformerModel, max_positions: int):
        super().__init__()
        self.args = args
        self.difformer = difformer.eval()
        for parameter in self.difformer.parameters():
            parameter.requires_grad_(False)
        self.layers = parse_int_list(args.feature_layers, "--feature-layers")
        self.timesteps = parse_int_list(args.feature_timesteps, "--feature-timesteps")
        self.feedback_pairs = parse_feedback_pairs(args.feedback, "--feedback") if args.head == "feedback" else []
        self._max_positions = max_positions
        check_feature_args(args, self.layers, self.timesteps, self.feedback_pairs, difformer)
        decoder = difformer.decoder
        self.feature_dim = decoder.embed_dim
        self.pad = decoder.dictionary.pad()
        self.latent_dim = difformer.decoder.embed_tokens.embedding_dim
        self.feedback = nn.ModuleDict({f"{late}_to_{early}": Feedback(self.feature_dim)
                                       for late, early in self.feedback_pairs})
        self.classification_heads = nn.ModuleDict()

    @staticmethod
    def add_args(parser):
        parser.add_argument("--difformer-checkpoint", metavar="FILE",
                            help="the Difformer checkpoint to read features from (frozen), e.g. "
                                 "one trained with --task difformer_lm")
        parser.add_argument("--head", choices=HEADS,
                            help="linear (probe), attention (CLS head), fusion (DifFormer), feedback "
                                 "(DifFeed) (default fusion)")
        parser.add_argument("--feature-layers", metavar="L1,L2",
                            help="decoder layers whose outputs are read: 0 (the layers' input) … N")
        parser.add_argument("--feature-timesteps", metavar="T1,T2",
                            help="noise levels, as training timesteps 0 ≤ t < T of the checkpoint")
        parser.add_argument("--feature-seed", type=int, metavar="N",
                            help="seed of the noise ε_t, drawn per sentence from this seed and its tokens "
                                 "(default 1)")
        parser.add_argument("--feedback", metavar="LATE:EARLY,…",
                            help="--head feedback: layer LATE's first-pass output is fed back after "
                                 "layer EARLY in the second pass (default N:1)")
        parser.add_argument("--head-dim", type=int, metavar="D", help="width of the attention heads (default 256)")
        parser.add_argument("--head-layers", type=int, metavar="N",
                            help="Transformer layers of the attention heads (default 2)")
        parser.add_argument("--head-attention-heads", type=int, metavar="N", help="(default 4)")
        parser.add_argument("--head-dropout", type=float, metavar="P", help="(default 0.1)")

    @classmethod
    def build_model(cls, args, task):
        base_architecture(args)
        if not args.difformer_checkpoint:
            raise DifformerError("--arch difformer_fusion needs --difformer-checkpoint FILE (a Difformer "
                                 "checkpoint, e.g. trained with --task difformer_lm)")
        dictionary = task_dictionary(task)
        difformer = load_difformer(args.difformer_checkpoint, dictionary)
        if args.head == "feedback" and not args.feedback:
            args.feedback = f"{len(difformer.decoder.layers)}:1"
        max_positions = min(getattr(args, "max_positions", None) or 512,
                            difformer.decoder.max_positions())
        return cls(args, difformer, max_positions)

    def max_positions(self):
        return self._max_positions

    def train(self, mode: bool = True):
        super().train(mode)
        self.difformer.eval()  # frozen: no dropout in the features, whatever the head does
        return self

    def register_classification_head(self, name, num_classes=None, inner_dim=None, **kwargs):
        args = self.args
        if args.head == "linear":
            head = LinearProbe(self.feature_dim, num_classes)
        else:
            head = FusionHead(self.feature_dim, len(self.layers), len(self.timesteps), num_classes,
                              args.head_dim, args.head_layers, args.head_attention_heads, args.head_dropout,
                              self._max_positions)
        self.classification_heads[name] = head

    def forward(self, src_tokens, src_lengths=None, features_only=True, classification_head_name=None, **kwargs):
        padding_mask = src_tokens.eq(self.pad)
        features = self.extract_features(src_tokens)
        name = classification_head_name or next(iter(self.classification_heads))
        return self.classification_heads[name](features, padding_mask), {}

    def extract_features(self, tokens: torch.Tensor) -> List[List[torch.Tensor]]:
        """``features[k][l]``: B × T × d_model, the output of ``self.layers[l]`` at
        ``self.timesteps[k]`` (with --head feedback, of the second pass)."""
        padding_mask = tokens.eq(self.pad)
        model = self.difformer
        with torch.no_grad():
            z0 = model.decoder.embed_latent(tokens)
            encoder_out = self.empty_source(tokens.size(0), tokens.device)
        noise = self.sentence_noise(tokens, padding_mask).to(z0)
        features = []
        for k, timestep in enumerate(self.timesteps):
            t = torch.full((tokens.size(0),), timestep, dtype=torch.long, device=tokens.device)
            z_t = model.diffusion.q_sample(z0, t, noise[k])
            with torch.no_grad():
                outputs = self.layer_outputs(z_t, t, encoder_out, padding_mask)
            if self.feedback_pairs:
                outputs = self.layer_outputs(z_t, t, encoder_out, padding_mask, fed_back=outputs)
            features.append([outputs[layer] for layer in self.layers])
        return features

    def sentence_noise(self, tokens, padding_mask) -> torch.Tensor:
        """ε of every timestep for each sentence, K × B × T × d_latent (0 at padding): drawn from a
        generator seeded with the CRC-32 of the sentence's token ids started from --feature-seed
        (torch's CPU generator reads 32 bits of a seed), so that a
        sentence's features depend on the sentence alone (not on its batch, padding or the call),
        and different sentences get independent noise."""
        noise = torch.zeros(len(self.timesteps), *tokens.shape, self.latent_dim)
        lengths = (~padding_mask).sum(1).tolist()
        for b, row in enumerate(tokens.cpu()):
            words = row[~padding_mask[b].cpu()].to(torch.int64).numpy().tobytes()
            generator = torch.Generator().manual_seed(zlib.crc32(words, self.args.feature_seed & 0xFFFFFFFF))
            noise[:, b, : lengths[b]] = torch.randn(len(self.timesteps), lengths[b], self.latent_dim,
                                                    generator=generator)
        return noise.to(tokens.device)

    def layer_outputs(self, z_t, t, encoder_out, padding_mask, fed_back=None) -> Dict[int, torch.Tensor]:
        """{layer: B × T × d} of one denoiser call; with ``fed_back`` (a first pass's outputs), each
        feedback pair adds Feedback(fed_back[LATE]) to the output of layer EARLY."""
        outputs = {}

        def hook(i, x):  # x: T × B × d
            if fed_back is not None:
                for late, early in self.feedback_pairs:
                    if early == i:
                        x = x + self.feedback[f"{late}_to_{early}"](fed_back[late]).transpose(0, 1)
            outputs[i] = x.transpose(0, 1)
            return x

        self.difformer.decoder(z_t, t, torch.zeros_like(z_t), encoder_out, padding_mask, layer_hook=hook)
        return outputs

    def empty_source(self, batch_size: int, device):
        """The encoder's output for the empty sentence [</s>], repeated for the batch: the
        text-free model's (constant) context."""
        eos = self.difformer.decoder.dictionary.eos()
        src = torch.full((1, 1), eos, dtype=torch.long, device=device)
        encoder_out = self.difformer.encoder(src, src_lengths=torch.ones(1, dtype=torch.long, device=device))
        return self.difformer.encoder.reorder_encoder_out(
            encoder_out, torch.zeros(batch_size, dtype=torch.long, device=device))


def check_feature_args(args, layers, timesteps, feedback_pairs, difformer):
    """Option values outside the checkpoint's model stop with the flag."""
    depth = len(difformer.decoder.layers)
    steps = difformer.diffusion.num_timesteps
    for layer in layers:
        if not 0 <= layer <= depth:
            raise DifformerError(f"--feature-layers {args.feature_layers}: layer {layer} is outside the "
                                 f"checkpoint's decoder (layers 0 … {depth}; 0 is the layers' input)")
    for timestep in timesteps:
        if not 0 <= timestep < steps:
            raise DifformerError(f"--feature-timesteps {args.feature_timesteps}: t = {timestep} is outside "
                                 f"[0, {steps}) (the checkpoint's --diffusion-steps {steps})")
    if args.head in ("linear", "attention") and (len(layers), len(timesteps)) != (1, 1):
        raise DifformerError(f"--head {args.head} reads one layer at one t: give one value to "
                             f"--feature-layers and --feature-timesteps (several are --head fusion)")
    for late, early in feedback_pairs:
        if not 0 <= early < late <= depth:
            raise DifformerError(f"--feedback {args.feedback}: {late}:{early} is outside the checkpoint's "
                                 f"decoder (layers 0 … {depth})")


def task_dictionary(task) -> Dictionary:
    """The classification data's dictionary without the ``<mask>`` symbol fairseq's
    sentence_prediction task appends to it."""
    dictionary = task.source_dictionary
    if dictionary[len(dictionary) - 1] == "<mask>":
        plain = Dictionary()
        plain.symbols, plain.count = list(dictionary.symbols[:-1]), list(dictionary.count[:-1])
        plain.indices = {s: i for i, s in enumerate(plain.symbols)}
        return plain
    return dictionary


def load_difformer(path, dictionary: Dictionary, weights: bool = True) -> DifformerModel:
    """The Difformer of checkpoint ``path``, its weights loaded, checked against ``dictionary``;
    ``weights=False`` keeps the freshly initialised weights (an untrained control of the same shape)."""
    if not os.path.isfile(path):
        raise DifformerError(f"--difformer-checkpoint {path}: no such file")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as error:
        raise DifformerError(f"--difformer-checkpoint {path}: not a fairseq checkpoint ({error})") from None
    model_args = (state.get("cfg") or {}).get("model") or state.get("args")
    if isinstance(model_args, DictConfig):
        model_args = argparse.Namespace(**OmegaConf.to_container(model_args, resolve=True))
    arch = getattr(model_args, "arch", None) or getattr(model_args, "_name", None)
    if ARCH_MODEL_NAME_REGISTRY.get(arch) != "difformer":
        raise DifformerError(f"--difformer-checkpoint {path} holds a {arch or 'unknown'} model, not a "
                             f"Difformer: give a checkpoint trained with --task difformer or difformer_lm")
    size = state["model"]["decoder.embed_tokens.weight"].size(0)
    if size != len(dictionary):
        raise DifformerError(
            f"--difformer-checkpoint {path} was trained with a dictionary of {size} types, but the data's "
            f"input0/dict.txt has {len(dictionary)}: binarise the data with the checkpoint's dictionary "
            f"(difformer-prepare-text --srcdict)")
    task_cfg = (state.get("cfg") or {}).get("task")
    data = task_cfg.get("data") if hasattr(task_cfg, "get") else getattr(task_cfg, "data", None)
    trained_dict = os.path.join(str(data or ""), "dict.txt")
    if data and os.path.isfile(trained_dict) and Dictionary.load(trained_dict).symbols != dictionary.symbols:
        raise DifformerError(f"the data's input0/dict.txt differs from {trained_dict}, the dictionary "
                             f"--difformer-checkpoint {path} was trained with: binarise the data with it")
    task = argparse.Namespace(source_dictionary=dictionary, target_dictionary=dictionary,
                              cfg=argparse.Namespace(data=path))
    model = DifformerModel.build_model(model_args, task)
    if weights:
        model.load_state_dict(state["model"], strict=True)
    return model


@register_model_architecture("difformer_fusion", "difformer_fusion")
def base_architecture(args):
    args.difformer_checkpoint = getattr(args, "difformer_checkpoint", None)
    args.head = getattr(args, "head", None) or "fusion"
    args.feature_layers = getattr(args, "feature_layers", None) or "1"
    args.feature_timesteps = getattr(args, "feature_timesteps", None) or "100"
    if getattr(args, "feature_seed", None) is None:
        args.feature_seed = 1
    args.feedback = getattr(args, "feedback", None)
    args.head_dim = getattr(args, "head_dim", None) or 256
    args.head_layers = getattr(args, "head_layers", None) or 2
    args.head_attention_heads = getattr(args, "head_attention_heads", None) or 4
    args.head_dropout = getattr(args, "head_dropout", None)
    if args.head_dropout is None:
        args.head_dropout = 0.1
