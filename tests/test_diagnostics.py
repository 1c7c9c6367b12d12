"""Embedding-collapse statistics against closed forms."""

import math

import pytest
import torch

from fairseq_difformer.diagnostics import embedding_collapse_stats


NSPECIAL = 5  # fairseq's four specials and one extra (e.g. a <mask>), as a dictionary's nspecial


def _with_specials(words):
    """Special-symbol rows above ``words``, far away so that a statistic using them would show it."""
    return torch.cat([torch.full((NSPECIAL, words.size(1)), 100.0), words])


def test_orthogonal_embeddings_of_one_norm():
    # s·e_i: every pair is s√2 apart, every norm is s.
    s = 3.0
    stats = embedding_collapse_stats(_with_specials(s * torch.eye(6)), NSPECIAL)
    assert stats["mean_distance"] == pytest.approx(s * math.sqrt(2))
    assert stats["mean_norm"] == pytest.approx(s)
    assert stats["spread"] == pytest.approx(math.sqrt(2))
    assert stats["norm_variation"] == pytest.approx(0.0, abs=1e-7)


def test_collinear_embeddings_of_two_norms():
    # 1·e_1 and 3·e_1: distance 2, norms 1 and 3 (mean 2, population std 1).
    words = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    stats = embedding_collapse_stats(_with_specials(words), NSPECIAL)
    assert stats["mean_distance"] == pytest.approx(2.0)
    assert stats["mean_norm"] == pytest.approx(2.0)
    assert stats["spread"] == pytest.approx(1.0)
    assert stats["norm_variation"] == pytest.approx(0.5)


def test_shrinking_lowers_distance_not_spread():
    words = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    big = embedding_collapse_stats(_with_specials(words), NSPECIAL)
    small = embedding_collapse_stats(_with_specials(0.25 * words), NSPECIAL)
    assert small["mean_distance"] == pytest.approx(0.25 * big["mean_distance"], rel=1e-5)
    assert small["spread"] == pytest.approx(big["spread"], rel=1e-5)
    assert small["norm_variation"] == pytest.approx(big["norm_variation"], rel=1e-5)
