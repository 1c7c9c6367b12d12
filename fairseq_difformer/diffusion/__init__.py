"""The embedding-diffusion noise process (plain torch, no fairseq)."""

from .gaussian_diffusion import GaussianDiffusion, check_rescaling_factor, spaced_timesteps
from .schedules import NOISE_SCHEDULES, alpha_bar, betas_for_schedule, vp_rescale

__all__ = [
    "GaussianDiffusion",
    "NOISE_SCHEDULES",
    "alpha_bar",
    "betas_for_schedule",
    "spaced_timesteps",
    "vp_rescale",
]
