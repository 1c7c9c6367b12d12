"""``--init-from-ar AR.pt``: start a Difformer from a trained fairseq AR Transformer.

What has a counterpart is copied; the rest keeps the Difformer's own initialisation.

    encoder.layers.*, decoder.layers.*        self-attention, cross-attention, FFN, their norms:
    encoder/decoder.layer_norm (pre-norm)     copied as they are (same names, same shapes)
    encoder/decoder.embed_positions           the AR's table: its learned one, or its sinusoidal
                                              one (SinusoidalPositionalEmbedding.get_embedding,
                                              same padding offset) written into the learned table
    the latent table E and its projections    from the AR's embedding tables, as below
    kept: time embedding, self-conditioning MLP, embedding LayerNorm, length predictor

The embedding tables. The AR's output table O (|V| × d, ``decoder.output_projection``; its one
table under --share-all-embeddings) is factorised to the latent width k by a truncated SVD,
O ≈ U_k S_k V_kᵀ, and

    E     = α U_k S_k        α sets RMS(E) = k^(-1/2), the scale of a fresh Difformer table
    P_out = V_kᵀ / α         so that ẑ0 · Eᵀ = h V_k S_k U_kᵀ ≈ h Oᵀ: the AR's logits

The input projections P (encoder P_src, decoder latent input P_in, both bias-free k → d) solve
the least-squares problem  min_P Σ_w ‖P (√k E[w]) − s · A[w]‖²  over the dictionary, where A is
the AR's input table of that side and s its embedding scale (√d): with a shared table that is
P = s V_k / (√k α), so the encoder starts from the AR encoder's own input, to rank k. At
k = d (``--latent-dim`` equal to the model width) the factorisation is exact. A Difformer with
separate source and target tables (no --share-all-embeddings) factorises the AR's source table
for its own the same way.
"""

import logging
import math
import os
from collections import Counter

import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary, data_utils
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.models.nat import FairseqNATModel
from fairseq.models.transformer import TransformerModel
from fairseq.modules import SinusoidalPositionalEmbedding

from difformer_core.checkpoints import checkpoint_problem
from difformer_core.errors import DifformerError

logger = logging.getLogger(__name__)

#: the options that must agree between the AR model and the Difformer (AR name, Difformer name)
MATCHING_OPTIONS = (
    ("encoder_embed_dim", "model_dim"), ("decoder_embed_dim", "model_dim"),
    ("encoder_ffn_embed_dim", "encoder_ffn_embed_dim"), ("decoder_ffn_embed_dim", "decoder_ffn_embed_dim"),
    ("encoder_attention_heads", "encoder_attention_heads"), ("decoder_attention_heads", "decoder_attention_heads"),
    ("encoder_layers", "encoder_layers"), ("decoder_layers", "decoder_layers"),
    ("encoder_normalize_before", "encoder_normalize_before"), ("decoder_normalize_before", "decoder_normalize_before"),
    ("activation_fn", "activation_fn"),
)


def resumes_from_checkpoint(args) -> bool:
    """Whether fairseq-train will load a checkpoint, by the rule of fairseq's
    ``checkpoint_utils.load_checkpoint``: --restore-file (default ``SAVE_DIR/checkpoint_last.pt``)
    exists, or --continue-once names one for a first launch."""
    restore = getattr(args, "restore_file", "checkpoint_last.pt") or "checkpoint_last.pt"
    suffix = getattr(args, "checkpoint_suffix", "") or ""
    if restore != "checkpoint_last.pt":
        return os.path.exists(restore.replace(".pt", suffix + ".pt"))
    if os.path.exists(os.path.join(getattr(args, "save_dir", "checkpoints"), f"checkpoint_last{suffix}.pt")):
        return True
    return getattr(args, "continue_once", None) is not None  # fairseq then loads that checkpoint


def maybe_init_from_ar(model, args, src_dict, tgt_dict, data="", langs=(None, None)):
    """Apply --init-from-ar to a freshly built ``model`` when the run starts fresh; a resumed run
    keeps what it loads (as fairseq's --finetune-from-model)."""
    path = getattr(args, "init_from_ar", None)
    if not path:
        return
    if getattr(args, "finetune_from_model", None):
        raise DifformerError("--init-from-ar and --finetune-from-model both set the starting weights: give one")
    if resumes_from_checkpoint(args):
        logger.info(f"--init-from-ar {path}: not applied, the run resumes from its own checkpoint")
        return
    args.init_from_ar = os.path.abspath(path)
    state, ar_args = load_ar_checkpoint(path)
    check_dictionaries(path, state["cfg"]["task"], src_dict, tgt_dict, data, langs, state["model"])
    check_architecture(path, ar_args, args)
    summary = init_from_ar(model, state["model"], ar_args)
    logger.info(f"--init-from-ar {path}: " + summary)


def load_ar_checkpoint(path):
    """The AR checkpoint's state and its model args; one-line errors for a missing, unreadable
    or non-Transformer file."""
    if not os.path.isfile(path):
        raise DifformerError(f"--init-from-ar {path}: file not found (give an AR fairseq-train checkpoint)")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise DifformerError(f"--init-from-ar {path} does not load: {problem}")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as exc:  # loads as a torch file, but not as a fairseq checkpoint
        raise DifformerError(
            f"--init-from-ar {path}: cannot read it as a fairseq checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else 'no detail'})"
        ) from None
    cfg = state.get("cfg") if isinstance(state, dict) else None
    model_args = cfg.get("model") if cfg is not None else None
    arch = getattr(model_args, "arch", None) or (model_args.get("_name") if hasattr(model_args, "get") else None)
    model_class = ARCH_MODEL_REGISTRY.get(arch)
    weights = state.get("model", {}) if isinstance(state, dict) else {}
    is_translation = any(k.startswith("decoder.layers.0.encoder_attn.") for k in weights)
    if (model_class is None or not issubclass(model_class, TransformerModel)
            or issubclass(model_class, FairseqNATModel) or not is_translation):
        raise DifformerError(
            f"--init-from-ar {path}: not an AR Transformer translation checkpoint (it holds "
            f"{arch or 'no model configuration'}): give a checkpoint of fairseq-train --task translation "
            f"--arch transformer*"
        )
    return state, model_args


def ar_dictionary_paths(ar_task, fallback_langs):
    """The AR model's data-bin and its source and target dictionaries (dict.LANG.txt there),
    the languages as its task recorded or inferred them (fairseq's rule), else ours."""
    data = str(getattr(ar_task, "data", "") or "").split(os.pathsep)[0]
    langs = (getattr(ar_task, "source_lang", None), getattr(ar_task, "target_lang", None))
    if None in langs and os.path.isdir(data):
        langs = data_utils.infer_language_pair(data)
    if None in langs:
        langs = fallback_langs
    return data, [os.path.join(data, f"dict.{lang}.txt") if lang else None for lang in langs]


def check_dictionaries(path, ar_task, src_dict, tgt_dict, data, langs, weights):
    """The AR model's dictionaries must be the data-bin's, symbol for symbol. They are read from
    the data-bin the AR model was trained on (its task's recorded data); where that is gone, the
    table sizes are compared and a warning says the words could not be."""
    sizes = {"source": weights["encoder.embed_tokens.weight"].size(0),
             "target": weights["decoder.embed_tokens.weight"].size(0)}
    ar_data, ar_paths = ar_dictionary_paths(ar_task, langs)
    for side, ours, ar_path in zip(("source", "target"), (src_dict, tgt_dict), ar_paths):
        if sizes[side] != len(ours):
            raise DifformerError(
                f"--init-from-ar {path}: its {side} dictionary has {sizes[side]} types, the data-bin "
                f"{data} has {len(ours)}: train the Difformer on the AR model's data-bin (same dict.*.txt)"
            )
        if ar_path is None or not os.path.isfile(ar_path):
            logger.warning(
                f"--init-from-ar {path}: its data-bin ({ar_data or 'not recorded'}) is not here, so only the "
                f"{side} dictionary's size ({sizes[side]}) could be compared, not its words"
            )
            continue
        theirs = Dictionary.load(ar_path)
        if theirs.symbols != ours.symbols:
            first = next(i for i, (a, b) in enumerate(zip(theirs.symbols, ours.symbols)) if a != b)
            raise DifformerError(
                f"--init-from-ar {path}: its {side} dictionary {ar_path} differs from the data-bin {data}'s "
                f"(entry {first}: {theirs.symbols[first]!r} against {ours.symbols[first]!r}): train on the "
                f"AR model's data-bin, or binarise with fairseq-preprocess --srcdict {ar_path}"
            )


def check_architecture(path, ar_args, args):
    """Widths, heads, layer counts, norm placement and activation must agree: layers are copied
    one to one, so a difference is an error naming every option that differs."""
    differences = []
    for ar_name, name in MATCHING_OPTIONS:
        theirs, ours = getattr(ar_args, ar_name, None), getattr(args, name, None)
        if theirs is not None and theirs != ours:
            differences.append(f"{ar_name.replace('_', '-')} {theirs} (this Difformer: {ours})")
    if getattr(ar_args, "layernorm_embedding", False):
        differences.append("layernorm-embedding (the Difformer has its own embedding LayerNorm)")
    if differences:
        raise DifformerError(
            f"--init-from-ar {path}: the AR model differs in {', '.join(differences)}; layers are "
            f"copied one to one: give the Difformer the AR model's sizes (e.g. --encoder-layers, "
            f"--model-dim) or an AR model of this one's"
        )


def factorise_table(table: torch.Tensor, rank: int):
    """O ≈ U_k S_k V_kᵀ (rank k = ``rank``) → (E = α U_k S_k, V_k, α, relative error).

    α makes RMS(E) = k^(-1/2); relative error = ‖O − U_k S_k V_kᵀ‖_F / ‖O‖_F."""
    o = table.double()
    u, s, vh = torch.linalg.svd(o, full_matrices=False)
    k = min(rank, s.numel())
    us = u[:, :k] * s[:k]
    alpha = (1.0 / math.sqrt(rank)) / us.pow(2).mean().sqrt().item()
    latent = torch.zeros(o.size(0), rank, dtype=torch.float64)
    latent[:, :k] = alpha * us
    v = torch.zeros(o.size(1), rank, dtype=torch.float64)
    v[:, :k] = vh[:k].t()
    error = (s[k:].pow(2).sum() / s.pow(2).sum()).sqrt().item()
    return latent, v, alpha, error


def fit_input_projection(latent: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """P (d × k) minimising Σ_w ‖P (√k E[w]) − inputs[w]‖² (least squares over the table's rows)."""
    scaled = math.sqrt(latent.size(1)) * latent.double()
    return torch.linalg.lstsq(scaled, inputs.double()).solution.t()


def ar_positions(weights, side, table: torch.Tensor, padding_idx: int):
    """The AR model's position table for ``side`` at the shape of the Difformer's learned
    ``table``: its learned table (``embed_positions.weight``), else its sinusoidal one."""
    learned = weights.get(f"{side}.embed_positions.weight")
    if learned is not None:
        if learned.shape != table.shape:
            raise DifformerError(
                f"--init-from-ar: the AR {side}'s learned positions are {tuple(learned.shape)}, the "
                f"Difformer's {tuple(table.shape)}: train with the AR model's --max-{side.replace('encoder', 'source').replace('decoder', 'target')}-positions"
            )
        return learned, "learned"
    return SinusoidalPositionalEmbedding.get_embedding(table.size(0), table.size(1), padding_idx), "sinusoidal"


@torch.no_grad()
def init_from_ar(model, weights, ar_args) -> str:
    """Write the AR state dict ``weights`` into ``model`` (see the module docstring); returns the
    one-line summary of what was copied and what kept its initialisation."""
    own = model.state_dict()
    new = {}
    copied = Counter()
    # Layers and final norms, by name.
    for name in own:
        if name.startswith(("encoder.layers.", "decoder.layers.")) or name.startswith(
                ("encoder.layer_norm.", "decoder.layer_norm.")):
            if name not in weights or weights[name].shape != own[name].shape:
                raise DifformerError(
                    f"--init-from-ar: the AR checkpoint has no {name} of shape {tuple(own[name].shape)} "
                    f"({'missing' if name not in weights else tuple(weights[name].shape)})"
                )
            new[name] = weights[name]
            copied[name.split(".")[0] + " layers"] += 1
    # Positions.
    kinds = set()
    for side in ("encoder", "decoder"):
        name = f"{side}.embed_positions.weight"
        if name in own:
            module = getattr(model, side).embed_positions
            new[name], kind = ar_positions(weights, side, own[name], module.padding_idx)
            kinds.add(kind)
            copied["positions"] += 1
    # Embeddings.
    decoder = model.decoder
    k = decoder.embed_tokens.embedding_dim
    scale = 1.0 if getattr(ar_args, "no_scale_embedding", False) else math.sqrt(ar_args.decoder_embed_dim)
    output = weights.get("decoder.output_projection.weight", weights["decoder.embed_tokens.weight"])
    latent, v, alpha, error = factorise_table(output, k)
    new["decoder.embed_tokens.weight"] = latent
    new["decoder.project_out_dim.weight"] = v.t() / alpha
    new["decoder.latent_input.project_in.weight"] = fit_input_projection(
        latent, scale * weights["decoder.embed_tokens.weight"].double())
    encoder_table = model.encoder.embed_tokens.embed_tokens
    source_inputs = scale * weights["encoder.embed_tokens.weight"].double()
    if encoder_table is decoder.embed_tokens:
        source_latent = latent
    else:
        source_latent, _, _, _ = factorise_table(weights["encoder.embed_tokens.weight"], k)
        new["encoder.embed_tokens.embed_tokens.weight"] = source_latent
    new["encoder.embed_tokens.project_in.weight"] = fit_input_projection(source_latent, source_inputs)

    for name, value in new.items():
        own[name].copy_(value.to(own[name].dtype))
    aliases = _aliases(model, new)
    kept = Counter(_part(name) for name in own if name not in aliases and not name.endswith(".version"))
    energy = 100 * (1 - error ** 2)
    return (f"copied {copied['encoder layers']} encoder-layer and {copied['decoder layers']} decoder-layer "
            f"tensors, {copied['positions']} position tables ({'/'.join(sorted(kinds))}), the embedding "
            f"table as a rank-{k} SVD (keeps {energy:.1f} % of its energy, relative error {error:.3f}) with "
            f"its input and output projections; kept their own initialisation: "
            + ", ".join(f"{part} ({n})" for part, n in sorted(kept.items())))


#: the parts without an AR counterpart, by state-dict prefix, as the summary names them
NEW_PARTS = {"decoder.time_embed.": "time embedding", "decoder.latent_input.self_cond_proj.": "self-conditioning",
             "decoder.embed_norm.": "embedding LayerNorm", "decoder.z0_norm.": "embedding LayerNorm",
             "decoder.embed_length.": "length predictor"}


def _part(name):
    return next((part for prefix, part in NEW_PARTS.items() if name.startswith(prefix)), name)


def _aliases(model, written):
    """State-dict names that share a tensor with one written (the tied output projection and the
    encoder's view of a shared table)."""
    by_storage = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        by_storage.setdefault(tensor.data_ptr(), []).append(name)
    aliases = set()
    for names in by_storage.values():
        if any(n in written for n in names):
            aliases.update(names)
    return aliases
