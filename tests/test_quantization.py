"""--decoding-precision int8 (and auto, the default, which picks it for a float32 model on the
CPU): which layers become dynamic int8 layers, on a copy that leaves the user's model alone and is
made again when the model changes; the denoiser's and the reranker's outputs stay close to
float32; bad input stops in one line."""

import pytest
import torch
from test_generator import generation_flags
from test_model import DICT, batch, build
from test_selection import ar_model, decode

import fairseq_difformer  # noqa: F401
from difformer_core.errors import DifformerError
from fairseq_difformer.generator import DecodingConfig, DifformerGenerator
from fairseq_difformer.quantization import QuantizedCopy, quantize_for_decoding
from fairseq_difformer.selection import ARReranker

INT8_LINEAR = torch.ao.nn.quantized.dynamic.Linear


def int8_names(model):
    return {name for name, module in model.named_modules() if isinstance(module, INT8_LINEAR)}


def float_linear_names(model):
    return {name for name, module in model.named_modules() if type(module) is torch.nn.Linear}


def test_int8_quantizes_the_denoiser_and_the_feed_forward_layers_of_a_copy():
    """Every dense layer of the denoiser's layers and latent input, and the encoder's fc1/fc2;
    the encoder's attention (fused path), the timestep MLP, the output projection to ẑ0 and the
    rounding stay float32. The original model keeps its float layers and its weights, and the
    copy shares the float parameters it did not quantize."""
    model = build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    linears = float_linear_names(model)
    quantized = quantize_for_decoding(model)

    decoder_layers = {f"decoder.layers.{i}.{attn}.{proj}" for i in range(2)
                      for attn in ("self_attn", "encoder_attn") for proj in ("q_proj", "k_proj", "v_proj", "out_proj")}
    decoder_layers |= {f"decoder.layers.{i}.{fc}" for i in range(2) for fc in ("fc1", "fc2")}
    latent_input = {"decoder.latent_input.project_in", "decoder.latent_input.self_cond_proj.0",
                    "decoder.latent_input.self_cond_proj.2"}
    encoder_ffn = {"encoder.layers.0.fc1", "encoder.layers.0.fc2"}
    assert int8_names(quantized) == decoder_layers | latent_input | encoder_ffn
    assert float_linear_names(quantized) == linears - int8_names(quantized)
    assert {"encoder.layers.0.self_attn.q_proj", "decoder.time_embed.ffn.0", "decoder.project_out_dim",
            "decoder.output_projection"} <= float_linear_names(quantized)

    assert float_linear_names(model) == linears and not int8_names(model)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert quantized.decoder.embed_tokens.weight is model.decoder.embed_tokens.weight


def test_int8_denoiser_and_encoder_stay_close_to_float32():
    """One encoder pass and one denoiser call: int8 products (a 256-level grid per tensor) move
    the outputs by a few percent of their norm at most."""
    model = build()
    model.decoder.layers[0].fc1.weight.data.mul_(3)  # an uneven weight range, still within reach
    quantized = quantize_for_decoding(model)
    src_tokens, src_lengths, _ = batch()
    torch.manual_seed(0)
    z_t, z0_prev = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    t, padding_mask = torch.tensor([70, 70]), torch.zeros(2, 5, dtype=torch.bool)
    outputs = []
    with torch.no_grad():
        for m in (model, quantized):
            encoder_out = m.forward_encoder([src_tokens, src_lengths])
            outputs.append((encoder_out["encoder_out"][0], m.denoise(z_t, t, z0_prev, encoder_out, padding_mask, {})))
    for fp32, int8 in zip(*outputs):
        assert not torch.equal(fp32, int8)  # the int8 layers did run
        assert float((int8 - fp32).norm() / fp32.norm()) < 0.05


def test_int8_copy_is_reused_until_the_parameters_change():
    """The copy is made once per model and reused for every batch, and made again after an
    in-place update of the weights (an optimizer step) or for another model."""
    model, other = build(), build()
    copies = QuantizedCopy()
    first = copies(model)
    assert copies(model) is first
    with torch.no_grad():
        model.decoder.layers[0].fc1.weight.add_(1.0)
    second = copies(model)
    assert second is not first
    assert not torch.equal(second.decoder.layers[0].fc1.weight().dequantize(),
                           first.decoder.layers[0].fc1.weight().dequantize())
    assert copies(other) is not second


def test_each_validation_decodes_with_the_weights_trained_so_far():
    """fairseq's optimizers write through p.data, which no version counter sees: the task makes
    the validation generator's int8 copy again at the start of every validation."""
    from test_model import make_task

    model = build()
    task = make_task()
    task.sequence_generator = DifformerGenerator(model, DICT, DecodingConfig(precision="int8"))
    copies = task.sequence_generator.int8_model
    first = copies(model)
    for p in model.parameters():
        p.data.add_(0.5)  # as fairseq's Adam updates a float32 parameter
    assert copies(model) is first  # unseen by the version counters
    task.begin_valid_epoch(2, model)
    fresh = copies(model)
    assert fresh is not first
    assert not torch.equal(fresh.decoder.layers[0].fc1.weight().dequantize(),
                           first.decoder.layers[0].fc1.weight().dequantize())


@pytest.mark.parametrize("flags, int8", [((), True), (("--decoding-precision", "int8"), True),
                                         (("--decoding-precision", "model"), False)])
def test_decoding_precision_through_fairseq_generate_flags(tmp_path, flags, int8):
    """Parsed by fairseq-generate's parser: auto (no flag) and int8 decode a float32 CPU model on
    the int8 copy (also after fairseq-generate's make_generation_fast_, whose train() returns
    None), model on the model itself; latents and scores stay float32, and the user's model keeps
    its float layers."""
    model = build(diffusion_steps=100)
    model.make_generation_fast_()
    cfg, task = generation_flags(tmp_path, "--length-beam-size", "2", *flags)
    generator = task.build_generator([model], cfg.generation)
    assert generator.config.precision == (flags[1] if flags else "auto")
    seen = []
    hook = INT8_LINEAR.forward
    INT8_LINEAR.forward = lambda self, x: (seen.append(x.dtype), hook(self, x))[1]
    try:
        hypos = decode(generator, model)
    finally:
        INT8_LINEAR.forward = hook
    assert set(seen) == ({torch.float32} if int8 else set())
    assert len(hypos) == 2 and all(len(h) == 2 for h in hypos)
    assert {h["positional_scores"].dtype for hs in hypos for h in hs} == {torch.float32}
    assert not int8_names(model)


def test_auto_precision_leaves_a_half_precision_model_as_it_is():
    """auto picks int8 only for a float32 model on the CPU: a model loaded with --fp16 decodes in
    its own precision, where int8 given by name stops in one line."""
    model = build().half()
    generator = DifformerGenerator(model, DICT, DecodingConfig(steps=4))
    assert generator.precision(model) == "model"
    assert generator.precision(build()) == "int8"
    with pytest.raises(DifformerError, match=r"--decoding-precision int8 quantizes a float32 model.*drop --fp16") as error:
        DifformerGenerator(model, DICT, DecodingConfig(steps=4, precision="int8")).generate(
            [model], {"net_input": dict(zip(("src_tokens", "src_lengths"), batch()[:2]))})
    assert "\n" not in str(error.value)


def test_int8_reranker_scores_stay_close_to_float32():
    """The reranker's fc1/fc2 (encoder and decoder) and its output projection become int8 on
    its copy; its mean log-probabilities move by little, and the reranker the user passed is
    untouched."""
    reranker = ar_model()
    src_tokens, src_lengths, _ = batch()
    candidates = torch.tensor([[11, 12, 2], [13, 2, 1], [14, 15, 2], [17, 2, 1]])
    scorer = ARReranker(reranker, DICT)
    fp32 = scorer.score(src_tokens, src_lengths, candidates, 2)
    int8 = scorer.score(src_tokens, src_lengths, candidates, 2, int8=True)
    assert int8_names(scorer.int8_model(reranker)) == {
        "encoder.layers.0.fc1", "encoder.layers.0.fc2",
        "decoder.layers.0.fc1", "decoder.layers.0.fc2", "decoder.layers.1.fc1", "decoder.layers.1.fc2",
        "decoder.output_projection"}
    assert not int8_names(reranker)
    torch.testing.assert_close(int8, fp32, atol=0.05, rtol=0)


def test_unknown_precision_stops_in_one_line():
    with pytest.raises(DifformerError, match=r"--decoding-precision 'fp8' is not one of auto, model, bf16, int8"):
        DifformerGenerator(build(), DICT, DecodingConfig(steps=4, precision="fp8"))
