"""Classification heads over a frozen denoiser's features (DifFormer, Mukhopadhyay et al.).

A feature is the residual stream after one denoiser layer at one noise level t: B × T × d_model,
with the sentence's padding mask. The heads:

    LinearProbe   logits = W · S(mean_{real positions}(f)) + b               (one layer, one t;
                  S standardises by the training features' running mean and variance)
    FusionHead    for each t: tokens = ⊕_layers [P_l · LN(f_{l,t}) + pos]   (positions joined)
                              c_t = CLS output of a small pre-norm Transformer over [CLS; tokens]
                  logits = W · [c_{t_1}; …; c_{t_K}] + b
                  one layer and one t: the attention head; several: DifFormer
    Feedback      f_late → ReLU(LN(W f_late)), added to an early layer's output (DifFeed)

The projections P_l are per layer and shared across t; the Transformer and its CLS token are
shared across t (the public DiffSSL code's layout).
"""

from typing import List, Sequence

import torch
from torch import nn

from difformer_core.errors import DifformerError


def masked_mean(features: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """mean over the real positions: Σ_i f_i · 1[i real] / #real, B × T × d → B × d."""
    keep = (~padding_mask).unsqueeze(-1).type_as(features)
    return (features * keep).sum(1) / keep.sum(1).clamp(min=1)


class RunningStandardisation(nn.BatchNorm1d):
    """x ↦ (x − μ) / √(σ² + ε), μ and σ² the cumulative averages of the mean and variance of every
    training batch so far (μ_n = μ_{n−1} + (m_n − μ_{n−1}) / n), used in training as at evaluation.

    A BatchNorm standardises a training batch by that batch's own statistics. When the batches
    hold sentences of one length (``--task sentence_prediction_by_length``) those statistics carry
    the length: the probe trains on features with it subtracted and meets it at evaluation. The
    features come from a frozen denoiser, so their distribution does not drift and one running
    average serves. A BatchNorm1d's parameters and state, so checkpoints keep their keys."""

    def __init__(self, dim: int):
        super().__init__(dim, affine=False, momentum=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.size(0) > 1:
            with torch.no_grad():
                self.num_batches_tracked += 1
                nn.functional.batch_norm(x.detach(), self.running_mean, self.running_var, training=True,
                                         momentum=1.0 / float(self.num_batches_tracked), eps=self.eps)
        return nn.functional.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)


class LinearProbe(nn.Module):
    """logits = W · S(mean-pooled feature) + b: the linear-probe baseline, the pooled features
    standardised (S: ``RunningStandardisation``, the mean and variance of the training features,
    as MAE's linear probing standardises with a BatchNorm): the mean-pooled residual streams of two
    sentences differ by little beside what they share, and an unstandardised probe learns that
    difference slowly. S is a fixed affine map at evaluation, so the probe stays linear."""

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__()
        self.norm = RunningStandardisation(feature_dim)
        self.out_proj = nn.Linear(feature_dim, num_classes)

    def forward(self, features: List[List[torch.Tensor]], padding_mask: torch.Tensor) -> torch.Tensor:
        ((feature,),) = features
        return self.out_proj(self.norm(masked_mean(feature, padding_mask)))


class CLSTransformer(nn.Module):
    """A learned CLS token (zero-initialised) before the tokens, ``layers`` pre-norm Transformer
    layers (GELU, MLP 4×) and a final LayerNorm on the CLS output (as ViT's; the public DiffSSL
    head has none, and without it the heads here often sat at chance for epochs); returns B × dim."""

    def __init__(self, dim: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        cls = self.cls.expand(tokens.size(0), -1, -1)
        mask = torch.cat([padding_mask.new_zeros(tokens.size(0), 1), padding_mask], dim=1)
        return self.norm(self.layers(torch.cat([cls, tokens], dim=1), src_key_padding_mask=mask)[:, 0])


class FusionHead(nn.Module):
    """DifFormer: each layer's feature projected (P_l · LN(f) + position), the layers' tokens
    joined along the positions, one CLS Transformer per t (shared weights), the CLS vectors of all
    t concatenated → Linear. With one layer and one t it is the attention head."""

    def __init__(self, feature_dim: int, num_layers: int, num_timesteps: int, num_classes: int,
                 dim: int, layers: int, heads: int, dropout: float, max_positions: int):
        super().__init__()
        self.project = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, dim)) for _ in range(num_layers)
        )
        self.positions = nn.Embedding(max_positions, dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.pool = CLSTransformer(dim, layers, heads, dropout)
        self.out_proj = nn.Linear(num_timesteps * dim, num_classes)

    def forward(self, features: List[List[torch.Tensor]], padding_mask: torch.Tensor) -> torch.Tensor:
        """``features[k][l]``: B × T × d at the k-th timestep and l-th layer."""
        positions = self.positions(torch.arange(padding_mask.size(1), device=padding_mask.device))
        pooled = []
        for per_layer in features:
            tokens = torch.cat([project(f) + positions for project, f in zip(self.project, per_layer)], dim=1)
            mask = padding_mask.repeat(1, len(per_layer))
            pooled.append(self.pool(tokens, mask))
        return self.out_proj(torch.cat(pooled, dim=-1))


class Feedback(nn.Module):
    """DifFeed's feedback module: f_late → ReLU(LN(W f_late)), W without bias."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, late: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.proj(late)))


def parse_int_list(text: str, flag: str) -> List[int]:
    """"1,3" → [1, 3]; anything else names the flag."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise DifformerError(f"{flag} takes comma-separated integers (e.g. 1,2), got {text!r}") from None
    if not values:
        raise DifformerError(f"{flag} is empty: give at least one value")
    return values


def parse_feedback_pairs(text: str, flag: str) -> List[Sequence[int]]:
    """"3:1,2:1" → [(3, 1), (2, 1)]: the output of layer 3 (and 2) is fed back after layer 1."""
    pairs = []
    for item in str(text).split(","):
        try:
            late, early = (int(v) for v in item.split(":"))
        except ValueError:
            raise DifformerError(f"{flag} takes LATE:EARLY layer pairs (e.g. 3:1,2:1), got {text!r}") from None
        if late <= early:
            raise DifformerError(f"{flag} {item}: a later layer feeds an earlier one (LATE > EARLY)")
        pairs.append((late, early))
    return pairs
