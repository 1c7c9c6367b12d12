"""Blocked vocabulary scores against the whole log-softmax matrix they replace."""

import pytest
import torch

import fairseq_difformer.vocabulary_scores as vocabulary_scores
from fairseq_difformer.vocabulary_scores import best_word_log_probs, row_blocks, word_log_probs

V, D = 37, 8


@pytest.fixture
def projection():
    torch.manual_seed(0)
    return torch.nn.Linear(D, V, bias=False)


@pytest.fixture(params=[1, 3, 10 ** 6], ids=["one-row blocks", "three-row blocks", "one block"])
def block_rows(request, monkeypatch):
    monkeypatch.setattr(vocabulary_scores, "BLOCK_ELEMENTS", request.param * V)
    return request.param


def test_row_blocks_fit_the_block_size_and_never_reach_zero():
    assert row_blocks(1000, 7872) == 2 ** 20 // 7872
    assert row_blocks(5, 7872) == 5
    assert row_blocks(10, 2 ** 21) == 1


@torch.no_grad()
def test_word_log_probs_are_the_log_softmax_entries(projection, block_rows):
    features, words = torch.randn(11, D), torch.randint(0, V, (11,))
    expected = torch.log_softmax(projection(features), -1)[torch.arange(11), words]
    torch.testing.assert_close(word_log_probs(projection, features, words, V), expected)


@torch.no_grad()
def test_best_words_skip_the_excluded_symbols_and_keep_the_full_normaliser(projection, block_rows):
    features = torch.randn(13, D)
    excluded = [0, 2, 5]
    # Make an excluded symbol the argmax of some rows: it must not be chosen.
    features[:4] = projection.weight[2] * 10
    logits = projection(features)
    log_probs = torch.log_softmax(logits, -1)
    allowed = log_probs.clone()
    allowed[:, excluded] = float("-inf")
    expected_scores, expected_words = allowed.max(-1)
    assert set(logits[:4].argmax(-1).tolist()) == {2}

    scores, words, normalisers = best_word_log_probs(projection, features, excluded, V)
    assert torch.equal(words, expected_words)
    torch.testing.assert_close(scores, expected_scores)
    torch.testing.assert_close(normalisers, torch.logsumexp(logits, -1))


def test_no_rows_give_empty_results(projection):
    empty = torch.zeros(0, D)
    assert word_log_probs(projection, empty, torch.zeros(0, dtype=torch.long), V).shape == (0,)
    assert all(x.shape == (0,) for x in best_word_log_probs(projection, empty, [0], V))
