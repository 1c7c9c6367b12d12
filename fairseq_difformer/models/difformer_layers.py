"""The small building blocks of the Difformer decoder input.

    h = LatentInput(z_t, ẑ0_prev) + TimeMLP(sinusoid(t')) + position embedding

Which :class:`LatentInput` is used (no self-conditioning, concatenation before or after the
latent→model projection) is decided once, when the decoder is built. The small MLPs use the
model's ``--activation-fn`` (ReLU by default) and their layout follows the original Difformer code,
so that its checkpoints convert by renaming alone (``difformer-convert-checkpoint``).
"""

import math

import torch
from fairseq import utils
from torch import nn


class Activation(nn.Module):
    """fairseq's ``--activation-fn`` as a module (``relu``, ``gelu``, ``tanh``, ``linear``, …)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        # fairseq's "swish" entry returns the nn.SiLU class instead of a function.
        self.fn = torch.nn.functional.silu if name == "swish" else utils.get_activation_fn(name)

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.name


def feed_forward(in_dim: int, hidden_dim: int, out_dim: int, activation: str, dropout: float = 0.0):
    """Linear(in → hidden) → activation → Linear(hidden → out) → dropout, as an ``nn.Sequential``
    (indices 0 and 2 hold the weights)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), Activation(activation), nn.Linear(hidden_dim, out_dim),
        nn.Dropout(dropout),
    )


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding of (possibly fractional) timesteps, [B] → [B, dim].

    emb = [cos(t · ω_i), sin(t · ω_i)],  ω_i = max_period^(−i / (dim/2)),  i = 0 … dim/2 − 1
    (zero-padded by one column when dim is odd).
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    """TimeMLP(sinusoid(t')): d → 4d → d with the model's activation.

    The sinusoid is computed in float32 (t' reaches 1000, beyond half precision's integer range)
    and cast to the MLP's dtype, so the module runs under ``--fp16`` / ``--bf16`` as well."""

    def __init__(self, dim: int, activation: str = "relu"):
        super().__init__()
        self.dim = dim
        self.ffn = feed_forward(dim, 4 * dim, dim, activation)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        sinusoid = timestep_embedding(timesteps, self.dim)
        return self.ffn(sinusoid.to(self.ffn[0].weight.dtype))


class LatentInput(nn.Module):
    """No self-conditioning: h = P_in · z_t (bias-free projection d_latent → d_model)."""

    def __init__(self, latent_dim: int, model_dim: int):
        super().__init__()
        self.project_in = nn.Linear(latent_dim, model_dim, bias=False)

    def forward(self, z_t: torch.Tensor, z0_prev: torch.Tensor) -> torch.Tensor:
        return self.project_in(z_t)


class SelfCondAfterProjection(LatentInput):
    """Self-conditioning after the projection: h = MLP([P_in z_t ; P_in ẑ0_prev]), MLP 2d → d → d
    (with dropout on its output)."""

    def __init__(self, latent_dim: int, model_dim: int, activation: str, dropout: float):
        super().__init__(latent_dim, model_dim)
        self.self_cond_proj = feed_forward(2 * model_dim, model_dim, model_dim, activation, dropout)

    def forward(self, z_t, z0_prev):
        return self.self_cond_proj(torch.cat([self.project_in(z_t), self.project_in(z0_prev)], dim=-1))


class SelfCondBeforeProjection(LatentInput):
    """Self-conditioning before the projection: h = P_in · MLP([z_t ; ẑ0_prev]), MLP 2k → k → k
    in the latent width k (with dropout on its output)."""

    def __init__(self, latent_dim: int, model_dim: int, activation: str, dropout: float):
        super().__init__(latent_dim, model_dim)
        self.self_cond_proj = feed_forward(2 * latent_dim, latent_dim, latent_dim, activation, dropout)

    def forward(self, z_t, z0_prev):
        return self.project_in(self.self_cond_proj(torch.cat([z_t, z0_prev], dim=-1)))


def build_latent_input(latent_dim: int, model_dim: int, self_cond: bool, before_proj: bool,
                       activation: str = "relu", dropout: float = 0.0):
    if not self_cond:
        return LatentInput(latent_dim, model_dim)
    if before_proj:
        return SelfCondBeforeProjection(latent_dim, model_dim, activation, dropout)
    return SelfCondAfterProjection(latent_dim, model_dim, activation, dropout)


class ScaledLatentEmbedding(nn.Module):
    """Source-side token input: P_src · (√d_latent · E[w]), presented to fairseq's Transformer
    encoder as an embedding of width d_model (so its positions and layers are built at d_model)."""

    def __init__(self, embed_tokens: nn.Embedding, model_dim: int):
        super().__init__()
        self.embed_tokens = embed_tokens
        latent_dim = embed_tokens.embedding_dim
        self.scale = math.sqrt(latent_dim)
        self.project_in = nn.Linear(latent_dim, model_dim, bias=False)
        self.embedding_dim = model_dim
        self.padding_idx = embed_tokens.padding_idx

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.project_in(self.scale * self.embed_tokens(tokens))


def annealed_causal_mask(length: int, visible: float, like: torch.Tensor) -> torch.Tensor:
    """An additive self-attention mask between the causal and the full one (attention-mask
    annealing; DiffuLLaMA, Gong et al. 2025): M[i, j] = 0 for j ≤ i; for j > i, 0 with probability
    ``visible`` and −inf otherwise, each entry drawn independently from torch's generator.
    ``visible`` = 0 is the AR model's causal mask, 1 full attention. ``length`` × ``length``, in
    ``like``'s dtype and on its device."""
    later = torch.ones(length, length, dtype=torch.bool, device=like.device).triu(1)
    hidden = later & (torch.rand(length, length, device=like.device) >= visible)
    return torch.zeros(length, length, dtype=like.dtype, device=like.device).masked_fill(hidden, float("-inf"))
