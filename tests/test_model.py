"""Units of the model, criterion, generator and task: shapes, masks, ablation switches, beams."""

import argparse
import math
import pickle

import pytest
import torch
from fairseq import metrics
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.data import Dictionary
from torch import nn

import fairseq_difformer  # noqa: F401
from fairseq_difformer.criterions.difformer_loss import DifformerCriterion
from difformer_core.errors import DifformerError
from fairseq_difformer.generator import DecodingConfig, DifformerGenerator
from fairseq_difformer.models.difformer import DifformerModel
from fairseq_difformer.models.difformer_layers import (
    LatentInput, SelfCondAfterProjection, SelfCondBeforeProjection,
)
from fairseq_difformer.tasks.difformer_task import DifformerConfig, DifformerTask


def make_dictionary(n=30):
    d = Dictionary()
    for i in range(n):
        d.add_symbol(f"w{i}")
    return d


DICT = make_dictionary()


def make_task(eval_bleu=False):
    return DifformerTask(DifformerConfig(data="tiny", eval_bleu=eval_bleu), DICT, DICT)


def build(**overrides):
    args = argparse.Namespace(
        model_dim=32, latent_dim=8, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
        encoder_layers=1, decoder_layers=2, share_all_embeddings=True, dropout=0.0,
        diffusion_steps=100, max_target_positions=40,
    )
    vars(args).update(overrides)
    torch.manual_seed(0)
    return DifformerModel.build_model(args, make_task()).eval()


def batch():
    pad, eos = DICT.pad(), DICT.eos()
    src = torch.tensor([[5, 6, 7, 8, eos], [pad, pad, 9, 10, eos]])     # left-padded, as fairseq
    tgt = torch.tensor([[11, 12, 13, eos], [14, eos, pad, pad]])        # right-padded
    return src, torch.tensor([5, 3]), tgt


def forward(model, tgt=None, t=None, noise=None):
    src, src_lengths, default_tgt = batch()
    tgt = default_tgt if tgt is None else tgt
    t = torch.tensor([10, 70]) if t is None else t
    noise = torch.randn(*tgt.shape, model.args.latent_dim) if noise is None else noise
    return model(src, src_lengths, None, tgt, t=t, noise=noise)


def criterion(model, **kwargs):
    options = dict(label_smoothing=0.1, anchor_loss_weight=1.0, rounding_loss=False, no_anchor_loss=False)
    options.update(kwargs)
    return DifformerCriterion(make_task(), **options)


# ---------------------------------------------------------------- model

def test_shapes_and_logits_are_ẑ0_times_embedding_table():
    model = build()
    out = forward(model)
    assert out["z0"].shape == out["z0_hat"].shape == (2, 4, 8)
    assert out["length_out"].shape == (2, 256)
    assert out["length_tgt"].tolist() == [4, 2]
    logits = model.decoder.output_layer(out["z0_hat"])
    assert logits.shape == (2, 4, len(DICT))
    torch.testing.assert_close(logits, out["z0_hat"] @ model.decoder.embed_tokens.weight.T)
    torch.testing.assert_close(out["z0"][0, 0], math.sqrt(8) * model.decoder.embed_tokens.weight[11])
    # Shared embeddings: one table for source, target and output.
    assert model.encoder.embed_tokens.embed_tokens is model.decoder.embed_tokens
    # Bias-free projections between latent and model width.
    assert model.decoder.latent_input.project_in.bias is None
    assert model.decoder.project_out_dim.bias is None


def test_padding_never_leaks_into_the_prediction():
    model = build()
    src, src_lengths, tgt = batch()
    encoder_out = model.encoder(src, src_lengths=src_lengths)
    padding_mask = tgt.eq(DICT.pad())
    z_t = torch.randn(2, 4, 8)
    t = torch.tensor([3, 50])
    z0_hat = model.decoder(z_t, t, torch.zeros_like(z_t), encoder_out, padding_mask)
    garbage = z_t.masked_fill(padding_mask[..., None], 1e3)
    z0_hat_garbage = model.decoder(garbage, t, torch.zeros_like(z_t), encoder_out, padding_mask)
    torch.testing.assert_close(z0_hat[~padding_mask], z0_hat_garbage[~padding_mask])


def test_cross_attention_cache_reuses_the_source_keys_and_values_and_changes_nothing():
    model = build()
    src, src_lengths, tgt = batch()
    encoder_out = model.encoder(src, src_lengths=src_lengths)
    padding_mask = tgt.eq(DICT.pad())
    source_projections = []
    for layer in model.decoder.layers:
        layer.encoder_attn.k_proj.register_forward_hook(lambda *a: source_projections.append(1))
    cache = {}
    for step in range(3):
        z_t, z0_prev = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
        t = torch.tensor([90 - 10 * step, 50 - 10 * step])
        expected = model.decoder(z_t, t, z0_prev, encoder_out, padding_mask)
        before = len(source_projections)
        cached = model.decoder(z_t, t, z0_prev, encoder_out, padding_mask, cross_attention_cache=cache)
        torch.testing.assert_close(cached[~padding_mask], expected[~padding_mask])
        # The source is projected once per layer at the first step, never again.
        assert len(source_projections) - before == (len(model.decoder.layers) if step == 0 else 0)
    assert len(cache) == len(model.decoder.layers)


def test_padding_never_leaks_into_the_losses():
    model = build()
    crit = criterion(model)
    src, src_lengths, tgt = batch()
    noise = torch.randn(2, 4, 8)
    losses = crit.compute_losses(model, forward(model, tgt, noise=noise), tgt)
    # The same batch with an extra column of padding (and arbitrary noise under it).
    padded_tgt = torch.cat([tgt, torch.full((2, 3), DICT.pad())], dim=1)
    padded_noise = torch.cat([noise, 1e3 * torch.randn(2, 3, 8)], dim=1)
    padded = crit.compute_losses(model, forward(model, padded_tgt, noise=padded_noise), padded_tgt)
    for key in ("mse", "anchor", "nll", "length"):
        torch.testing.assert_close(losses[key], padded[key], msg=key)


def test_loss_combines_the_three_terms_and_logs_each():
    model = build()
    crit = criterion(model)
    src, src_lengths, tgt = batch()
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_lengths}, "target": tgt, "ntokens": 6}
    torch.manual_seed(3)
    loss, sample_size, log = crit(model, sample)
    torch.manual_seed(3)
    with torch.no_grad():
        out = model(src, src_lengths, None, tgt)
    terms = crit.compute_losses(model, out, tgt)
    torch.testing.assert_close(loss, terms["mse"] + terms["anchor"] + 0.1 * terms["length"])
    assert sample_size == 1
    # Every term is logged in the units it is optimised in (nats), the loss is their weighted sum.
    for key, term in (("mse", "mse"), ("anchor", "anchor"), ("length", "length"), ("nll_loss", "nll")):
        torch.testing.assert_close(log[key], terms[term].detach())
    torch.testing.assert_close(log["loss"], loss.detach())
    with metrics.aggregate() as agg:
        crit.reduce_metrics([log])
        assert agg.get_smoothed_values()["ppl"] == pytest.approx(math.exp(float(terms["nll"])), rel=1e-2)


def reference_ce(model, z, tgt, eps=0.1):
    keep = tgt.ne(DICT.pad())
    lprobs = torch.log_softmax(model.decoder.output_layer(z[keep]), -1)
    loss, _ = label_smoothed_nll_loss(lprobs, tgt[keep], eps, reduce=False)
    return loss.mean()


def test_anchor_loss_rounds_the_prediction_and_rounding_loss_the_clean_embedding():
    model = build()
    _, _, tgt = batch()
    out = forward(model)
    anchor = criterion(model).compute_losses(model, out, tgt)["anchor"]
    rounding = criterion(model, rounding_loss=True).compute_losses(model, out, tgt)["anchor"]
    torch.testing.assert_close(anchor, reference_ce(model, out["z0_hat"], tgt))
    torch.testing.assert_close(rounding, reference_ce(model, out["z0"], tgt))
    assert not torch.allclose(anchor, rounding)


def test_no_anchor_loss_drops_the_term():
    model = build()
    src, src_lengths, tgt = batch()
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_lengths}, "target": tgt, "ntokens": 6}
    crit = criterion(model, no_anchor_loss=True)
    torch.manual_seed(4)
    loss, _, log = crit(model, sample)
    assert math.isclose(loss.item(), float(log["mse"]) + 0.1 * float(log["length"]), rel_tol=1e-5)
    # The logged loss is the objective itself, every term in the same units.
    assert math.isclose(float(log["loss"]), loss.item(), rel_tol=1e-6)
    with pytest.raises(DifformerError):
        criterion(model, no_anchor_loss=True, rounding_loss=True)


def test_architecture_switches_build_what_they_name():
    default = build()
    assert isinstance(default.decoder.latent_input, SelfCondAfterProjection)
    assert isinstance(default.decoder.embed_norm, nn.LayerNorm) and default.decoder.embed_norm.weight is not None
    assert isinstance(default.decoder.z0_norm, nn.Identity)
    assert default.decoder.time_scale == 1000 / 100
    assert default.diffusion.noise_scale == 1.0

    assert isinstance(build(self_cond=False).decoder.latent_input, LatentInput)
    assert isinstance(build(self_cond_before_proj=True).decoder.latent_input, SelfCondBeforeProjection)
    no_norm = build(embed_norm=False).decoder
    assert isinstance(no_norm.embed_norm, nn.Identity) and isinstance(no_norm.z0_norm, nn.Identity)
    before = build(embed_norm_before_proj=True).decoder
    assert isinstance(before.embed_norm, nn.Identity) and before.z0_norm.normalized_shape == (8,)
    assert build(embed_norm_affine=False).decoder.embed_norm.weight is None
    assert build(rescale_timesteps=False).decoder.time_scale == 1.0

    scaled, vp = build(rescaling_factor=4.0), build(rescaling_factor=4.0, vp_rf=True)
    assert scaled.diffusion.noise_scale == 4.0 and vp.diffusion.noise_scale == 1.0
    assert torch.all(vp.diffusion.alphas_cumprod < scaled.diffusion.alphas_cumprod)
    assert build(noise_schedule="cosine").diffusion.alphas_cumprod[0] != default.diffusion.alphas_cumprod[0]
    assert len(build(diffusion_steps=50).diffusion.betas) == 50
    # fairseq's own width flag is honoured when --model-dim is not given.
    assert build(model_dim=None, encoder_embed_dim=48).decoder.embed_dim == 48


def test_length_offset_prediction_target():
    out = forward(build(pred_length_offset=True))
    assert out["length_tgt"].tolist() == [4 - 5 + 128, 2 - 3 + 128]


def test_self_conditioning_feeds_back_a_prediction_in_half_the_training_batches():
    model = build().train()
    calls = []
    original = model.decoder.forward

    def spy(z_t, t, z0_prev, *args):
        calls.append(float(z0_prev.abs().sum()))
        return original(z_t, t, z0_prev, *args)

    model.decoder.forward = spy
    torch.manual_seed(0)
    for _ in range(40):
        forward(model)
    with_prev = sum(1 for c in calls if c > 0)
    assert len(calls) == 40 + with_prev and 10 <= with_prev <= 30
    model.eval()
    calls.clear()
    forward(model)
    assert calls == [0.0]


def test_self_conditioning_probability_is_an_option():
    model = build(self_cond_prob=1.0).train()
    calls = []
    original = model.decoder.forward
    model.decoder.forward = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    for _ in range(5):
        forward(model)
    assert len(calls) == 10  # every batch self-conditioned: two denoiser passes each
    calls.clear()
    model = build(self_cond_prob=0.0).train()
    original = model.decoder.forward
    model.decoder.forward = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    for _ in range(5):
        forward(model)
    assert len(calls) == 5
    with pytest.raises(DifformerError, match="--self-cond-prob must be in"):
        build(self_cond_prob=1.5)


def test_training_timesteps_are_uniform_or_on_the_decoding_grid():
    # diffusion_steps = 100: a 5-step decoding visits 0, 25, 50, 74, 99 (round(k · 99 / 4)).
    grid = {0, 25, 50, 74, 99}
    torch.manual_seed(0)
    uniform = build().sample_timesteps(20000, torch.device("cpu"))
    assert int(uniform.min()) == 0 and int(uniform.max()) == 99
    assert abs(float(torch.isin(uniform, torch.tensor(sorted(grid))).float().mean()) - 0.05) < 0.01

    on_grid = build(spaced_timestep_prob=1.0).sample_timesteps(20000, torch.device("cpu"))
    assert set(on_grid.tolist()) == grid
    counts = torch.bincount(on_grid, minlength=100)[sorted(grid)].float() / 20000
    assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.015)

    # p = 1/2: P(t ∈ grid) = 1/2 + 1/2 · 5/100; 3 steps visit 0, 50 (rounded 49.5 → 50), 99.
    mixed = build(spaced_timestep_prob=0.5).sample_timesteps(20000, torch.device("cpu"))
    assert abs(float(torch.isin(mixed, torch.tensor(sorted(grid))).float().mean()) - 0.525) < 0.015
    three = build(spaced_timestep_prob=1.0, spaced_timestep_steps=3).sample_timesteps(300, torch.device("cpu"))
    assert set(three.tolist()) == {0, 50, 99}
    # The training forward draws its t from it when none is given.
    model = build(spaced_timestep_prob=1.0).train()
    seen, q_sample = [], model.diffusion.q_sample
    model.diffusion.q_sample = lambda z0, t, noise=None: seen.extend(t.tolist()) or q_sample(z0, t, noise)
    for _ in range(10):
        model(*batch()[:2], None, batch()[2])
    assert len(seen) == 20 and set(seen) <= grid

    with pytest.raises(DifformerError, match="--spaced-timestep-prob must be in"):
        build(spaced_timestep_prob=-0.1)
    with pytest.raises(DifformerError, match="--spaced-timestep-steps must be between 1 and --diffusion-steps"):
        build(spaced_timestep_steps=0)
    with pytest.raises(DifformerError, match="--spaced-timestep-steps must be between 1 and --diffusion-steps"):
        build(spaced_timestep_steps=101)


def test_bad_model_options_raise_clear_errors():
    with pytest.raises(DifformerError, match="--rescaling-factor must be ≥ 1"):
        build(rescaling_factor=0.5)
    separate = DifformerTask(DifformerConfig(data="bin"), make_dictionary(30), make_dictionary(31))
    args = argparse.Namespace(share_all_embeddings=True, model_dim=16, latent_dim=8)
    with pytest.raises(DifformerError, match="--joined-dictionary"):
        DifformerModel.build_model(args, separate)


# ---------------------------------------------------------------- generator

def generator(model, **config):
    return DifformerGenerator(model, DICT, DecodingConfig(**config))


def test_beams_give_length_times_noise_candidates_and_one_pick_per_input():
    model = build()
    src, src_lengths, _ = batch()
    gen = generator(model, steps=5, length_beam=3, noise_beam=2)
    predicted = model.decoder.forward_length_prediction(
        model.decoder.forward_length(normalize=True, encoder_out=model.encoder(src, src_lengths=src_lengths)),
        model.encoder(src, src_lengths=src_lengths),
    )
    torch.manual_seed(0)
    hypos = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_lengths}})
    assert len(hypos) == 2
    for b, candidates in enumerate(hypos):
        assert len(candidates) == 6
        lengths = sorted(len(h["tokens"]) for h in candidates)
        expected = sorted(max(1, int(predicted[b]) + o) for o in (-1, -1, 0, 0, 1, 1))
        assert lengths == expected
        scores = [float(h["selection_score"]) for h in candidates]
        assert scores == sorted(scores, reverse=True)
        for h in candidates:
            assert h["tokens"][-1] == DICT.eos() and DICT.pad() not in h["tokens"][:-1].tolist()
            torch.testing.assert_close(h["score"], h["positional_scores"].mean())


def test_initial_latents_are_the_prior_noise_with_each_candidates_padding():
    model = build()
    torch.manual_seed(0)
    z_T, padding_mask = model.initial_latents(torch.tensor([3, 1, 5]), 4.0)
    torch.manual_seed(0)
    assert torch.equal(z_T, 4.0 * torch.randn(3, 5, 8))
    assert padding_mask.tolist() == [[False] * 3 + [True] * 2, [False] + [True] * 4, [False] * 5]
    assert model.to(torch.bfloat16).initial_latents(torch.tensor([2]), 1.0)[0].dtype == torch.bfloat16


def test_candidate_lengths_are_clamped_to_the_target_positions():
    gen = generator(build(), length_beam=3)
    lengths = gen.candidate_lengths(torch.tensor([0, 1, 200]))
    assert lengths.tolist() == [1, 1, 1, 1, 1, 2, 40, 40, 40]


def test_early_stopping_skips_the_last_steps_and_history_keeps_each():
    model = build()
    src, src_lengths, _ = batch()
    calls = []
    original = model.decoder.forward
    model.decoder.forward = lambda *a, **kw: calls.append(int(a[1][0])) or original(*a, **kw)
    gen = generator(model, steps=20, early_stopping=5, retain_history=True)
    hypos = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_lengths}})
    assert len(calls) == 15 and calls[0] == 99 and calls == sorted(calls, reverse=True)
    assert hypos[0][0]["steps"] == 15 and len(hypos[0][0]["history"]) == 15


def test_decoding_timesteps_are_the_ones_the_decoder_is_fed():
    model = build()
    src, src_lengths, _ = batch()
    calls = []
    original = model.decoder.forward
    model.decoder.forward = lambda *a, **kw: calls.append(int(a[1][0])) or original(*a, **kw)
    gen = generator(model, steps=7, early_stopping=2)
    gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_lengths}})
    assert gen.decoding_timesteps() == calls == [99, 82, 66, 50, 33]  # round(k · 99 / 6), k = 6 … 2


def test_clamping_feeds_the_argmax_embedding_back():
    model = build()
    src, src_lengths, _ = batch()
    inputs = []
    original = model.decoder.forward

    def spy(z_t, t, z0_prev, *args, **kwargs):
        inputs.append(z0_prev)
        return original(z_t, t, z0_prev, *args, **kwargs)

    model.decoder.forward = spy
    generator(model, steps=3, clamping=True).generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_lengths}})
    fed_back = inputs[1][0, 0]
    distances = (math.sqrt(8) * model.decoder.embed_tokens.weight - fed_back).norm(dim=-1)
    assert float(distances.min()) < 1e-5


@pytest.mark.parametrize("config, message", [
    (dict(steps=0), "--decoding-steps must be between 1"),
    (dict(steps=101), "--decoding-steps must be between 1"),
    (dict(steps=10, early_stopping=10), "--decoding-early-stopping"),
    (dict(noise_beam=0), "--noise-beam-size must be ≥ 1"),
    (dict(rescaling_factor=0.9), "--decoding-rescaling-factor"),
    (dict(selection="reranker"), "--ppl-mbr"),
])
def test_bad_decoding_options_raise_clear_errors(config, message):
    with pytest.raises(DifformerError, match=message.replace("(", r"\(")):
        generator(build(), **config)


# ---------------------------------------------------------------- checkpoints

class Arbitrary:
    """A class fairseq never writes: torch must keep refusing it."""


def test_fairseq_checkpoints_load_with_weights_only_but_other_classes_do_not(difformer_checkpoint, tmp_path):
    state = torch.load(difformer_checkpoint)          # torch's default: weights_only=True
    assert state["args"] is not None or state["cfg"] is not None
    path = tmp_path / "other.pt"
    torch.save({"x": Arbitrary()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_generation_args_override_the_task_decoding_options():
    """--eval-bleu passes its --eval-bleu-args as the generation args."""
    task = make_task()
    gen = task.build_generator([build()], argparse.Namespace(decoding_steps=9, length_beam_size=2))
    assert gen.config.steps == 9 and gen.config.length_beam == 2 and gen.config.noise_beam == 1
    assert gen.config.early_stopping == 2  # a quarter of the steps given, by default
    defaults = task.build_generator([build()], argparse.Namespace()).config
    assert (defaults.steps, defaults.early_stopping, defaults.sampler) == (5, 1, "ddpm")
    for steps, early_stopping in ((1, 0), (3, 0), (4, 1), (20, 5)):
        config = task.build_generator([build()], argparse.Namespace(decoding_steps=steps)).config
        assert config.early_stopping == early_stopping
    given = argparse.Namespace(decoding_steps=20, decoding_early_stopping=0)
    assert task.build_generator([build()], given).config.early_stopping == 0


def test_rounding_never_outputs_pad_bos_eos_or_the_dictionary_fillers():
    """fairseq pads a dictionary to a multiple of 8 with madeupwordNNNN symbols: not words; </s>
    goes only at position ℓ−1 (elsewhere it would be dropped from the printed hypothesis, while
    the reranker scored it)."""
    padded = make_dictionary(30)
    padded.pad_to_multiple_(8)
    fillers = [i for i, w in enumerate(padded.symbols) if w.startswith("madeupword")]
    assert fillers, "the dictionary should have needed fillers"
    args = argparse.Namespace(model_dim=32, latent_dim=8, share_all_embeddings=True)
    model = DifformerModel.build_model(args, DifformerTask(DifformerConfig(data="tiny"), padded, padded))
    logits = torch.zeros(1, 4, len(padded))
    logits[0, 0, fillers[0]] = 10.0          # the best-scoring symbol at each position is banned
    logits[0, 1, padded.pad()] = 10.0
    logits[0, 2, padded.bos()] = 10.0
    logits[0, 1, padded.eos()] = logits[0, 2, padded.eos()] = 9.0  # next best: </s>, banned there too
    logits[0, 0, 7] = logits[0, 1, 8] = logits[0, 2, 9] = 5.0
    model.decoder.output_layer = lambda z0_hat: logits.reshape(*z0_hat.shape[:-1], -1)
    z0_hat = torch.zeros(1, 4, 8)
    tokens, _ = model.round_to_words(z0_hat, torch.tensor([4]), torch.zeros(1, 4, dtype=torch.bool))
    assert tokens.tolist() == [[7, 8, 9, padded.eos()]]


# ---------------------------------------------------------------- self-attention annealing

def test_annealed_causal_mask_goes_from_the_causal_mask_to_full_attention():
    from fairseq_difformer.models.difformer_layers import annealed_causal_mask

    like = torch.zeros(1)
    causal = torch.zeros(5, 5).masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    assert torch.equal(annealed_causal_mask(5, 0.0, like), causal)
    assert torch.equal(annealed_causal_mask(5, 1.0, like), torch.zeros(5, 5))
    torch.manual_seed(0)
    mask = annealed_causal_mask(400, 0.3, like)
    later = torch.ones(400, 400, dtype=torch.bool).triu(1)
    assert not mask[~later].any()                        # itself and the earlier positions: always seen
    visible = (mask[later] == 0).float().mean().item()   # each later one with probability 0.3
    assert abs(visible - 0.3) < 0.01, visible


def test_annealing_trains_the_decoder_causally_at_first_and_never_masks_decoding():
    """At update 0 of --self-attn-anneal-updates, ẑ0 at a position depends on no later position's
    z_t; from update N on, and in decoding at any update, every position sees all."""
    model = build(self_attn_anneal_updates=10, decoder_layers=2)
    src, src_lengths, tgt = batch()
    encoder_out = model.encoder(src, src_lengths=src_lengths)
    z_t = torch.randn(1, 6, 8)
    z_later = z_t.clone()
    z_later[:, 3:] += 1.0
    padding, t, z0_prev = torch.zeros(1, 6, dtype=torch.bool), torch.tensor([50]), torch.zeros(1, 6, 8)
    first = model.encoder.reorder_encoder_out(encoder_out, torch.tensor([0]))

    def denoised(z, training, updates):
        model.train(training)
        model.set_num_updates(updates)
        return model.decoder(z, t, z0_prev, first, padding)

    causal, changed = denoised(z_t, True, 0), denoised(z_later, True, 0)
    torch.testing.assert_close(causal[:, :3], changed[:, :3])      # positions 0-2 never see 3-5
    assert not torch.allclose(causal[:, 3:], changed[:, 3:])
    for training, updates in ((True, 10), (False, 0)):
        full, full_changed = denoised(z_t, training, updates), denoised(z_later, training, updates)
        assert not torch.allclose(full[:, :3], full_changed[:, :3]), (training, updates)
    assert model.decoder.self_attn_mask(6, z_t) is None  # eval mode


def test_a_negative_anneal_is_refused():
    with pytest.raises(DifformerError, match="--self-attn-anneal-updates must be ≥ 0"):
        build(self_attn_anneal_updates=-1)


def test_ar_freeze_trains_only_the_new_parts_for_its_updates():
    model = build(ar_freeze_updates=3, init_from_ar="ar.pt", dropout=0.0).train()

    def gradients(updates):
        model.zero_grad()
        model.set_num_updates(updates)
        out = forward(model)
        (out["z0_hat"].pow(2).sum() + out["length_out"].logsumexp(-1).sum()).backward()
        return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in model.named_parameters()}

    from fairseq_difformer.models.ar_init import NEW_PARTS

    frozen = gradients(2)
    new = {name for name in frozen if name.startswith(tuple(NEW_PARTS))}
    assert new and {name for name, moved in frozen.items() if moved} <= new
    assert any(frozen[name] for name in new)  # the time embedding and length predictor train
    free = gradients(3)
    assert free["decoder.layers.0.self_attn.k_proj.weight"] and free["encoder.layers.0.fc1.weight"]


def test_ar_freeze_needs_an_ar_model():
    with pytest.raises(DifformerError, match="--ar-freeze-updates keeps the parts copied from an AR model"):
        build(ar_freeze_updates=3)
