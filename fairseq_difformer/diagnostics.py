"""Diagnostics of a trained model."""

import torch


def embedding_collapse_stats(weight: torch.Tensor, special_symbols: int = 4) -> dict:
    """How far apart the word embeddings are, the quantity the anchor loss protects:

        mean_distance = mean_{i≠j} ‖E_i − E_j‖,   mean_norm = mean_i ‖E_i‖,
        spread        = mean_distance / mean_norm

    ``spread`` is about √2 for random directions and falls when the embeddings gather along few
    directions; ``mean_distance`` falls when they shrink together, which lowers their distance
    relative to the fixed diffusion noise even at constant ``spread``. The first
    ``special_symbols`` rows (<s>, <pad>, </s>, <unk> in a fairseq dictionary) are left out.
    """
    words = weight[special_symbols:].detach().float()
    n = words.size(0)
    mean_distance = torch.cdist(words, words).sum() / (n * (n - 1))
    mean_norm = words.norm(dim=-1).mean()
    return {
        "mean_distance": float(mean_distance),
        "mean_norm": float(mean_norm),
        "spread": float(mean_distance / mean_norm),
    }
