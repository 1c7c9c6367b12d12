"""Noise schedules for embedding diffusion.

Each schedule is a continuous signal level ᾱ(s) on s = t/T ∈ [0, 1]; the discrete
process over T steps is derived from it through per-step betas (see
:func:`betas_for_schedule`).
"""

import math

import torch
from torch import Tensor

NOISE_SCHEDULES = ("sqrt", "linear", "cosine")

# Continuous-form linear schedule: β(s) goes linearly from β_min to β_max.
LINEAR_BETA_MIN = 0.1
LINEAR_BETA_MAX = 20.0

# Largest per-step beta; keeps 1 − β_t away from 0 where ᾱ(s) reaches (or crosses) 0 at s = 1.
MAX_BETA = 0.999


def alpha_bar(name: str, s: Tensor) -> Tensor:
    """Continuous cumulative signal level ᾱ(s) of schedule ``name`` at s ∈ [0, 1].

    - ``sqrt`` (Diffusion-LM):  ᾱ(s) = 1 − √(s + 1e-4)
    - ``linear`` (continuous):  ᾱ(s) = exp(−(β_max − β_min)/2 · s² − β_min · s),
      β_min = 0.1, β_max = 20
    - ``cosine``:               ᾱ(s) = cos²(((s + 0.008) / 1.008) · π/2)
    """
    if name == "sqrt":
        return 1.0 - torch.sqrt(s + 1e-4)
    if name == "linear":
        return torch.exp(-0.5 * (LINEAR_BETA_MAX - LINEAR_BETA_MIN) * s**2 - LINEAR_BETA_MIN * s)
    if name == "cosine":
        return torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    raise ValueError(f"unknown noise schedule {name!r}; choose one of {', '.join(NOISE_SCHEDULES)}")


def betas_for_schedule(name: str, num_steps: int) -> Tensor:
    """Per-step betas of schedule ``name`` discretised into T = ``num_steps`` steps.

    β_t = min(1 − ᾱ((t+1)/T) / ᾱ(t/T), 0.999) for t = 0..T−1, so that away from the clip
    Π_{i≤t} (1 − β_i) = ᾱ((t+1)/T) / ᾱ(0). Returns a float64 tensor of shape [T].
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    s = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    levels = alpha_bar(name, s)
    return (1.0 - levels[1:] / levels[:-1]).clamp(max=MAX_BETA)


def vp_rescale(alphas_cumprod: Tensor, factor: float) -> Tensor:
    """Variance-preserving noise rescaling ("vp-rf") of a discrete cumulative product.

    ᾱ'_t = ᾱ_t / (F² − (F² − 1) ᾱ_t), which keeps unit-variance noise while matching the
    signal-to-noise ratio of noise scaled by F: ᾱ'/(1 − ᾱ') = ᾱ / (F² (1 − ᾱ)).
    """
    f2 = factor**2
    return alphas_cumprod / (f2 - (f2 - 1.0) * alphas_cumprod)
