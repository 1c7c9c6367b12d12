"""The diffusion noise process against closed forms, sampling and brute-force conditioning."""

import math

import pytest
import torch

from difformer_core.diffusion import (
    NOISE_SCHEDULES,
    GaussianDiffusion,
    alpha_bar,
    betas_for_schedule,
    spaced_timesteps,
    vp_rescale,
)

NUM_SAMPLES = 50_000  # per batch row; 4 rows make 200k draws per sampling test


def chain_moments(betas, noise_scale):
    """Moments of z_0..z_{T−1} given z0 = 1, built only from the transitions.

    z_t = √(1 − β_t) z_{t−1} + F √β_t ε_t with z_{−1} = z0, so E[z_t] = c_t z0 with
    c_t = √(1 − β_t) c_{t−1}, and the covariance follows the same linear recursion.
    Index −1 (stored last) is z0 itself: coefficient 1, variance 0.
    """
    betas = [float(b) for b in betas]
    n = len(betas)
    coef = [0.0] * n + [1.0]
    cov = [[0.0] * (n + 1) for _ in range(n + 1)]
    for t, beta in enumerate(betas):
        a = math.sqrt(1 - beta)
        coef[t] = a * coef[t - 1]
        cov[t][t] = a * a * cov[t - 1][t - 1] + noise_scale**2 * beta
        for s in range(t):
            cov[s][t] = cov[t][s] = a * cov[s][t - 1]
    return coef, cov


def conditional(coef, cov, a, b, z0, z_b):
    """Mean and variance of z_a given z_b (and z0) by Gaussian conditioning."""
    gain = cov[a][b] / cov[b][b]
    mean = coef[a] * z0 + gain * (z_b - coef[b] * z0)
    return mean, cov[a][a] - gain * cov[a][b]


def posterior_by_quadrature(diffusion, t, z0, z_t, points=4001):
    """Mean and variance of q(z_{t−1} | z_t, z0) ∝ q(z_t | z_{t−1}) q(z_{t−1} | z0), the product
    of the two Gaussian densities evaluated on a grid and normalised numerically."""
    ac, ac_prev = float(diffusion.alphas_cumprod[t]), float(diffusion.alphas_cumprod[t - 1])
    f2 = diffusion.noise_scale**2
    prior_mean, prior_var = math.sqrt(ac_prev) * z0, f2 * (1 - ac_prev)
    gain, step_var = math.sqrt(ac / ac_prev), f2 * (1 - ac / ac_prev)

    def log_density(z):
        return -(z - prior_mean) ** 2 / (2 * prior_var) - (z_t - gain * z) ** 2 / (2 * step_var)

    # The product peaks between the prior mean and z_t / gain, with a spread below either's.
    spread = math.sqrt(min(prior_var, step_var / gain**2))
    low, high = sorted([prior_mean, z_t / gain])
    coarse = torch.linspace(low - spread, high + spread, 100_001, dtype=torch.float64)
    peak = float(coarse[log_density(coarse).argmax()])
    grid = torch.linspace(peak - 12 * spread, peak + 12 * spread, points, dtype=torch.float64)
    weights = (log_density(grid) - log_density(grid).max()).exp()
    weights = weights / weights.sum()
    mean = float((weights * grid).sum())
    return mean, float((weights * (grid - mean) ** 2).sum())


def rows(values):
    """A [len(values), NUM_SAMPLES] float64 batch whose row i is constant values[i]."""
    return torch.tensor(values, dtype=torch.float64).unsqueeze(1).expand(-1, NUM_SAMPLES)


def betas_from_cumprod(alphas_cumprod):
    prev = [1.0] + [float(x) for x in alphas_cumprod[:-1]]
    return [1 - float(x) / p for x, p in zip(alphas_cumprod, prev)]


# --- schedules ---------------------------------------------------------------------------


# ᾱ(s) at points where the schedule's definition gives a round number.
KNOWN_POINTS = {
    # Diffusion-LM's sqrt schedule, ᾱ(s) = 1 − √(s + 0.0001)
    "sqrt": {0.0: 0.99, 0.0099: 0.9, 0.2499: 0.5, 0.6399: 0.2, 0.9999: 0.0},
    # variance-preserving SDE with β(s) = 0.1 + 19.9 s: ᾱ(s) = exp(−∫_0^s β) (∫_0^½ β = 2.5375)
    "linear": {0.0: 1.0, 0.5: math.exp(-2.5375), 1.0: math.exp(-10.05)},
    # cos²(((s + 0.008) / 1.008) · π/2): the angle is π/6, π/4, π/3, π/2 at these s
    "cosine": {0.328: 0.75, 0.496: 0.5, 0.664: 0.25, 1.0: 0.0},
}


@pytest.mark.parametrize("name", NOISE_SCHEDULES)
def test_alpha_bar_at_known_points(name):
    points = KNOWN_POINTS[name]
    values = alpha_bar(name, torch.tensor(list(points), dtype=torch.float64))
    torch.testing.assert_close(values, torch.tensor(list(points.values()), dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)


def test_linear_schedule_has_a_linear_beta():
    """β(s) = −d log ᾱ / ds grows linearly from β_min = 0.1 to β_max = 20 (central differences)."""
    s = torch.linspace(0.05, 0.95, 10, dtype=torch.float64)
    h = 1e-5
    beta = -(alpha_bar("linear", s + h).log() - alpha_bar("linear", s - h).log()) / (2 * h)
    torch.testing.assert_close(beta, 0.1 + 19.9 * s, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", NOISE_SCHEDULES)
def test_discrete_schedule_starts_near_one_and_ends_near_zero(name):
    diffusion = GaussianDiffusion.from_schedule(name, 2000)
    assert 0.98 < diffusion.alphas_cumprod[0] < 1 and diffusion.alphas_cumprod[-1] < 1e-4
    assert (diffusion.alphas_cumprod.diff() < 0).all()


@pytest.mark.parametrize("name", NOISE_SCHEDULES)
@pytest.mark.parametrize("num_steps", [1, 10, 2000])
def test_betas_bounded_and_alpha_bar_decreasing(name, num_steps):
    betas = betas_for_schedule(name, num_steps)
    assert betas.dtype == torch.float64 and betas.shape == (num_steps,)
    assert (betas > 0).all() and (betas <= 0.999).all()
    assert (torch.cumprod(1 - betas, 0).diff() < 0).all()


@pytest.mark.parametrize("name", NOISE_SCHEDULES)
def test_products_of_betas_reproduce_alpha_bar(name):
    num_steps = 2000
    betas = betas_for_schedule(name, num_steps)
    clipped = (betas >= 0.999).nonzero()
    end = int(clipped[0]) if len(clipped) else num_steps
    # sqrt's ᾱ(1) = 1 − √1.0001 < 0 forces a clip at the last step; nothing before it clips.
    assert end >= num_steps - 1
    # Π(1 − β) telescopes to ᾱ((t+1)/T) / ᾱ(0); ᾱ(0) < 1 for sqrt and cosine.
    s = torch.arange(1, end + 1, dtype=torch.float64) / num_steps
    expected = alpha_bar(name, s) / alpha_bar(name, torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(torch.cumprod(1 - betas[:end], 0), expected, rtol=1e-9, atol=1e-12)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match="sqrt, linear, cosine"):
        alpha_bar("quadratic", torch.zeros(1))
    with pytest.raises(ValueError):
        betas_for_schedule("sqrt", 0)


@pytest.mark.parametrize("factor", [1.0, 2.0, 4.0])
def test_vp_rescale_matches_scaled_noise_snr(factor):
    alphas_cumprod = torch.cumprod(1 - betas_for_schedule("sqrt", 2000), 0)
    rescaled = vp_rescale(alphas_cumprod, factor)
    torch.testing.assert_close(
        rescaled / (1 - rescaled),
        alphas_cumprod / (factor**2 * (1 - alphas_cumprod)),
        rtol=1e-10,
        atol=0,
    )
    assert (rescaled > 0).all() and (rescaled < 1).all() and (rescaled.diff() < 0).all()
    if factor == 1.0:
        torch.testing.assert_close(rescaled, alphas_cumprod, rtol=1e-15, atol=0)


# --- construction --------------------------------------------------------------------------


def test_from_schedule_rescaling_forms():
    scaled = GaussianDiffusion.from_schedule("sqrt", 100, rescaling_factor=3.0)
    vp = GaussianDiffusion.from_schedule("sqrt", 100, rescaling_factor=3.0, vp_rf=True)
    assert scaled.noise_scale == 3.0 and vp.noise_scale == 1.0
    assert scaled.num_timesteps == vp.num_timesteps == 100
    assert torch.equal(scaled.timestep_map, torch.arange(100))
    torch.testing.assert_close(scaled.betas, betas_for_schedule("sqrt", 100), rtol=1e-9, atol=0)
    torch.testing.assert_close(
        vp.alphas_cumprod / (1 - vp.alphas_cumprod),
        scaled.alphas_cumprod / (9 * (1 - scaled.alphas_cumprod)),
        rtol=1e-10,
        atol=0,
    )
    # Both forms give the same z_t up to a per-step scale: ᾱ' = ᾱ / (ᾱ + F² (1 − ᾱ)).
    z0, noise = torch.randn(2, 4, 8, dtype=torch.float64)
    t = torch.tensor([0, 5, 50, 99])
    ac = scaled.alphas_cumprod[t].unsqueeze(1)
    torch.testing.assert_close(
        vp.q_sample(z0, t, noise), scaled.q_sample(z0, t, noise) / (ac + 9 * (1 - ac)).sqrt()
    )


def test_invalid_construction_raises():
    with pytest.raises(ValueError, match="num_steps"):
        GaussianDiffusion.from_schedule("sqrt", 0)
    with pytest.raises(ValueError, match="--rescaling-factor must be ≥ 1"):
        GaussianDiffusion.from_schedule("sqrt", 10, rescaling_factor=0.5)
    with pytest.raises(ValueError, match="sqrt, linear, cosine"):
        GaussianDiffusion.from_schedule("quadratic", 10)
    for bad in ([0.9, 0.95], [1.0, 0.5], [0.5, 0.0], []):
        with pytest.raises(ValueError, match="alphas_cumprod"):
            GaussianDiffusion(torch.tensor(bad, dtype=torch.float64))
    with pytest.raises(ValueError, match="timestep_map"):
        GaussianDiffusion(torch.tensor([0.9, 0.5]), timestep_map=torch.tensor([3]))


# --- forward process -----------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1.0, 4.0])
def test_q_sample_moments(factor):
    """q(z_t | z0) = N(√ᾱ_t z0, F² (1 − ᾱ_t)), sampled. With T = 10,000 sqrt steps,
    ᾱ_t = ᾱ((t+1)/T) / ᾱ(0) is (1 − √(t+1)/100 + …) / 0.99: 0.9/0.99, 0.5/0.99 and 0.2/0.99 at
    t = 98, 2498 and 6398 (√0.01, √0.25, √0.64)."""
    torch.manual_seed(0)
    diffusion = GaussianDiffusion.from_schedule("sqrt", 10_000, rescaling_factor=factor)
    t = torch.tensor([98, 2498, 6398, 6398])
    alpha_bar_t = torch.tensor([0.9, 0.5, 0.2, 0.2], dtype=torch.float64) / 0.99
    z0 = rows([0.5, -1.0, 2.0, 0.0])
    expected_mean = alpha_bar_t.sqrt() * z0[:, 0]
    expected_var = factor**2 * (1 - alpha_bar_t)

    mean, var = diffusion.q_mean_variance(z0, t)
    torch.testing.assert_close(mean[:, 0], expected_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(var[:, 0], expected_var, rtol=1e-12, atol=1e-12)
    assert var.shape == z0.shape

    samples = diffusion.q_sample(z0, t)
    # 5 standard errors on the mean; the variance estimate has relative s.e. √(2/n) ≈ 0.6%.
    standard_error = (expected_var / NUM_SAMPLES).sqrt()
    assert ((samples.mean(1) - expected_mean).abs() <= 5 * standard_error).all()
    torch.testing.assert_close(samples.var(1), expected_var, rtol=0.04, atol=0)


# --- posterior -----------------------------------------------------------------------------


@pytest.mark.parametrize("vp_rf", [False, True])
@pytest.mark.parametrize("factor", [1.0, 4.0])
def test_posterior_by_conditioning_and_by_quadrature(factor, vp_rf):
    """q(z_{t−1} | z_t, z0) twice, from the forward transitions alone: conditioning the joint
    Gaussian of the chain, and the product q(z_t | z_{t−1}) q(z_{t−1} | z0) integrated on a grid."""
    num_steps = 60
    diffusion = GaussianDiffusion.from_schedule("sqrt", num_steps, factor, vp_rf=vp_rf)
    if vp_rf:
        alphas_cumprod = torch.cumprod(1 - betas_for_schedule("sqrt", num_steps), 0)
        betas = betas_from_cumprod(vp_rescale(alphas_cumprod, factor))
    else:
        betas = [float(b) for b in betas_for_schedule("sqrt", num_steps)]
    noise_scale = diffusion.noise_scale
    coef, cov = chain_moments(betas, noise_scale)

    z0, z_t = torch.tensor([[0.7], [-0.4]], dtype=torch.float64)
    for t in range(num_steps):
        mean, var, log_var = diffusion.q_posterior_mean_variance(z0, z_t, torch.tensor([t]))
        brute_mean, brute_var = conditional(coef, cov, t - 1, t, 0.7, -0.4)
        assert mean.item() == pytest.approx(brute_mean, rel=1e-8, abs=1e-12)
        assert var.item() == pytest.approx(brute_var, rel=1e-8, abs=1e-12)
        if t > 0:
            assert log_var.item() == pytest.approx(math.log(var.item()), rel=1e-9)
            numeric_mean, numeric_var = posterior_by_quadrature(diffusion, t, 0.7, -0.4)
            assert mean.item() == pytest.approx(numeric_mean, rel=1e-6, abs=1e-9)
            assert var.item() == pytest.approx(numeric_var, rel=1e-6)
    # z_{−1} = z0 exactly: zero variance, mean z0, and a finite clipped log-variance.
    assert diffusion.posterior_variance[0] == 0
    assert torch.isfinite(diffusion.posterior_log_variance_clipped).all()


def test_p_sample_moments():
    torch.manual_seed(1)
    factor = 4.0
    diffusion = GaussianDiffusion.from_schedule("linear", 100, rescaling_factor=factor)
    coef, cov = chain_moments(betas_for_schedule("linear", 100), factor)
    t = torch.tensor([0, 1, 40, 99])
    z_t, z0_hat = rows([1.5, -0.5, 2.0, -3.0]), rows([0.2, 0.8, -1.0, 0.5])
    samples = diffusion.p_sample(z_t, z0_hat, t)

    # At t = 0 no noise is added and the posterior mean is ẑ0 itself.
    torch.testing.assert_close(samples[0], z0_hat[0])
    for row in range(1, 4):
        step = int(t[row])
        z0_value, z_t_value = float(z0_hat[row, 0]), float(z_t[row, 0])
        mean, var = conditional(coef, cov, step - 1, step, z0_value, z_t_value)
        assert abs(samples[row].mean().item() - mean) <= 5 * math.sqrt(var / NUM_SAMPLES)
        assert samples[row].var().item() == pytest.approx(var, rel=0.04)


def test_outputs_follow_input_dtype():
    diffusion = GaussianDiffusion.from_schedule("sqrt", 50, rescaling_factor=2.0)
    z0, z_t, t = torch.randn(3, 5, 4), torch.randn(3, 5, 4), torch.tensor([0, 7, 49])
    assert diffusion.q_sample(z0, t).dtype == torch.float32
    assert all(x.dtype == torch.float32 for x in diffusion.q_mean_variance(z0, t))
    assert all(x.shape == z_t.shape for x in diffusion.q_posterior_mean_variance(z0, z_t, t))
    assert diffusion.p_sample(z_t, z0, t).dtype == torch.float32


# --- respacing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_train_steps,num_steps",
    [(2000, 20), (2000, 2000), (2000, 1999), (2000, 2), (2000, 1), (100, 7), (10, 9), (1, 1)],
)
def test_spaced_timesteps(num_train_steps, num_steps):
    steps = spaced_timesteps(num_train_steps, num_steps)
    assert steps.dtype == torch.long and len(steps) == num_steps
    assert (steps.diff() > 0).all()
    assert steps[-1] == num_train_steps - 1
    if num_steps > 1:
        assert steps[0] == 0
        ideal = torch.arange(num_steps) * (num_train_steps - 1) / (num_steps - 1)
        assert ((steps - ideal).abs() <= 0.5).all()
        assert steps.diff().max() - steps.diff().min() <= 1


@pytest.mark.parametrize("num_train_steps,num_steps", [(10, 0), (10, 11), (1, 2)])
def test_spaced_timesteps_rejects_bad_counts(num_train_steps, num_steps):
    with pytest.raises(ValueError):
        spaced_timesteps(num_train_steps, num_steps)


@pytest.mark.parametrize("factor", [1.0, 4.0])
def test_respace_keeps_alpha_bar_and_matches_original_chain(factor):
    num_train_steps = 80
    original = GaussianDiffusion.from_schedule("sqrt", num_train_steps, rescaling_factor=factor)
    spaced = original.respace(9)
    kept = spaced_timesteps(num_train_steps, 9)
    assert spaced.num_timesteps == 9 and spaced.noise_scale == factor
    assert torch.equal(spaced.timestep_map, kept)
    torch.testing.assert_close(spaced.alphas_cumprod, original.alphas_cumprod[kept])
    prev = torch.cat([torch.ones(1, dtype=torch.float64), original.alphas_cumprod[kept[:-1]]])
    torch.testing.assert_close(spaced.betas, 1 - original.alphas_cumprod[kept] / prev)

    # Each respaced step is the original chain conditioned between consecutive kept steps.
    coef, cov = chain_moments(betas_for_schedule("sqrt", num_train_steps), factor)
    z0, z_t = torch.tensor([[1.3], [0.6]], dtype=torch.float64)
    for k in range(9):
        prev_step = int(kept[k - 1]) if k > 0 else -1
        mean, var, _ = spaced.q_posterior_mean_variance(z0, z_t, torch.tensor([k]))
        brute_mean, brute_var = conditional(coef, cov, prev_step, int(kept[k]), 1.3, 0.6)
        assert mean.item() == pytest.approx(brute_mean, rel=1e-8, abs=1e-12)
        assert var.item() == pytest.approx(brute_var, rel=1e-8, abs=1e-12)


def test_respace_to_all_steps_is_identity():
    original = GaussianDiffusion.from_schedule("cosine", 50, rescaling_factor=2.0)
    same = original.respace(50)
    for name in [
        "timestep_map", "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
        "posterior_mean_coef1", "posterior_mean_coef2",
    ]:
        assert torch.equal(getattr(same, name), getattr(original, name)), name
    assert same.num_timesteps == 50 and same.noise_scale == 2.0


def test_respace_composes_and_single_step_decodes_to_prediction():
    original = GaussianDiffusion.from_schedule("sqrt", 100)
    twice = original.respace(20).respace(5)
    assert torch.equal(twice.timestep_map, spaced_timesteps(100, 20)[spaced_timesteps(20, 5)])
    torch.testing.assert_close(twice.alphas_cumprod, original.alphas_cumprod[twice.timestep_map])

    one = original.respace(1)
    assert torch.equal(one.timestep_map, torch.tensor([99]))
    assert torch.isfinite(one.posterior_log_variance_clipped).all()
    z_t, z0_hat = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(one.p_sample(z_t, z0_hat, torch.zeros(2, dtype=torch.long)), z0_hat)


@pytest.mark.parametrize("num_steps", [0, 101])
def test_respace_rejects_bad_counts(num_steps):
    with pytest.raises(ValueError, match="num_steps"):
        GaussianDiffusion.from_schedule("sqrt", 100).respace(num_steps)
