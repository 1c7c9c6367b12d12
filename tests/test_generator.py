"""The decoding flags (--decoding-noise-schedule, --decoding-rescaling-factor, --decoding-vp-rf),
parsed by fairseq-generate's own parser, change the sampled latents as their formulas say: the
first two denoiser inputs are checked against z_T = F ε₁ and one DDPM posterior step
z_{t'} = μ(ẑ0, z_T) + σ ε₂ computed here from the schedule's definition."""

import math

import pytest
import torch
from conftest import USER_DIR
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from test_model import DICT, batch, build

import fairseq_difformer  # noqa: F401

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
