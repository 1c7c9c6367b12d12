"""difformer-convert-checkpoint: a state dict with the original code's names and shapes (built
here as its difformer/difformer.py and modules.py build them) converts into one this plugin
loads, and the converted model computes what the original's forward pass computes."""

import copy
import math
from argparse import Namespace

import pytest
import torch
import torch.nn.functional as F
from conftest import USER_DIR, run_cli
from fairseq.data import Dictionary
from fairseq.models.transformer import base_architecture
from fairseq.modules import TransformerDecoderLayer, TransformerEncoderLayer

import fairseq_difformer  # noqa: F401
from difformer_cli.convert_checkpoint import convert
from difformer_core.errors import DifformerError
from fairseq_difformer.models.difformer_layers import timestep_embedding

D, K, PAD, MAX_POS = 32, 8, 1, 128


def original_args(vocab, **overrides):
    """The args the original code saves (its recipe flags on a tiny model)."""
    args = Namespace(
        arch="difformer", task="difformer", criterion="nat_loss", label_smoothing=0.1,
        model_dim=D, latent_dim=K, encoder_embed_dim=D, decoder_embed_dim=D,
        encoder_ffn_embed_dim=64, decoder_ffn_embed_dim=64, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_layers=1, decoder_layers=2, share_all_embeddings=True,
        diffusion_steps=100, noise_schedule="sqrt", rescaling_factor=4.0, vp_rf=False,
        embed_norm=True, embed_norm_affine=True, embed_norm_before_proj=False, self_cond=True,
        self_cond_before_proj=False, rescale_timesteps=True, encoder_learned_pos=True,
        decoder_learned_pos=True, pred_length_offset=True, length_loss_factor=0.1, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, activation_fn="relu",
        max_source_positions=MAX_POS, max_target_positions=MAX_POS, apply_bert_init=True,
        decoding_steps=20, decoding_fixed_t=None, rounding_loss=False,
    )
    vars(args).update(overrides)
    base_architecture(args)  # fairseq's Transformer defaults, as the original's build_model applies
    args.vocab = vocab
    return args


def layer_states(layer_cls, args, prefix, count):
    state = {}
    for i in range(count):
        for name, value in layer_cls(args).state_dict().items():
            state[f"{prefix}.{i}.{name}"] = torch.randn_like(value) * 0.1 if value.is_floating_point() else value
    return state


def original_state_dict(args):
    """Parameter names and shapes of the original Difformer model (difformer.py, modules.py)."""
    torch.manual_seed(0)
    r = lambda *shape: torch.randn(*shape) * 0.2  # noqa: E731
    k, d, vocab = args.latent_dim, args.model_dim, args.vocab
    embed = r(vocab, k)
    state = {
        "encoder.embed_tokens.weight": embed,
        "encoder.project_in_dim.weight": r(d, k),
        "encoder.embed_positions.weight": r(MAX_POS + PAD + 1, d),
        "decoder.embed_tokens.weight": embed,
        "decoder.output_projection.weight": embed,
        "decoder.embed_positions.weight": r(MAX_POS + PAD + 1, d),
        "decoder.embed_length.weight": r(256, d),
        "decoder.project_in_dim.weight": r(d, k),
        "decoder.project_out_dim.weight": r(k, d),
        "decoder.embed_time.0.weight": r(4 * d, d), "decoder.embed_time.0.bias": r(4 * d),
        "decoder.embed_time.2.weight": r(d, 4 * d), "decoder.embed_time.2.bias": r(d),
        "encoder.version": torch.tensor([3.0]), "decoder.version": torch.tensor([3.0]),
    }
    sc = k if args.self_cond_before_proj else d
    if args.self_cond:
        state.update({
            "decoder.self_cond_proj.0.weight": r(sc, 2 * sc), "decoder.self_cond_proj.0.bias": r(sc),
            "decoder.self_cond_proj.2.weight": r(sc, sc), "decoder.self_cond_proj.2.bias": r(sc),
        })
    if args.embed_norm:
        norm = k if args.embed_norm_before_proj else d
        state["decoder.embed_norm.weight"] = 1 + r(norm)
        state["decoder.embed_norm.bias"] = r(norm)
    state.update(layer_states(TransformerEncoderLayer, args, "encoder.layers", args.encoder_layers))
    state.update(layer_states(TransformerDecoderLayer, args, "decoder.layers", args.decoder_layers))
    return state


def run_layers(layer_cls, args, state, prefix, count, x, **kwargs):
    for i in range(count):
        layer = layer_cls(args).eval()
        layer.load_state_dict({n[len(f"{prefix}.{i}."):]: v for n, v in state.items()
                               if n.startswith(f"{prefix}.{i}.")})
        x = layer(x, **kwargs)
        x = x[0] if isinstance(x, tuple) else x
    return x


def original_forward(args, state, src, z_t, t, z0_prev, tgt_len):
    """The original code's encoder and denoiser, written from its modules.py with plain tensors."""
    k = args.latent_dim
    src_pos = (src.ne(PAD).cumsum(1) * src.ne(PAD) + PAD)
    x = math.sqrt(k) * state["encoder.embed_tokens.weight"][src] @ state["encoder.project_in_dim.weight"].T
    x = x + state["encoder.embed_positions.weight"][src_pos]
    enc_mask = src.eq(PAD)
    enc = run_layers(TransformerEncoderLayer, args, state, "encoder.layers", args.encoder_layers,
                     x.transpose(0, 1), encoder_padding_mask=enc_mask)

    w_in = state["decoder.project_in_dim.weight"]
    lin = lambda x, name: x @ state[f"{name}.weight"].T + state[f"{name}.bias"]  # noqa: E731
    if args.self_cond_before_proj:
        cat = torch.cat([z_t, z0_prev], -1)
        h = lin(F.relu(lin(cat, "decoder.self_cond_proj.0")), "decoder.self_cond_proj.2") @ w_in.T
    else:
        cat = torch.cat([z_t @ w_in.T, z0_prev @ w_in.T], -1)
        h = lin(F.relu(lin(cat, "decoder.self_cond_proj.0")), "decoder.self_cond_proj.2")
    scale = 1000.0 / args.diffusion_steps if args.rescale_timesteps else 1.0
    time = timestep_embedding(t * scale, args.model_dim)
    h = h + lin(F.relu(lin(time, "decoder.embed_time.0")), "decoder.embed_time.2")[:, None]
    positions = torch.arange(tgt_len) + PAD + 1
    h = h + state["decoder.embed_positions.weight"][positions][None]
    h = F.layer_norm(h, (args.model_dim,), state["decoder.embed_norm.weight"], state["decoder.embed_norm.bias"])
    out = run_layers(TransformerDecoderLayer, args, state, "decoder.layers", args.decoder_layers,
                     h.transpose(0, 1), encoder_out=enc, encoder_padding_mask=enc_mask)
    return enc, out.transpose(0, 1) @ state["decoder.project_out_dim.weight"].T


def write_original(tmp_path, args, state=None):
    path = tmp_path / "original.pt"
    state = original_state_dict(args) if state is None else state
    history = [{"criterion_name": "LabelSmoothedDualImitationCriterion", "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": 30.1}, "num_updates": 7}]
    torch.save({"args": args, "model": state, "optimizer_history": history,
                "extra_state": {"train_iterator": None}, "last_optimizer_state": {}}, path)
    return path


@pytest.mark.parametrize("self_cond_before_proj", [False, True])
def test_converted_model_computes_the_original_forward(tmp_path, self_cond_before_proj):
    args = original_args(vocab=30, self_cond_before_proj=self_cond_before_proj)
    state = original_state_dict(args)
    converted = convert(write_original(tmp_path, args, state))
    assert converted["args"].criterion == "difformer" and converted["args"].task == "difformer"
    assert converted["optimizer_history"][-1]["num_updates"] == 7

    from fairseq_difformer.models.difformer import DifformerModel
    from difformer_cli.convert_checkpoint import placeholder_dictionary
    dictionary = placeholder_dictionary(30)
    model_args = copy.deepcopy(converted["args"])
    task = Namespace(source_dictionary=dictionary, target_dictionary=dictionary, cfg=Namespace(data=""))
    model = DifformerModel.build_model(model_args, task).eval()
    model.load_state_dict(converted["model"])

    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 11, 12, 2]])
    torch.manual_seed(1)
    z_t, z0_prev = torch.randn(2, 4, K), torch.randn(2, 4, K)
    t = torch.tensor([10, 70])
    enc_ref, z0_hat_ref = original_forward(args, state, src, z_t, t, z0_prev, 4)
    with torch.no_grad():
        encoder_out = model.encoder(src, src_lengths=torch.tensor([5, 5]))
        z0_hat = model.decoder(z_t, t, z0_prev, encoder_out, torch.zeros(2, 4, dtype=torch.bool))
    torch.testing.assert_close(encoder_out["encoder_out"][0], enc_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(z0_hat, z0_hat_ref, atol=1e-5, rtol=1e-4)
    # Output layer and length predictor are the original's tensors.
    torch.testing.assert_close(model.decoder.output_layer(z0_hat), z0_hat @ state["decoder.embed_tokens.weight"].T)
    assert model.decoder.pred_length_offset and model.args.rescaling_factor == 4.0


def test_identity_projections_and_defaults_of_the_original(tmp_path):
    """Latent width = model width: the original's projections are nn.Identity (no weights); the
    original's own defaults (e.g. no embedding LayerNorm, sinusoidal positions) are kept."""
    args = original_args(vocab=30, latent_dim=D, embed_norm=False, self_cond=False)
    del args.embed_norm_affine, args.rescale_timesteps
    state = original_state_dict(args)
    for key in ("encoder.project_in_dim.weight", "decoder.project_in_dim.weight", "decoder.project_out_dim.weight"):
        del state[key]
    converted = convert(write_original(tmp_path, args, state))
    for key in ("decoder.latent_input.project_in.weight", "decoder.project_out_dim.weight"):
        torch.testing.assert_close(converted["model"][key], torch.eye(D))
    assert converted["args"].rescale_timesteps is False and converted["args"].embed_norm is False


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({"decoder.mystery.weight": torch.zeros(1)}), "cannot map 1 parameter.*decoder.mystery.weight"),
    (lambda s: s.pop("decoder.embed_time.2.bias"), "missing decoder.time_embed.ffn.2.bias"),
    (lambda s: s.update({"decoder.time_embed.ffn.0.weight": torch.zeros(1)}), "already in this plugin's layout"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("decoder.embed_time")], "not a checkpoint of the original"),
])
def test_bad_checkpoints_are_named(tmp_path, edit, message):
    args = original_args(vocab=30)
    state = original_state_dict(args)
    edit(state)
    with pytest.raises(DifformerError, match=message):
        convert(write_original(tmp_path, args, state))


def test_cli_converts_and_fairseq_generate_decodes_it(databin, tmp_path):
    """The converted checkpoint decodes with the real fairseq-generate on a data-bin of its size;
    the unconverted one is refused with the command to run."""
    vocab = len(Dictionary.load(str(databin / "dict.en.txt")))
    original = write_original(tmp_path, original_args(vocab=vocab))
    converted = tmp_path / "converted.pt"
    out = run_cli("difformer-convert-checkpoint", original, converted).stdout
    assert "wrote" in out and converted.exists()
    common = ["--user-dir", USER_DIR, "--task", "difformer", "--gen-subset", "test", "--cpu",
              "--batch-size", "16", "--decoding-steps", "4"]
    gen = run_cli("fairseq-generate", databin, "--path", converted, *common).stdout
    assert gen.count("\nH-") == 40
    refused = run_cli("fairseq-generate", databin, "--path", original, *common, check=False)
    assert refused.returncode != 0 and "difformer-convert-checkpoint" in refused.stderr
    assert "Traceback" not in refused.stderr
