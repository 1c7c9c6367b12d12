"""Gaussian diffusion over token embeddings, with noise rescaling and step respacing.

The forward process, with noise scale F ≥ 1, is

    q(z_t | z_{t−1}) = N(√(1 − β_t) z_{t−1}, F² β_t I),
    q(z_t | z0)      = N(√ᾱ_t z0, F² (1 − ᾱ_t) I).

All schedule quantities are computed once in float64 at construction, held as buffers that
follow the model's device (``.to()``, ``.cuda()``) but keep float64 under ``.half()`` /
``.bfloat16()``, and are gathered per batch element and cast to the input's dtype when used.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..errors import DifformerError
from .schedules import betas_for_schedule, vp_rescale


def check_rescaling_factor(factor: float, flag: str = "--rescaling-factor") -> None:
    """Refuse a noise rescaling factor F < 1 (less noise than the plain process), naming ``flag``."""
    if factor < 1:
        raise DifformerError(
            f"{flag} must be ≥ 1 (got {factor}); F = 1 is plain DDPM noise, the paper's recipes use 4"
        )


def spaced_timesteps(num_train_steps: int, num_steps: int) -> Tensor:
    """N = ``num_steps`` distinct timesteps evenly spaced over 0..T−1, ascending.

    s_k = round(k (T − 1) / (N − 1)) for k = 0..N−1, so 0 and T − 1 are always kept; the
    spacing (T − 1)/(N − 1) ≥ 1 makes the rounded values distinct. For N = 1: [T − 1].
    """
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(
            f"num_steps must be between 1 and the number of training steps ({num_train_steps}), "
            f"got {num_steps}"
        )
    if num_steps == 1:
        return torch.tensor([num_train_steps - 1], dtype=torch.long)
    positions = torch.linspace(0, num_train_steps - 1, num_steps, dtype=torch.float64)
    return positions.round().long()


def training_timesteps(n: int, num_train_steps: int, device, spaced_prob: float = 0.0,
                       spaced_steps: int = 5) -> Tensor:
    """n training timesteps: t ~ Uniform{0 … T−1}, except that with probability p = ``spaced_prob``
    a sentence's t is s_k, k ~ Uniform{0 … N−1}, one of the N = ``spaced_steps`` timesteps an N-step
    decoding visits (:func:`spaced_timesteps`). p = 0 is the paper's uniform sampling; p > 0 spends
    part of the training on the noise levels a short decoding meets."""
    t = torch.randint(0, num_train_steps, (n,), device=device)
    if spaced_prob > 0:
        grid = spaced_timesteps(num_train_steps, spaced_steps).to(device)
        on_grid = torch.rand(n, device=device) < spaced_prob
        t = torch.where(on_grid, grid[torch.randint(0, len(grid), (n,), device=device)], t)
    return t


class Float64Schedule(nn.Module):
    """A parameter-free module whose buffers are schedule quantities in float64 (and long
    indices): ``.to(device)`` / ``.cuda()`` move them, no cast changes their dtype (a model's
    ``.half()`` would otherwise round ᾱ near 1 and 0, where the posterior divides by 1 − ᾱ)."""

    def _apply(self, fn, recurse=True):
        if recurse:
            for module in self.children():
                module._apply(fn)
        if self._buffers:
            device = fn(next(iter(self._buffers.values()))[:0]).device
            for name, buffer in self._buffers.items():
                self._buffers[name] = buffer.to(device)
        return self


class GaussianDiffusion(Float64Schedule):
    """The noise process: forward sampling q(z_t | z0) and the posterior q(z_{t−1} | z_t, z0).

    Args:
        alphas_cumprod: ᾱ_t for t = 0..T−1 (1-D, strictly decreasing, in (0, 1)).
        noise_scale: F, the factor on the noise standard deviation.
        timestep_map: the original training timestep of each step (``arange(T)`` if omitted);
            step t of a respaced process is fed to the model as ``timestep_map[t]``.

    Timesteps ``t`` passed to the methods index this process's steps (0..T−1). The process is a
    parameter-free ``nn.Module`` so that a model holding it moves it with itself; its buffers are
    not saved in checkpoints (they are rebuilt from the model's options).
    """

    def __init__(
        self,
        alphas_cumprod: Tensor,
        noise_scale: float = 1.0,
        timestep_map: Optional[Tensor] = None,
    ):
        super().__init__()
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        if alphas_cumprod.dim() != 1 or alphas_cumprod.numel() == 0:
            raise ValueError("alphas_cumprod must be a non-empty 1-D tensor")
        # β_t > 0 and 1 − ᾱ_t > 0 (a divisor below) need a strictly decreasing ᾱ inside (0, 1).
        in_range = (alphas_cumprod > 0).all() and (alphas_cumprod < 1).all()
        if not (in_range and (alphas_cumprod.diff() < 0).all()):
            raise ValueError("alphas_cumprod must be strictly decreasing with values in (0, 1)")
        if noise_scale <= 0:
            raise ValueError(f"noise_scale must be positive, got {noise_scale}")
        self.num_timesteps = alphas_cumprod.numel()
        if timestep_map is None:
            timestep_map = torch.arange(self.num_timesteps, device=alphas_cumprod.device)
        timestep_map = torch.as_tensor(timestep_map, dtype=torch.long, device=alphas_cumprod.device)
        if timestep_map.shape != alphas_cumprod.shape:
            raise ValueError("timestep_map must have one entry per timestep")
        self.noise_scale = float(noise_scale)
        f2 = self.noise_scale**2
        self.register_buffer("timestep_map", timestep_map, persistent=False)

        alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
        betas = 1.0 - alphas_cumprod / alphas_cumprod_prev
        posterior_variance = f2 * betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        # The posterior variance is 0 at t = 0, so its log takes the t = 1 value there (as in
        # improved-diffusion); a one-step process has no t = 1 and falls back to F² β_0.
        first = posterior_variance[1:2] if self.num_timesteps > 1 else f2 * betas[:1]
        schedule = {
            #: ᾱ_t
            "alphas_cumprod": alphas_cumprod,
            #: ᾱ_{t−1}, with ᾱ_{−1} = 1
            "alphas_cumprod_prev": alphas_cumprod_prev,
            #: β_t = 1 − ᾱ_t / ᾱ_{t−1}
            "betas": betas,
            #: √ᾱ_t
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            #: √(1 − ᾱ_t)
            "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
            #: Var q(z_{t−1} | z_t, z0) = F² β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)
            "posterior_variance": posterior_variance,
            #: log Var q(z_{t−1} | z_t, z0), with the t = 0 entry clipped away from log 0
            "posterior_log_variance_clipped": torch.cat([first, posterior_variance[1:]]).log(),
            #: coefficient of z0 in the posterior mean: β_t √ᾱ_{t−1} / (1 − ᾱ_t)
            "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
            #: coefficient of z_t in the posterior mean: (1 − ᾱ_{t−1}) √(1 − β_t) / (1 − ᾱ_t)
            "posterior_mean_coef2": (
                (1.0 - alphas_cumprod_prev) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod)
            ),
        }
        for name, values in schedule.items():
            self.register_buffer(name, values, persistent=False)

    def model_timesteps(self, t: Tensor) -> Tensor:
        """The training-schedule timestep the model is fed for each step t of this process."""
        return self.timestep_map[t]

    @classmethod
    def from_schedule(
        cls,
        name: str,
        num_steps: int,
        rescaling_factor: float = 1.0,
        vp_rf: bool = False,
    ) -> "GaussianDiffusion":
        """Process with the named schedule over ``num_steps`` steps and noise rescaling F.

        With ``vp_rf`` the cumulative product is rescaled, ᾱ' = ᾱ / (F² − (F² − 1) ᾱ), and
        the noise kept at unit scale; otherwise the noise is scaled by F.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        check_rescaling_factor(rescaling_factor)
        alphas_cumprod = torch.cumprod(1.0 - betas_for_schedule(name, num_steps), dim=0)
        if vp_rf:
            return cls(vp_rescale(alphas_cumprod, rescaling_factor), noise_scale=1.0)
        return cls(alphas_cumprod, noise_scale=rescaling_factor)

    def q_mean_variance(self, z0: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Mean √ᾱ_t z0 and variance F² (1 − ᾱ_t) of q(z_t | z0), both shaped like z0."""
        mean = _gather(self.sqrt_alphas_cumprod, t, z0) * z0
        variance = self.noise_scale**2 * _gather(1.0 - self.alphas_cumprod, t, z0)
        return mean, variance.expand_as(z0)

    def q_sample(self, z0: Tensor, t: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        """Sample z_t = √ᾱ_t z0 + F √(1 − ᾱ_t) ε, ε ~ N(0, I) (``noise`` if given)."""
        if noise is None:
            noise = torch.randn_like(z0)
        return (
            _gather(self.sqrt_alphas_cumprod, t, z0) * z0
            + self.noise_scale * _gather(self.sqrt_one_minus_alphas_cumprod, t, z0) * noise
        )

    def q_posterior_mean_variance(
        self, z0: Tensor, z_t: Tensor, t: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log-variance of q(z_{t−1} | z_t, z0), shaped like z_t.

        mean = coef1_t z0 + coef2_t z_t, variance = F² β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).
        """
        mean = (
            _gather(self.posterior_mean_coef1, t, z_t) * z0
            + _gather(self.posterior_mean_coef2, t, z_t) * z_t
        )
        variance = _gather(self.posterior_variance, t, z_t).expand_as(z_t)
        log_variance = _gather(self.posterior_log_variance_clipped, t, z_t).expand_as(z_t)
        return mean, variance, log_variance

    def p_sample(
        self, z_t: Tensor, z0_hat: Tensor, t: Tensor, noise: Optional[Tensor] = None
    ) -> Tensor:
        """Sample z_{t−1} ~ q(z_{t−1} | z_t, ẑ0); at t = 0 return the mean, which is ẑ0."""
        if noise is None:
            noise = torch.randn_like(z_t)
        mean, _, log_variance = self.q_posterior_mean_variance(z0_hat, z_t, t)
        nonzero = (t != 0).to(z_t.dtype).view(-1, *([1] * (z_t.dim() - 1)))
        return mean + nonzero * torch.exp(0.5 * log_variance) * noise

    def respace(self, num_steps: int) -> "GaussianDiffusion":
        """Process over ``num_steps`` evenly spaced steps s_0 < … < s_{N−1} of this one
        (:func:`spaced_timesteps`, then :meth:`respace_to`)."""
        return self.respace_to(spaced_timesteps(self.num_timesteps, num_steps))

    def respace_to(self, kept) -> "GaussianDiffusion":
        """Process over the given steps s_0 < … < s_{N−1} of this one (any order in, distinct).

        Keeps ᾱ at the kept steps, so β'_k = 1 − ᾱ_{s_k} / ᾱ_{s_{k−1}} (ᾱ_{s_{−1}} = 1),
        and the same noise scale; ``timestep_map`` points at the original training timesteps.
        """
        kept = torch.as_tensor(list(kept), dtype=torch.long).sort().values.to(self.alphas_cumprod.device)
        if kept.numel() == 0 or kept[0] < 0 or kept[-1] >= self.num_timesteps or (kept.diff() == 0).any():
            raise ValueError(f"the kept steps must be distinct steps of 0..{self.num_timesteps - 1}, "
                             f"got {kept.tolist()}")
        return GaussianDiffusion(
            self.alphas_cumprod[kept],
            noise_scale=self.noise_scale,
            timestep_map=self.timestep_map[kept],
        )


def _gather(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """values[t] (gathered in float64, where the process and ``t`` live) cast to ``like``'s
    dtype, shaped [B, 1, …, 1] to broadcast."""
    return values[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))
