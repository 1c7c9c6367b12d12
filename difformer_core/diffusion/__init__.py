"""The embedding-diffusion noise process and its samplers (plain torch, no fairseq)."""

from .gaussian_diffusion import GaussianDiffusion, check_rescaling_factor, spaced_timesteps, training_timesteps
from .samplers import SAMPLERS, Sampler, build_sampler
from .schedules import NOISE_SCHEDULES, alpha_bar, betas_for_schedule, vp_rescale

__all__ = [
    "GaussianDiffusion",
    "NOISE_SCHEDULES",
    "SAMPLERS",
    "Sampler",
    "alpha_bar",
    "betas_for_schedule",
    "build_sampler",
    "spaced_timesteps",
    "training_timesteps",
    "vp_rescale",
]
