"""``difformer-convert-checkpoint``: a checkpoint of the original Difformer code (fairseq 0.10
plugin) → one this plugin loads and decodes the same way.

The two models compute the same function: the same fairseq Transformer layers, length predictor
and output layer, the same latent input, time MLP (with the model's ``--activation-fn``),
self-conditioning MLP and embedding LayerNorm. Only where the modules sit differs:

    original                          here
    encoder.embed_tokens.weight       encoder.embed_tokens.embed_tokens.weight
    encoder.project_in_dim.weight     encoder.embed_tokens.project_in.weight
    decoder.project_in_dim.weight     decoder.latent_input.project_in.weight
    decoder.self_cond_proj.*          decoder.latent_input.self_cond_proj.*
    decoder.embed_time.*              decoder.time_embed.ffn.*
    decoder.embed_norm.*              decoder.embed_norm.* (decoder.z0_norm.* with --embed-norm-before-proj)

Every other parameter keeps its name. Where the original used identity projections (latent width
= model width) the identity matrix is written; a projection the original shared between encoder
and decoder (``--share-project-in-dim``) becomes two equal copies. The checkpoint's args gain this
plugin's task and criterion names, with the original's defaults written out for every Difformer
option it left unset. The result is checked by loading it into the model it describes.
"""

import argparse
import copy
from argparse import Namespace
from pathlib import Path

from difformer_core.errors import DifformerError

from .average_checkpoints import load_checkpoint, save_atomic

#: original name prefix → this plugin's (the embedding LayerNorm is placed by the args)
RENAMED = {
    "encoder.embed_tokens.weight": "encoder.embed_tokens.embed_tokens.weight",
    "encoder.project_in_dim.weight": "encoder.embed_tokens.project_in.weight",
    "decoder.project_in_dim.weight": "decoder.latent_input.project_in.weight",
    "decoder.self_cond_proj.": "decoder.latent_input.self_cond_proj.",
    "decoder.embed_time.": "decoder.time_embed.ffn.",
}
#: names shared by both layouts (fairseq's own modules)
UNCHANGED = (
    "encoder.embed_positions.", "encoder.layers.", "encoder.layer_norm.", "encoder.version",
    "decoder.embed_tokens.weight", "decoder.embed_positions.", "decoder.layers.",
    "decoder.layer_norm.", "decoder.project_out_dim.", "decoder.output_projection.",
    "decoder.embed_length.", "decoder.version",
)
#: the original code's architecture defaults (difformer/difformer.py base_architecture and its
#: add_args), written out so that this plugin's different defaults never apply to its checkpoints
ORIGINAL_DEFAULTS = dict(
    model_dim=512, latent_dim=128, diffusion_steps=2000, noise_schedule="sqrt",
    rescaling_factor=1.0, vp_rf=False, embed_norm=False, embed_norm_affine=False,
    embed_norm_before_proj=False, self_cond=False, self_cond_before_proj=False,
    rescale_timesteps=False, encoder_learned_pos=False, decoder_learned_pos=False,
    pred_length_offset=False, sg_length_pred=False, length_loss_factor=0.1,
    activation_fn="relu", apply_bert_init=False, share_all_embeddings=False,
    no_token_positional_embeddings=False, encoder_normalize_before=False,
    decoder_normalize_before=False,
)
ARCHITECTURES = ("difformer", "difformer_base", "difformer_iwslt_de_en")


def original_args(state, path):
    """The original checkpoint's args (fairseq 0.10 keeps a Namespace under ``args``)."""
    args = state.get("args")
    if isinstance(args, Namespace):
        return copy.deepcopy(args)
    cfg = state.get("cfg")
    if cfg is not None and isinstance(cfg.get("model"), Namespace):
        return copy.deepcopy(cfg["model"])
    raise DifformerError(f"{path} holds no training args (args or cfg.model): cannot tell its architecture")


def check_is_original(model_state, path):
    keys = list(model_state)
    if any(k.startswith("decoder.time_embed.") for k in keys):
        raise DifformerError(f"{path} is already in this plugin's layout: pass it to --path as it is")
    if not any(k.startswith("decoder.embed_time.") for k in keys):
        raise DifformerError(
            f"{path} is not a checkpoint of the original Difformer code (it has no decoder.embed_time "
            f"time embedding): only Difformer models convert"
        )


def convert_args(args, path):
    """Original args → this plugin's: task, criterion and explicit Difformer options."""
    if getattr(args, "arch", None) not in ARCHITECTURES:
        raise DifformerError(
            f"{path}: architecture {getattr(args, 'arch', None)!r} is not one of the original's "
            f"Difformer architectures ({', '.join(ARCHITECTURES)})"
        )
    if getattr(args, "no_scale_embedding", False):
        raise DifformerError(
            f"{path} was trained with --no-scale-embedding, which this plugin does not implement "
            f"(z0 = √d_latent · E[w] always)"
        )
    for name, default in ORIGINAL_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, default)
    args.task = "difformer"
    if getattr(args, "criterion", "nat_loss") == "nat_loss":
        args.criterion = "difformer"
    # The original keeps the rounding-loss ablation among the model args; here it is the criterion's.
    args.rounding_loss = bool(getattr(args, "rounding_loss", False))
    return args


def convert_state_dict(model_state, args):
    """Rename the original's parameters; unknown names stop the conversion, naming them."""
    norm_target = "decoder.z0_norm." if args.embed_norm_before_proj else "decoder.embed_norm."
    converted, unknown = {}, []
    for key, value in model_state.items():
        if key.startswith("decoder.embed_norm."):
            converted[norm_target + key[len("decoder.embed_norm."):]] = value
            continue
        for old, new in RENAMED.items():
            if key.startswith(old):
                converted[new + key[len(old):]] = value
                break
        else:
            if key.startswith(UNCHANGED):
                converted[key] = value
            else:
                unknown.append(key)
    if unknown:
        raise DifformerError(
            f"cannot map {len(unknown)} parameter(s) of the original checkpoint: {', '.join(unknown[:8])}"
        )
    # Identity projections (latent width = model width) hold no weights in the original.
    embed = model_state.get("encoder.embed_tokens.weight")
    for key in ("encoder.embed_tokens.project_in.weight", "decoder.latent_input.project_in.weight",
                "decoder.project_out_dim.weight"):
        if key not in converted and embed is not None and args.latent_dim == args.model_dim:
            converted[key] = embed.new_zeros(args.model_dim, args.model_dim).fill_diagonal_(1)
    return converted


def placeholder_dictionary(size):
    """A fairseq Dictionary of ``size`` types (fairseq's four specials first, as in the data-bin
    the model was trained on): building the model reads only its size and special indices."""
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for i in range(size - len(dictionary)):
        dictionary.add_symbol(f"<type{i}>")
    return dictionary


def check_loads(converted, args, path):
    """Build the model the args describe and load the converted weights into it strictly, so a
    partial or mismatched conversion fails here, naming the parameters, and not at decoding."""
    from fairseq_difformer.models.difformer import DifformerModel

    embed = converted.get("decoder.embed_tokens.weight")
    if embed is None:
        raise DifformerError(f"{path} has no decoder.embed_tokens.weight: not a complete model")
    src_embed = converted.get("encoder.embed_tokens.embed_tokens.weight", embed)
    tgt_dict = placeholder_dictionary(embed.size(0))
    src_dict = tgt_dict if args.share_all_embeddings else placeholder_dictionary(src_embed.size(0))
    task = Namespace(source_dictionary=src_dict, target_dictionary=tgt_dict, cfg=Namespace(data=path))
    model = DifformerModel.build_model(copy.deepcopy(args), task)
    model.upgrade_state_dict(converted)
    result = model.load_state_dict(converted, strict=False)
    problems = [f"missing {k}" for k in result.missing_keys] + [f"unexpected {k}" for k in result.unexpected_keys]
    if problems:
        raise DifformerError(f"{path} does not convert to a complete model: {', '.join(problems[:8])}")
    return model


def convert(path):
    """The converted checkpoint state for the original checkpoint at ``path``."""
    state = load_checkpoint(path)
    check_is_original(state["model"], path)
    args = convert_args(original_args(state, path), path)
    model_state = convert_state_dict(state["model"], args)
    model = check_loads(model_state, args, path)
    history = state.get("optimizer_history") or [{}]
    return {
        "args": args,
        "cfg": None,
        "model": model.state_dict(),
        # The optimizer state is dropped: resume with --reset-optimizer.
        "optimizer_history": [{
            "criterion_name": "DifformerCriterion",
            "optimizer_name": history[-1].get("optimizer_name", "FairseqAdam"),
            "lr_scheduler_state": history[-1].get("lr_scheduler_state", {"best": None}),
            "num_updates": history[-1].get("num_updates", 0),
        }],
        "extra_state": state.get("extra_state") or {"train_iterator": None},
    }


def build_parser():
    parser = argparse.ArgumentParser(
        prog="difformer-convert-checkpoint",
        description="Convert a checkpoint of the original Difformer code (zhjgao/difformer, fairseq "
                    "0.10) into one this plugin loads: fairseq-generate --user-dir $(difformer-user-dir) "
                    "--task difformer --path CONVERTED.pt",
    )
    parser.add_argument("original", help="checkpoint written by the original code (e.g. difformer.pt)")
    parser.add_argument("output", help="where to write the converted checkpoint")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    output = Path(args.output)
    if not output.parent.is_dir():
        parser.error(f"output {output}: folder {output.parent} does not exist")
    try:
        state = convert(args.original)
    except DifformerError as exc:
        parser.error(str(exc))
    model_args = state["args"]
    try:
        save_atomic(state, output)
    except OSError as exc:
        parser.error(f"cannot write {output}: {exc.strerror or exc}")
    print(f"wrote {output}: --arch {model_args.arch}, d_model {model_args.model_dim}, "
          f"latent {model_args.latent_dim}, F {model_args.rescaling_factor}")
    if getattr(model_args, "vp_rf", False):
        print("note: trained with --vp-rf, which also scaled the noise by F in the original code; "
              "decoding is unaffected, further training here uses unit noise (see README)")
    if getattr(model_args, "share_project_in_dim", False):
        print("note: the projection the original shared between encoder and decoder is now two "
              "equal copies (decoding is unchanged; further training unties them)")


if __name__ == "__main__":
    main()
