"""Grouping rows of different lengths for a network call (the denoiser, the AR reranker): groups of
similar length, each run at its own width, so that fewer padded positions go through it."""

import math
from typing import List

import torch

# What one more call of the network costs, in target positions: a group of rows runs in a call of
# its own when that saves more padded positions than this (benchmarks/findings.md has how the
# value was chosen). The grouping changes the speed, never the result.
GROUP_CALL_COST = 64


def length_groups(lengths: torch.Tensor, call_cost: int = GROUP_CALL_COST) -> List[torch.Tensor]:
    """Rows split by length into groups, each to be run at its own width.

    Groups are runs of the distinct lengths u_1 < … < u_D, cut where they minimise the positions
    the network runs over plus ``call_cost`` per call: Σ_groups (rows · max length + call_cost),
    by dynamic programming over the D lengths. Returns each group's rows, in their original order,
    shortest group first."""
    values, counts = (x.tolist() for x in torch.unique(lengths, return_counts=True))
    # best[j]: the least cost of the lengths up to u_j; cut[j]: where its last group starts.
    best, cut = [0] + [math.inf] * len(values), [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        rows = 0
        for i in range(j, 0, -1):
            rows += counts[i - 1]
            cost = best[i - 1] + rows * values[j - 1] + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds, j = [], len(values)
    while j > 0:
        bounds.append((values[cut[j] - 1], values[j - 1]))
        j = cut[j] - 1
    return [((lengths >= low) & (lengths <= high)).nonzero().squeeze(1) for low, high in reversed(bounds)]
