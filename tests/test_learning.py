"""The model learns, and without the anchor loss its embeddings collapse (the paper's claim).

A synthetic word-for-word translation task (40 words, sentences of 3–8 words), a small model,
400 updates on CPU (about a minute each run; conftest's ``learned_synthetic`` is the run with
the anchor loss)."""

import re

import torch
from conftest import USER_DIR, run_cli, train_synthetic

import fairseq_difformer  # noqa: F401
from fairseq.data import Dictionary
from fairseq_difformer.diagnostics import embedding_collapse_stats


def bleu_and_collapse(databin, checkpoint):
    """fairseq-generate's BLEU4 on the test split, and the embedding collapse statistics."""
    out = run_cli(
        "fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer", "--path", checkpoint,
        "--gen-subset", "test", "--batch-size", "100", "--cpu", "--seed", "1",
    ).stdout
    bleu = float(re.search(r"BLEU4 = ([\d.]+)", out).group(1))
    weight = torch.load(checkpoint)["model"]["decoder.embed_tokens.weight"]
    nspecial = Dictionary.load(str(databin / "dict.tgt.txt")).nspecial
    return bleu, embedding_collapse_stats(weight, nspecial)


def test_learns_with_anchor_loss_and_collapses_without(synthetic_databin, learned_synthetic, tmp_path):
    bleu, stats = bleu_and_collapse(synthetic_databin, learned_synthetic)
    without_anchor = train_synthetic(synthetic_databin, tmp_path / "none", "--no-anchor-loss")
    bleu_no_anchor, stats_no_anchor = bleu_and_collapse(synthetic_databin, without_anchor)
    print(f"anchor: BLEU {bleu} {stats}; no anchor: BLEU {bleu_no_anchor} {stats_no_anchor}")
    assert bleu > 50
    assert bleu_no_anchor < 10
    # Without the anchor the diffusion loss pulls the words together (relative to the noise).
    assert stats_no_anchor["mean_distance"] < 0.85 * stats["mean_distance"]
