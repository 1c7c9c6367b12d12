"""Diagnostics of a trained model."""

import torch


def embedding_collapse_stats(weight: torch.Tensor, special_symbols: int) -> dict:
    """How far apart the word embeddings are, the quantity the anchor loss protects:

        mean_distance  = mean_{i≠j} ‖E_i − E_j‖,   mean_norm = mean_i ‖E_i‖,
        spread         = mean_distance / mean_norm,
        norm_variation = std_i ‖E_i‖ / mean_norm      (population standard deviation)

    ``spread`` is about √2 for random directions and falls when the embeddings gather along few
    directions; ``mean_distance`` falls when they shrink together, which lowers their distance
    relative to the fixed diffusion noise even at constant ``spread``. ``norm_variation`` is how
    unevenly one noise scale corrupts the words (0 when every embedding has the same norm; frequent
    and rare words drifting apart in norm raise it), the unevenness the embedding LayerNorm on the
    denoiser's input answers. The first ``special_symbols`` rows (a fairseq dictionary's
    ``nspecial``: <s>, <pad>, </s>, <unk>, and any extra special symbols) are left out.
    """
    words = weight[special_symbols:].detach().float()
    n = words.size(0)
    mean_distance = torch.cdist(words, words).sum() / (n * (n - 1))
    norms = words.norm(dim=-1)
    mean_norm = norms.mean()
    return {
        "mean_distance": float(mean_distance),
        "mean_norm": float(mean_norm),
        "spread": float(mean_distance / mean_norm),
        "norm_variation": float(norms.std(unbiased=False) / mean_norm),
    }
