"""The decoding flags (--decoding-noise-schedule, --decoding-rescaling-factor, --decoding-vp-rf),
parsed by fairseq-generate's own parser, change the sampled latents as their formulas say: the
first two denoiser inputs are checked against z_T = F ε₁ and one DDPM posterior step
z_{t'} = μ(ẑ0, z_T) + σ ε₂ computed here from the schedule's definition. Candidates grouped by
length: the least-cost cut against brute force, and the same hypotheses as one batch.
--decoding-precision bf16: bfloat16 matrix products, float32 latents."""

import math
import random

import pytest
import torch
from conftest import USER_DIR
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from test_model import DICT, batch, build

import fairseq_difformer  # noqa: F401
from fairseq_difformer import generator as generator_module
from fairseq_difformer import grouped_denoising
from difformer_core.errors import DifformerError
from fairseq_difformer.generator import DecodingConfig, DifformerGenerator
from fairseq_difformer.length_groups import length_groups

TRAIN_STEPS, DECODING_STEPS = 100, 5
# The 5 decoding steps keep round(k · 99/4) of the 100 training steps: 0, 25, 50, 74, 99.
FIRST, SECOND = 99, 74
SCHEDULES = {  # ᾱ(s) as documented for --noise-schedule
    "sqrt": lambda s: 1 - math.sqrt(s + 1e-4),
    "cosine": lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2,
}


def documented_alpha_bar(schedule, factor, vp_rf):
    """ᾱ at the two steps: ᾱ_t = ᾱ((t+1)/T) / ᾱ(0) (the product of the per-step 1 − β), where
    the last step's β, above 1 for both schedules (ᾱ(1) ≤ 0), is capped at 0.999. With vp-rf
    the schedule is rescaled to the signal-to-noise ratio ᾱ / (F² (1 − ᾱ)) and the noise is not."""
    f = SCHEDULES[schedule]
    second = f((SECOND + 1) / TRAIN_STEPS) / f(0)
    first = f(FIRST / TRAIN_STEPS) / f(0) * (1 - 0.999)
    if vp_rf:
        snr = [a / (factor**2 * (1 - a)) for a in (first, second)]
        return [r / (1 + r) for r in snr], 1.0
    return [first, second], factor


def posterior_step(z_t, z0_hat, alpha_bar_t, alpha_bar_prev, noise_scale, noise):
    """z_{t'} ~ q(z_{t'} | z_t, ẑ0) ∝ N(z_t; a z_{t'}, F² (1 − a²)) · N(z_{t'}; √ᾱ_{t'} ẑ0, F² (1 − ᾱ_{t'})),
    a² = ᾱ_t / ᾱ_{t'}: the precision-weighted mean of the two factors, and the noise ε₂ times
    the square root of the inverse total precision."""
    f2 = noise_scale**2
    gain2 = alpha_bar_t / alpha_bar_prev
    prior_precision = 1 / (f2 * (1 - alpha_bar_prev))
    step_precision = gain2 / (f2 * (1 - gain2))
    precision = prior_precision + step_precision
    mean = (prior_precision * math.sqrt(alpha_bar_prev) * z0_hat
            + step_precision * z_t / math.sqrt(gain2)) / precision
    return mean + noise / math.sqrt(precision)


def first_two_steps(tmp_path, flags, seed=0):
    """Decode the test batch with fairseq-generate's flags; the decoder's first two calls."""
    tmp_path.mkdir(exist_ok=True)
    for lang in ("de", "en"):
        DICT.save(str(tmp_path / f"dict.{lang}.txt"))
    args = options.parse_args_and_arch(options.get_generation_parser(), [
        str(tmp_path), "--user-dir", USER_DIR, "--task", "difformer", "--source-lang", "de",
        "--target-lang", "en", "--decoding-steps", str(DECODING_STEPS), "--length-beam-size", "2", *flags,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = build(diffusion_steps=TRAIN_STEPS, noise_schedule="sqrt", rescaling_factor=2.0)
    generator = task.build_generator([model], cfg.generation)

    calls = []
    denoise = model.decoder.forward

    def spy(z_t, t, *args, **kwargs):
        z0_hat = denoise(z_t, t, *args, **kwargs)
        calls.append((z_t.double(), t.tolist(), z0_hat.double()))
        return z0_hat

    model.decoder.forward = spy
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor([6, 4])
    src_tokens, src_lengths, _ = batch()
    torch.manual_seed(seed)
    generator.generate([model], {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}})
    return calls[:2]


CASES = {
    "defaults": ([], ("sqrt", 1.0, False)),
    "--decoding-rescaling-factor 3": (["--decoding-rescaling-factor", "3"], ("sqrt", 3.0, False)),
    "--decoding-vp-rf": (["--decoding-rescaling-factor", "3", "--decoding-vp-rf"], ("sqrt", 3.0, True)),
    "--decoding-noise-schedule cosine": (["--decoding-noise-schedule", "cosine"], ("cosine", 1.0, False)),
}


@pytest.mark.parametrize("case", CASES)
def test_decoding_flags_sample_as_their_formulas_say(tmp_path, case):
    flags, (schedule, factor, vp_rf) = CASES[case]
    (z_T, t_first, z0_hat), (z_next, t_second, _) = first_two_steps(tmp_path, flags)
    assert set(t_first) == {FIRST} and set(t_second) == {SECOND}

    torch.manual_seed(0)
    first_noise = torch.randn(z_T.shape).double()
    second_noise = torch.randn(z_T.shape).double()
    (alpha_bar_first, alpha_bar_second), noise_scale = documented_alpha_bar(schedule, factor, vp_rf)
    torch.testing.assert_close(z_T, noise_scale * first_noise)
    expected = posterior_step(z_T, z0_hat, alpha_bar_first, alpha_bar_second, noise_scale, second_noise)
    torch.testing.assert_close(z_next, expected, rtol=1e-5, atol=1e-5)

    if flags:  # the same seed without the flags samples other latents
        _, (default_next, _, _) = first_two_steps(tmp_path / "defaults", [])
        assert not torch.allclose(z_next, default_next, atol=1e-3)


# ---------------------------------------------------------------- length groups

def brute_force_cost(lengths, call_cost):
    """The least Σ (rows · max length + call_cost) over every way to cut the sorted distinct
    lengths into consecutive runs."""
    values = sorted(set(lengths))
    best = None
    for mask in range(2 ** (len(values) - 1)):  # bit i set: cut after values[i]
        cost, start = 0, 0
        for i in range(len(values)):
            if i == len(values) - 1 or mask >> i & 1:
                run = values[start:i + 1]
                cost += sum(1 for x in lengths if x in run) * run[-1] + call_cost
                start = i + 1
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("call_cost", [0, 5, 40, 1000])
def test_length_groups_partition_the_candidates_at_the_least_cost(seed, call_cost):
    rng = random.Random(seed)
    lengths = [rng.choice([1, 2, 3, 5, 8, 9, 10, 17, 30]) for _ in range(rng.randint(1, 40))]
    groups = length_groups(torch.tensor(lengths), call_cost)
    rows = [r for g in groups for r in g.tolist()]
    assert sorted(rows) == list(range(len(lengths)))                  # every candidate once
    assert all(g.tolist() == sorted(g.tolist()) for g in groups)      # in their original order
    spans = [(min(lengths[r] for r in g), max(lengths[r] for r in g)) for g in groups]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))         # disjoint runs, shortest first
    cost = sum(len(g) * high + call_cost for g, (_, high) in zip(groups, spans))
    assert cost == brute_force_cost(lengths, call_cost)
    if call_cost == 0:
        assert len(groups) == len(set(lengths))


def decode_with(model, config, lengths, group=True):
    src_tokens, src_lengths, _ = batch()
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor(lengths)
    torch.manual_seed(0)
    return DifformerGenerator(model, DICT, DecodingConfig(**config)).generate(
        [model], {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}})


@pytest.mark.parametrize("config", [
    dict(steps=6, length_beam=3, noise_beam=2, retain_history=True),
    dict(steps=5, early_stopping=1, length_beam=3, clamping=True, sampler="dpm-solver++"),
    dict(steps=4, length_beam=2, noise_beam=2, sampler="ddim", eta=0.5),
])
def test_grouping_by_length_gives_the_hypotheses_of_one_batch(monkeypatch, config):
    """Candidates of lengths 2 … 21 decoded in one batch at width 21, and grouped by length (one
    group per length), with the same seed: the same words, scores and history."""
    model = build()
    widths = []
    denoise = model.decoder.forward
    model.decoder.forward = lambda z_t, *a, **kw: widths.append(tuple(z_t.shape[:2])) or denoise(z_t, *a, **kw)

    monkeypatch.setattr(grouped_denoising, "length_groups", lambda lengths, call_cost: [torch.arange(len(lengths))])
    one_batch = decode_with(model, config, [20, 3])
    assert len(set(widths)) == 1
    monkeypatch.undo()
    monkeypatch.setattr(grouped_denoising, "GROUP_CALL_COST", 0)
    widths.clear()
    grouped = decode_with(model, config, [20, 3])
    assert len(set(widths)) == 2 * config["length_beam"]  # each length its own call, at its own width

    for expected, got in zip(one_batch, grouped):
        for e, g in zip(expected, got):
            assert torch.equal(e["tokens"], g["tokens"])
            torch.testing.assert_close(e["positional_scores"], g["positional_scores"])
            assert [h["tokens"].tolist() for h in e["history"]] == [h["tokens"].tolist() for h in g["history"]]


# ---------------------------------------------------------------- bfloat16 matrix products

def test_decoding_bf16_runs_the_matrix_products_in_bfloat16_and_the_sampler_in_float32(tmp_path):
    """--decoding-precision bf16, parsed by fairseq-generate's parser: the encoder's and the denoiser's
    linear layers compute in bfloat16, while the latents the sampler moves, ẑ0 it is given and the
    scores stay float32; a model already in half precision is refused in one line."""
    def generator(*flags):
        cfg, task = generation_flags(
            tmp_path, "--decoding-early-stopping", "0", "--length-beam-size", "2", *flags)
        return task.build_generator([model], cfg.generation)

    model = build(diffusion_steps=TRAIN_STEPS)
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor([6, 4])
    linear_dtypes = {}
    for name in ("encoder.layers.0.fc1", "decoder.layers.1.fc2", "decoder.latent_input.project_in"):
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: linear_dtypes.setdefault(name, set()).add(output.dtype))
    src_tokens, src_lengths, _ = batch()
    sample = {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}}

    hypotheses = {}
    model_precision, bf16_precision = ("--decoding-precision", "model"), ("--decoding-precision", "bf16")
    for flags in (model_precision, bf16_precision):
        gen = generator(*flags)
        moves = []
        step = gen.sampler.step
        gen.sampler.step = lambda z_t, z0_hat, *a, **kw: (moves.append((z_t.dtype, z0_hat.dtype))
                                                          or step(z_t, z0_hat, *a, **kw))
        linear_dtypes.clear()
        torch.manual_seed(0)
        hypotheses[flags] = gen.generate([model], sample)
        expected = torch.bfloat16 if flags == bf16_precision else torch.float32
        assert all(dtypes == {expected} for dtypes in linear_dtypes.values()) and len(linear_dtypes) == 3
        assert set(moves) == {(torch.float32, torch.float32)} and len(moves) == 3
        assert {h["positional_scores"].dtype for hypos in hypotheses[flags] for h in hypos} == {torch.float32}
    # The same candidates (lengths from the same prediction), words from bfloat16 matrix products.
    for fp32, bf16 in zip(hypotheses[model_precision], hypotheses[bf16_precision]):
        assert sorted(len(h["tokens"]) for h in fp32) == sorted(len(h["tokens"]) for h in bf16)

    model.half()
    with pytest.raises(DifformerError, match=r"--decoding-precision bf16 runs a float32 model's .* drop --fp16") as error:
        generator(*bf16_precision).generate([model], sample)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- repeated words, oracle length

def test_collapse_repeats_keeps_the_first_word_of_each_run_with_its_score():
    pad, eos = DICT.pad(), DICT.eos()
    tokens = torch.tensor([[5, 5, 6, 7, 7, 7, eos],
                           [8, 9, 9, eos, pad, pad, pad],
                           [4, eos, pad, pad, pad, pad, pad]])
    scores = torch.arange(21, dtype=torch.float).view(3, 7).masked_fill(tokens.eq(pad), 0)
    kept, kept_scores, lengths = generator_module.collapse_repeats(
        tokens, scores, torch.tensor([7, 4, 2]), pad)
    assert kept.tolist() == [[5, 6, 7, eos], [8, 9, eos, pad], [4, eos, pad, pad]]
    assert kept_scores.tolist() == [[0, 2, 3, 6], [7, 8, 10, 0], [14, 15, 0, 0]]
    assert lengths.tolist() == [4, 3, 2]


def generation_flags(tmp_path, *flags):
    """A generator built by the task from fairseq-generate's parser with these flags."""
    for lang in ("de", "en"):
        DICT.save(str(tmp_path / f"dict.{lang}.txt"))
    args = options.parse_args_and_arch(options.get_generation_parser(), [
        str(tmp_path), "--user-dir", USER_DIR, "--task", "difformer", "--source-lang", "de",
        "--target-lang", "en", "--decoding-steps", "4", *flags])
    cfg = convert_namespace_to_omegaconf(args)
    return cfg, tasks.setup_task(cfg.task)


def test_repeated_words_are_collapsed_unless_decoding_keep_repeats(tmp_path):
    """Rounding to "w7 w7 w8 w8 … </s>": by default the hypothesis is "w7 w8 </s>", scored by the
    mean log-probability of the words kept; --decoding-keep-repeats keeps every position."""
    model = build(diffusion_steps=TRAIN_STEPS)
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor([6, 5])
    rounding = model.round_to_words

    def repeating(z0_hat, lengths, padding_mask):
        tokens, scores = rounding(z0_hat, lengths, padding_mask)
        words = torch.where(torch.arange(tokens.size(1)) < 2, 7, 8).expand_as(tokens)
        real_words = tokens.ne(DICT.pad()) & tokens.ne(DICT.eos())
        scores = torch.arange(tokens.numel(), dtype=torch.float).view_as(tokens)
        scores = scores.masked_fill(tokens.eq(DICT.pad()), 0)
        return torch.where(real_words, words, tokens), scores

    model.round_to_words = repeating
    src_tokens, src_lengths, _ = batch()
    sample = {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}}
    at_predicted_length = ("--decoding-length-offset", "0")
    for flags, expected in (((), [[7, 8, 2], [7, 8, 2]]),
                            (("--decoding-keep-repeats",), [[7, 7, 8, 8, 8, 2], [7, 7, 8, 8, 2]])):
        cfg, task = generation_flags(tmp_path, *at_predicted_length, *flags)
        hypos = task.build_generator([model], cfg.generation).generate([model], sample)
        assert [h[0]["tokens"].tolist() for h in hypos] == expected
        for h in hypos:
            assert len(h[0]["positional_scores"]) == len(h[0]["tokens"])
            assert float(h[0]["score"]) == pytest.approx(float(h[0]["positional_scores"].mean()))
    # Row 0 kept positions 0, 2 and 5 of scores 0 … 5.
    assert hypos[0][0]["positional_scores"].tolist() == [0, 1, 2, 3, 4, 5]
    cfg, task = generation_flags(tmp_path, *at_predicted_length, "--retain-iter-history")
    default = task.build_generator([model], cfg.generation).generate([model], sample)
    assert default[0][0]["positional_scores"].tolist() == [0, 2, 5]
    # The history holds each step's words as decoded, before collapsing.
    assert [len(step["tokens"]) for step in default[0][0]["history"]] == [6, 6, 6]


def test_decoding_oracle_length_centres_the_length_beam_on_the_reference(tmp_path):
    model = build(diffusion_steps=TRAIN_STEPS)
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor([9, 9])
    src_tokens, src_lengths, _ = batch()
    pad, eos = DICT.pad(), DICT.eos()
    target = torch.tensor([[5, 6, 7, 8, eos], [9, 10, eos, pad, pad]])  # 5 and 3 with </s>
    sample = {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}, "target": target}
    cfg, task = generation_flags(tmp_path, "--decoding-oracle-length", "--decoding-keep-repeats",
                                 "--length-beam-size", "3", "--decoding-length-offset", "0")
    hypos = task.build_generator([model], cfg.generation).generate([model], sample)
    assert [sorted(len(h["tokens"]) for h in candidates) for candidates in hypos] == [[4, 5, 6], [2, 3, 4]]
    del sample["target"]
    with pytest.raises(DifformerError, match=r"--decoding-oracle-length .* no references") as error:
        task.build_generator([model], cfg.generation).generate([model], sample)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("flags, offset", [
    ((), 2), (("--decoding-keep-repeats",), 0), (("--decoding-length-offset", "1"), 1),
    (("--decoding-keep-repeats", "--decoding-length-offset", "2"), 2),
])
def test_the_length_offset_defaults_to_2_and_to_0_when_repeats_are_kept(tmp_path, flags, offset):
    """The default offset makes up for collapsed repeats; with --decoding-keep-repeats nothing is
    collapsed and the length beam stays on the predicted length. A given offset always holds."""
    cfg, task = generation_flags(tmp_path, *flags)
    generator = task.build_generator([build(diffusion_steps=TRAIN_STEPS)], cfg.generation)
    assert generator.config.length_offset == offset


@pytest.mark.parametrize("flags, expected", [
    ((), [[8, 9, 10], [3, 4, 5]]),  # repeats kept: the predicted length is the centre
    (("--decoding-length-offset", "2"), [[10, 11, 12], [5, 6, 7]]),
    (("--decoding-length-offset", "-3"), [[5, 6, 7], [1, 1, 2]]),  # never below one position
    (("--decoding-oracle-length", "--decoding-length-offset", "1"), [[5, 6, 7], [3, 4, 5]]),
])
def test_decoding_length_offset_moves_the_centre_of_the_length_beam(tmp_path, flags, expected):
    model = build(diffusion_steps=TRAIN_STEPS)
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor([9, 4])
    src_tokens, src_lengths, _ = batch()
    target = torch.tensor([[5, 6, 7, 8, DICT.eos()], [9, 10, DICT.eos(), DICT.pad(), DICT.pad()]])
    sample = {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}, "target": target}
    cfg, task = generation_flags(tmp_path, "--decoding-keep-repeats", "--length-beam-size", "3", *flags)
    hypos = task.build_generator([model], cfg.generation).generate([model], sample)
    assert [sorted(len(h["tokens"]) for h in candidates) for candidates in hypos] == expected
