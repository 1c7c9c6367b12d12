"""Samplers: how the latents move down a (respaced) diffusion process, given the denoiser's ẑ0.

A sampler runs on a :class:`GaussianDiffusion` with steps k = 0 … N−1 (the respaced process the
generator decodes with). In the general form every process here takes,

    z_k = a_k z0 + σ_k ε,    a_k = √ᾱ_k,    σ_k = F √(1 − ᾱ_k),

with F the process's noise scale (``--rescaling-factor``; under ``--vp-rf`` ᾱ is rescaled and
F = 1), and a_{−1} = 1, σ_{−1} = 0: index −1 is the data itself. Decoding starts from
z_{N−1} ~ N(0, F² I) and visits k = N−1, N−2, …, E (E = early stopping): at each visited k the
denoiser predicts ẑ0 from z_k, and, except at the last visited step, the sampler moves z_k to
z_{k−1}. The words are those of the last ẑ0.

The samplers differ only in that move (``step``); each computes its coefficients once, in float64,
named after the math, and takes the same visited steps (``steps``, ``timesteps``)::

    ddpm          ancestral sampling from the posterior q(z_{k−1} | z_k, ẑ0) (Ho et al.; the paper's)
    ddim          Song et al.'s DDIM: η = 0 deterministic, η = 1 the DDPM posterior
    dpm-solver++  Lu et al.'s DPM-Solver++(2M): multistep, second order, data prediction
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from .gaussian_diffusion import Float64Schedule, GaussianDiffusion


class Sampler(Float64Schedule):
    """The steps a decoding visits on ``diffusion``, and the move from one to the next.

    Args:
        diffusion: the (respaced) process, steps 0 … N−1.
        early_stopping: E, the number of final steps left out: the visited steps are
            N−1, N−2, …, E.
    """

    name = ""

    def __init__(self, diffusion: GaussianDiffusion, early_stopping: int = 0):
        super().__init__()
        num_steps = diffusion.num_timesteps
        if not 0 <= early_stopping < num_steps:
            raise ValueError(f"early_stopping must be in [0, {num_steps}), got {early_stopping}")
        self.diffusion = diffusion
        #: the visited steps k of the process, noisiest first
        self.steps: Tuple[int, ...] = tuple(range(num_steps - 1, early_stopping - 1, -1))
        #: the training timestep the denoiser is fed at each visited step
        self.timesteps: Tuple[int, ...] = tuple(diffusion.timestep_map[list(self.steps)].tolist())

    @property
    def prior_scale(self) -> float:
        """F: decoding starts from z_{N−1} ~ N(0, F² I)."""
        return self.diffusion.noise_scale

    def step(self, z_t: Tensor, z0_hat: Tensor, k: int, z0_hat_prev: Optional[Tensor] = None,
             noise: Optional[Tensor] = None) -> Tensor:
        """z_{k−1} from z_k = ``z_t`` and the denoiser's ẑ0 at step k.

        ``z0_hat_prev``: the denoiser's ẑ0 at step k+1 (None at the first step taken); only
        multistep samplers read it. ``noise``: the standard normal draw of a stochastic sampler
        (drawn from torch's generator if omitted)."""
        raise NotImplementedError


class DDPMSampler(Sampler):
    """Ancestral sampling, z_{k−1} ~ q(z_{k−1} | z_k, ẑ0), the paper's decoding.

    With s = k − 1, a_{k|s} = a_k / a_s and σ²_{k|s} = σ_k² − a²_{k|s} σ_s² (= F² β_k):

        z_s = (a_s σ²_{k|s} / σ_k²) ẑ0 + (a_{k|s} σ_s² / σ_k²) z_k + σ̃_k ξ,
        σ̃_k² = σ²_{k|s} σ_s² / σ_k²,    ξ ~ N(0, I),

    which for σ_k = F √(1 − ᾱ_k) is :meth:`GaussianDiffusion.p_sample` (coefficients
    β_k √ᾱ_s / (1 − ᾱ_k) and √(1 − β_k) (1 − ᾱ_s) / (1 − ᾱ_k), variance F² β_k (1 − ᾱ_s) / (1 − ᾱ_k)).
    At k = 0 it returns ẑ0.
    """

    name = "ddpm"

    def step(self, z_t, z0_hat, k, z0_hat_prev=None, noise=None):
        t = torch.full((z_t.size(0),), k, dtype=torch.long, device=z_t.device)
        return self.diffusion.p_sample(z_t, z0_hat, t, noise)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021) with stochasticity η ∈ [0, 1].

    With s = k − 1, the noise the latent implies, ε̂ = (z_k − a_k ẑ0) / σ_k, is kept in part:

        z_s = a_s ẑ0 + √(σ_s² − c_k²) ε̂ + c_k ξ,    c_k = η σ̃_k,    ξ ~ N(0, I),

    σ̃_k² the DDPM posterior variance (:class:`DDPMSampler`). η = 0 is deterministic (the
    probability-flow ODE's first-order step); η = 1 is the DDPM posterior, mean and variance.
    At k = 0 (a_s = 1, σ_s = 0) it returns ẑ0.
    """

    name = "ddim"

    def __init__(self, diffusion: GaussianDiffusion, early_stopping: int = 0, eta: float = 0.0):
        super().__init__(diffusion, early_stopping)
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        self.eta = float(eta)
        a, sigma, a_prev, sigma_prev = signal_and_noise_levels(diffusion)
        noise_std = self.eta * diffusion.posterior_variance.sqrt()
        # σ_s² − c_k² ≥ 0 for η ≤ 1 (it is a²_{k|s} σ_s⁴ / σ_k² at η = 1); clamp the rounding.
        implied_noise = (sigma_prev**2 - noise_std**2).clamp(min=0).sqrt()
        #: coefficient of ẑ0: a_s − √(σ_s² − c_k²) a_k / σ_k
        self.register_buffer("coef_z0", a_prev - implied_noise * a / sigma, persistent=False)
        #: coefficient of z_k: √(σ_s² − c_k²) / σ_k
        self.register_buffer("coef_z_t", implied_noise / sigma, persistent=False)
        #: c_k = η σ̃_k
        self.register_buffer("noise_std", noise_std, persistent=False)

    def step(self, z_t, z0_hat, k, z0_hat_prev=None, noise=None):
        z_s = _at(self.coef_z0, k, z_t) * z0_hat + _at(self.coef_z_t, k, z_t) * z_t
        if self.eta == 0:
            return z_s
        if noise is None:
            noise = torch.randn_like(z_t)
        return z_s + _at(self.noise_std, k, z_t) * noise


class DPMSolverPlusPlus(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): the diffusion ODE solved in
    λ = log(a / σ) (half the log signal-to-noise ratio) with the model's ẑ0 (data prediction).

    With s = k − 1 and h_k = λ_s − λ_k > 0, first order (the first step taken, and k = 0):

        z_s = (σ_s / σ_k) z_k + a_s (1 − e^{−h_k}) ẑ0_k        (= DDIM with η = 0)

    second order, from the previous step's ẑ0_{k+1} with r_k = h_{k+1} / h_k:

        z_s = (σ_s / σ_k) z_k + a_s (1 − e^{−h_k}) D_k,
        D_k = (1 + 1 / (2 r_k)) ẑ0_k − (1 / (2 r_k)) ẑ0_{k+1}.

    At k = 0 (σ_s = 0, h = ∞) it returns ẑ0_k.
    """

    name = "dpm-solver++"

    def __init__(self, diffusion: GaussianDiffusion, early_stopping: int = 0):
        super().__init__(diffusion, early_stopping)
        a, sigma, a_prev, sigma_prev = signal_and_noise_levels(diffusion)
        log_snr = (a / sigma).log()  # λ_k
        # a_s (1 − e^{−h_k}) with e^{−h_k} = a_k σ_s / (σ_k a_s): finite at k = 0, where σ_s = 0.
        data_coef = a_prev - a * sigma_prev / sigma
        # h_k for k ≥ 1; h_0 = ∞ (the step onto the data) takes the first-order update.
        h = log_snr[:-1] - log_snr[1:]
        r = torch.full_like(log_snr, float("inf"))  # r = ∞: the second-order terms vanish
        r[1:-1] = h[1:] / h[:-1]
        #: coefficient of z_k: σ_s / σ_k
        self.register_buffer("coef_z_t", sigma_prev / sigma, persistent=False)
        #: first order, coefficient of ẑ0_k: a_s (1 − e^{−h_k})
        self.register_buffer("coef_z0", data_coef, persistent=False)
        #: second order, coefficient of ẑ0_k: a_s (1 − e^{−h_k}) (1 + 1 / (2 r_k))
        self.register_buffer("coef_z0_2m", data_coef * (1 + 0.5 / r), persistent=False)
        #: second order, coefficient of ẑ0_{k+1}: −a_s (1 − e^{−h_k}) / (2 r_k)
        self.register_buffer("coef_z0_prev_2m", -data_coef * 0.5 / r, persistent=False)

    def step(self, z_t, z0_hat, k, z0_hat_prev=None, noise=None):
        z_s = _at(self.coef_z_t, k, z_t) * z_t
        if z0_hat_prev is None:
            return z_s + _at(self.coef_z0, k, z_t) * z0_hat
        return z_s + _at(self.coef_z0_2m, k, z_t) * z0_hat + _at(self.coef_z0_prev_2m, k, z_t) * z0_hat_prev


SAMPLERS = {sampler.name: sampler for sampler in (DDPMSampler, DDIMSampler, DPMSolverPlusPlus)}


def build_sampler(name: str, diffusion: GaussianDiffusion, early_stopping: int = 0,
                  eta: Optional[float] = None) -> Sampler:
    """The sampler called ``name`` (a key of :data:`SAMPLERS`) on ``diffusion``; ``eta`` is DDIM's
    (None: 0) and no other sampler's."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name == DDIMSampler.name:
        return DDIMSampler(diffusion, early_stopping, eta=0.0 if eta is None else eta)
    if eta is not None:
        raise ValueError(f"eta is an option of the ddim sampler, not of {name}")
    return SAMPLERS[name](diffusion, early_stopping)


def signal_and_noise_levels(diffusion: GaussianDiffusion) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """a_k = √ᾱ_k, σ_k = F √(1 − ᾱ_k) and the same at s = k − 1 (a_{−1} = 1, σ_{−1} = 0), in
    float64, each of shape [N]."""
    f = diffusion.noise_scale
    a = diffusion.sqrt_alphas_cumprod
    sigma = f * diffusion.sqrt_one_minus_alphas_cumprod
    a_prev = diffusion.alphas_cumprod_prev.sqrt()
    sigma_prev = f * (1.0 - diffusion.alphas_cumprod_prev).sqrt()
    return a, sigma, a_prev, sigma_prev


def _at(values: Tensor, k: int, like: Tensor) -> Tensor:
    """values[k] (float64, where the sampler lives) as a scalar tensor of ``like``'s dtype."""
    return values[k].to(like.dtype)
