"""The samplers against closed forms: with an oracle denoiser every sampler lands on the true z0
(the deterministic ones through the latents the starting noise implies, the stochastic ones
through the marginals q(z_k | z0)); DDIM with η = 0 draws no noise and with η = 1 is the DDPM
posterior; DPM-Solver++(2M) against a hand computation; the visited timesteps; the flags."""

import math

import pytest
import torch
from fairseq import options
from test_model import DICT, batch, build, make_task

import fairseq_difformer  # noqa: F401
from difformer_core.diffusion import GaussianDiffusion
from difformer_core.diffusion.samplers import (
    SAMPLERS, DDIMSampler, DDPMSampler, DPMSolverPlusPlus, build_sampler,
)
from difformer_core.errors import DifformerError
from fairseq_difformer.generator import DecodingConfig, DifformerGenerator
from fairseq_difformer.models.hub_interface import check_decoding_options

TRAIN_STEPS = 200
PROCESSES = {"F = 4": dict(rescaling_factor=4.0), "vp-rf F = 4": dict(rescaling_factor=4.0, vp_rf=True)}
SAMPLER_OPTIONS = {
    "ddpm": ("ddpm", {}),
    "ddim η=0": ("ddim", {"eta": 0.0}),
    "ddim η=0.5": ("ddim", {"eta": 0.5}),
    "ddim η=1": ("ddim", {"eta": 1.0}),
    "dpm-solver++": ("dpm-solver++", {}),
}
DETERMINISTIC = ("ddim η=0", "dpm-solver++")


def process(steps, rescaling_factor=4.0, vp_rf=False):
    return GaussianDiffusion.from_schedule("sqrt", TRAIN_STEPS, rescaling_factor, vp_rf).respace(steps)


def levels(diffusion, k):
    """a_k = √ᾱ_k and σ_k = F √(1 − ᾱ_k), with a_{−1} = 1, σ_{−1} = 0."""
    if k < 0:
        return 1.0, 0.0
    alpha_bar = float(diffusion.alphas_cumprod[k])
    return math.sqrt(alpha_bar), diffusion.noise_scale * math.sqrt(1 - alpha_bar)


def run_oracle(sampler, z0, z_T):
    """Every visited step with ẑ0 = z0 (the true data), the last one onto the data too; the
    latent at each visited step and the final one."""
    z, previous, latents = z_T, None, []
    for k in sampler.steps:
        latents.append(z)
        z = sampler.step(z, z0, k, previous)
        previous = z0
    return latents, z


@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("steps", [1, 2, 5, 20])
@pytest.mark.parametrize("sampler_name", SAMPLER_OPTIONS)
def test_with_an_oracle_denoiser_every_sampler_ends_at_z0(sampler_name, steps, process_name):
    name, kwargs = SAMPLER_OPTIONS[sampler_name]
    diffusion = process(steps, **PROCESSES[process_name])
    sampler = build_sampler(name, diffusion, **kwargs)
    generator = torch.Generator().manual_seed(steps)
    z0 = torch.randn(4, 6, 8, generator=generator, dtype=torch.float64)
    z_T = 3 * torch.randn(4, 6, 8, generator=generator, dtype=torch.float64) - 1  # any z_T
    latents, final = run_oracle(sampler, z0, z_T)
    torch.testing.assert_close(final, z0, rtol=1e-9, atol=1e-9)

    if sampler_name in DETERMINISTIC:
        # The ODE's solution with the true z0 keeps the noise z_T implies: z_k = a_k z0 + σ_k ε̂.
        a_top, sigma_top = levels(diffusion, steps - 1)
        implied_noise = (z_T - a_top * z0) / sigma_top
        for k, z_k in zip(sampler.steps, latents):
            a_k, sigma_k = levels(diffusion, k)
            torch.testing.assert_close(z_k, a_k * z0 + sigma_k * implied_noise, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("sampler_name", ["ddpm", "ddim η=0.5", "ddim η=1"])
def test_stochastic_samplers_with_an_oracle_pass_through_the_marginals(sampler_name, process_name):
    """Started from z_T ~ q(z_T | z0), ancestral steps with the true z0 keep every latent
    distributed as q(z_k | z0) = N(a_k z0, σ_k²): the empirical mean and standard deviation at
    each visited step, over 40,000 draws, within 5 standard errors."""
    name, kwargs = SAMPLER_OPTIONS[sampler_name]
    diffusion = process(6, **PROCESSES[process_name])
    sampler = build_sampler(name, diffusion, **kwargs)
    torch.manual_seed(0)
    n = 40_000
    z0 = torch.tensor([-2.0, 0.5], dtype=torch.float64)[:, None].expand(2, n)
    a_top, sigma_top = levels(diffusion, 5)
    latents, final = run_oracle(sampler, z0, a_top * z0 + sigma_top * torch.randn(2, n, dtype=torch.float64))
    torch.testing.assert_close(final, z0, rtol=1e-9, atol=1e-9)
    for k, z_k in zip(sampler.steps, latents):
        a_k, sigma_k = levels(diffusion, k)
        mean_error = (z_k.mean(1) - a_k * z0[:, 0]).abs().max()
        assert mean_error < 5 * sigma_k / math.sqrt(n), (k, mean_error)
        assert abs(z_k.std(1) / sigma_k - 1).max() < 5 / math.sqrt(2 * n), k


def fake_denoiser(z_t, k):
    """A smooth, step-dependent stand-in for the model's ẑ0."""
    return torch.tanh(0.3 * z_t) + 0.05 * k


def run(sampler, z_T):
    z, previous = z_T, None
    for k in sampler.steps[:-1]:
        z0_hat = fake_denoiser(z, k)
        z = sampler.step(z, z0_hat, k, previous)
        previous = z0_hat
    return z


@pytest.mark.parametrize("eta, deterministic", [(0.0, True), (0.5, False)])
def test_ddim_with_eta_0_is_deterministic(eta, deterministic):
    """Different seeds, same z_T: the same output, and no draw from torch's generator (which
    would shift the noise of every later batch)."""
    sampler = DDIMSampler(process(10), eta=eta)
    z_T = 4 * torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        outputs.append(run(sampler, z_T))
        assert torch.equal(torch.get_rng_state(), torch.manual_seed(seed).get_state()) == deterministic
    assert torch.equal(outputs[0], outputs[1]) == deterministic


@pytest.mark.parametrize("process_name", PROCESSES)
def test_ddim_with_eta_1_is_the_ddpm_posterior(process_name):
    """Same noise, same move as DDPM; the noise enters with the DDPM posterior's standard
    deviation √(F² β_k (1 − ᾱ_{k−1}) / (1 − ᾱ_k)), computed here from ᾱ."""
    diffusion = process(8, **PROCESSES[process_name])
    ddim, ddpm = DDIMSampler(diffusion, eta=1.0), DDPMSampler(diffusion)
    gen = torch.Generator().manual_seed(0)
    z_t, z0_hat = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 3, 4, generator=gen)
    noise = torch.randn(2, 3, 4, generator=gen)
    f2 = diffusion.noise_scale**2
    for k in ddim.steps:
        torch.testing.assert_close(ddim.step(z_t, z0_hat, k, noise=noise), ddpm.step(z_t, z0_hat, k, noise=noise))
        alpha_bar = float(diffusion.alphas_cumprod[k])
        alpha_bar_prev = float(diffusion.alphas_cumprod[k - 1]) if k > 0 else 1.0
        variance = f2 * (1 - alpha_bar / alpha_bar_prev) * (1 - alpha_bar_prev) / (1 - alpha_bar)
        unit = torch.ones_like(z_t)
        noise_part = ddim.step(z_t, z0_hat, k, noise=unit) - ddim.step(z_t, z0_hat, k, noise=0 * unit)
        torch.testing.assert_close(noise_part, math.sqrt(variance) * unit)


@pytest.mark.parametrize("steps, early_stopping", [(1, 0), (2, 0), (7, 2), (20, 5), (TRAIN_STEPS, 0)])
@pytest.mark.parametrize("sampler_name", SAMPLER_OPTIONS)
def test_each_sampler_visits_the_documented_timesteps(sampler_name, steps, early_stopping):
    """N steps over T keep round(k (T − 1) / (N − 1)) (T − 1 alone for N = 1); decoding visits
    them from the noisiest down, early stopping E leaving out the last E."""
    name, kwargs = SAMPLER_OPTIONS[sampler_name]
    sampler = build_sampler(name, process(steps), early_stopping, **kwargs)
    kept = [TRAIN_STEPS - 1] if steps == 1 else [round(k * (TRAIN_STEPS - 1) / (steps - 1)) for k in range(steps)]
    assert sampler.steps == tuple(range(steps - 1, early_stopping - 1, -1))
    assert list(sampler.timesteps) == kept[::-1][: steps - early_stopping]


def test_dpm_solver_plus_plus_2m_matches_a_hand_computed_step():
    """Three steps ᾱ = (0.95, 0.6, 0.2), F = 2: a first-order step from k = 2, then the
    second-order one from k = 1, written out from Lu et al.'s Algorithm 2 (the two steps'
    log-SNR spans differ, h_1 ≠ h_2, so that r = h_2 / h_1 matters)."""
    alpha_bar, f = [0.95, 0.6, 0.2], 2.0
    sampler = DPMSolverPlusPlus(GaussianDiffusion(torch.tensor(alpha_bar, dtype=torch.float64), noise_scale=f))
    a = [math.sqrt(x) for x in alpha_bar]
    sigma = [f * math.sqrt(1 - x) for x in alpha_bar]
    lam = [math.log(a_k / s_k) for a_k, s_k in zip(a, sigma)]
    z2, x2, x1 = 1.7, 0.3, -0.7  # z_2 and the denoiser's ẑ0 at k = 2 and k = 1

    h2 = lam[1] - lam[2]
    z1 = sigma[1] / sigma[2] * z2 - a[1] * (math.exp(-h2) - 1) * x2
    h1 = lam[0] - lam[1]
    r = h2 / h1
    assert abs(r - 1) > 0.2
    d = (1 + 1 / (2 * r)) * x1 - 1 / (2 * r) * x2
    z0 = sigma[0] / sigma[1] * z1 - a[0] * (math.exp(-h1) - 1) * d

    def scalar(x):
        return torch.tensor([[x]], dtype=torch.float64)

    got1 = sampler.step(scalar(z2), scalar(x2), 2)
    got0 = sampler.step(got1, scalar(x1), 1, z0_hat_prev=scalar(x2))
    assert float(got1) == pytest.approx(z1, rel=1e-12)
    assert float(got0) == pytest.approx(z0, rel=1e-12)
    # The first-order step is DDIM's with η = 0.
    ddim = DDIMSampler(sampler.diffusion)
    torch.testing.assert_close(ddim.step(scalar(z2), scalar(x2), 2), got1)


def test_generator_hands_the_sampler_each_step_and_the_previous_prediction():
    model = build()
    src_tokens, src_lengths, _ = batch()
    gen = DifformerGenerator(model, DICT, DecodingConfig(steps=6, early_stopping=1, sampler="dpm-solver++"))
    predictions, moves = [], []
    denoise, step = model.decoder.forward, gen.sampler.step
    model.decoder.forward = lambda *a, **kw: predictions.append(denoise(*a, **kw)) or predictions[-1]
    gen.sampler.step = lambda *a, **kw: moves.append(a) or step(*a, **kw)
    gen.generate([model], {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}})
    assert len(predictions) == 5 and len(moves) == 4  # no move after the last visited step
    for i, (z_t, z0_hat, k, z0_hat_prev) in enumerate(moves):
        assert k == 5 - i and torch.equal(z0_hat, predictions[i])
        assert z0_hat_prev is None if i == 0 else torch.equal(z0_hat_prev, predictions[i - 1])


# ---------------------------------------------------------------- options

def generation_args(*flags):
    return options.parse_args_and_arch(options.get_generation_parser(), [
        "tiny", "--user-dir", fairseq_difformer.__path__[0], "--task", "difformer", *flags,
    ])


@pytest.mark.parametrize("flags, expected", [
    ([], (DDPMSampler, None)),
    (["--decoding-sampler", "ddim"], (DDIMSampler, 0.0)),
    (["--decoding-sampler", "ddim", "--decoding-eta", "0.3"], (DDIMSampler, 0.3)),
    (["--decoding-sampler", "dpm-solver++"], (DPMSolverPlusPlus, None)),
])
def test_sampler_flags_reach_the_generator(flags, expected):
    args = generation_args(*flags)
    gen = make_task().build_generator([build()], args)
    assert type(gen.sampler) is expected[0] and getattr(gen.sampler, "eta", None) == expected[1]
    # The hub's keyword arguments: the same options by name.
    check_decoding_options({"decoding_sampler": args.decoding_sampler, "decoding_eta": args.decoding_eta})


def test_unknown_sampler_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        generation_args("--decoding-sampler", "euler")
    assert "--decoding-sampler: invalid choice: 'euler'" in capsys.readouterr().err


@pytest.mark.parametrize("config, message", [
    (dict(sampler="euler"), "--decoding-sampler 'euler' is not one of ddpm, ddim, dpm-solver++"),
    (dict(sampler="ddim", eta=-0.1), "--decoding-eta must be in [0, 1] (got -0.1)"),
    (dict(sampler="ddim", eta=1.5), "--decoding-eta must be in [0, 1] (got 1.5)"),
    (dict(eta=0.0), "--decoding-eta is an option of --decoding-sampler ddim, not of ddpm"),
    (dict(sampler="dpm-solver++", eta=0.5),
     "--decoding-eta is an option of --decoding-sampler ddim, not of dpm-solver++"),
    (dict(steps=0, sampler="ddim"), "--decoding-steps must be between 1"),
    (dict(steps=101, sampler="dpm-solver++"), "--decoding-steps must be between 1"),
])
def test_bad_sampler_options_raise_one_line_naming_the_flag(config, message):
    with pytest.raises(DifformerError) as error:
        DifformerGenerator(build(), DICT, DecodingConfig(**config))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("option, message", [
    ({"decoding_sampler": "euler"}, "decoding_sampler='euler': choose one of ddpm, ddim, dpm-solver++"),
    ({"decoding_eta": "high"}, "decoding option decoding_eta='high' must be a number"),
])
def test_hub_keywords_are_checked(option, message):
    with pytest.raises(DifformerError, match=message.replace("(", r"\(")):
        check_decoding_options(option)


def test_every_sampler_is_registered_under_its_flag_value():
    assert list(SAMPLERS) == ["ddpm", "ddim", "dpm-solver++"]
    with pytest.raises(ValueError, match="eta is an option of the ddim sampler"):
        build_sampler("ddpm", process(3), eta=0.1)
    with pytest.raises(ValueError, match="unknown sampler"):
        build_sampler("euler", process(3))


@pytest.mark.parametrize("sampler_name", SAMPLER_OPTIONS)
def test_sampler_follows_the_device_and_keeps_float64(sampler_name):
    """A model's .half() / .to(device) reach the generator's sampler: the device changes, the
    float64 coefficients stay float64 (also those of the process inside it)."""
    name, kwargs = SAMPLER_OPTIONS[sampler_name]
    sampler = build_sampler(name, process(5), **kwargs).half().to("meta")
    buffers = list(sampler.buffers())
    assert {b.device.type for b in buffers} == {"meta"}
    assert {b.dtype for b in buffers} == {torch.float64, torch.long}
