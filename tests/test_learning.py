"""The model learns, and without the anchor loss its embeddings collapse (the paper's claim).

A synthetic word-for-word translation task (40 words, sentences of 3–8 words), a small model,
400 updates on CPU (about a minute each run)."""

import re

import pytest
import torch
from conftest import USER_DIR, preprocess, run_cli, write_synthetic_translation

import fairseq_difformer  # noqa: F401
from fairseq.data import Dictionary
from fairseq_difformer.diagnostics import embedding_collapse_stats

ARCH = ["--arch", "difformer_small", "--model-dim", "128", "--encoder-ffn-embed-dim", "256",
        "--encoder-attention-heads", "4", "--encoder-layers", "2", "--decoder-layers", "2",
        "--latent-dim", "32", "--share-all-embeddings", "--rescaling-factor", "4"]


@pytest.fixture(scope="module")
def synthetic_databin(tmp_path_factory):
    work = tmp_path_factory.mktemp("synthetic")
    return preprocess(work, write_synthetic_translation(work), "src", "tgt")


def train_and_score(databin, save_dir, *extra):
    run_cli(
        "fairseq-train", databin, "--user-dir", USER_DIR, "--task", "difformer", "--criterion", "difformer",
        *ARCH, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "100", "--max-tokens", "2000",
        "--max-update", "400", "--save-dir", save_dir, "--cpu", "--no-progress-bar", "--seed", "1",
        "--no-epoch-checkpoints", "--disable-validation", *extra,
    )
    checkpoint = save_dir / "checkpoint_last.pt"
    out = run_cli(
        "fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer", "--path", checkpoint,
        "--gen-subset", "test", "--batch-size", "100", "--cpu", "--seed", "1",
    ).stdout
    bleu = float(re.search(r"BLEU4 = ([\d.]+)", out).group(1))
    weight = torch.load(checkpoint)["model"]["decoder.embed_tokens.weight"]
    nspecial = Dictionary.load(str(databin / "dict.tgt.txt")).nspecial
    return bleu, embedding_collapse_stats(weight, nspecial)


def test_learns_with_anchor_loss_and_collapses_without(synthetic_databin, tmp_path):
    bleu, stats = train_and_score(synthetic_databin, tmp_path / "anchor")
    bleu_no_anchor, stats_no_anchor = train_and_score(synthetic_databin, tmp_path / "none", "--no-anchor-loss")
    print(f"anchor: BLEU {bleu} {stats}; no anchor: BLEU {bleu_no_anchor} {stats_no_anchor}")
    assert bleu > 50
    assert bleu_no_anchor < 10
    # Without the anchor the diffusion loss pulls the words together (relative to the noise).
    assert stats_no_anchor["mean_distance"] < 0.85 * stats["mean_distance"]
