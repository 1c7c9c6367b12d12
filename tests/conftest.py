"""Shared fixtures: tiny real data-bins built with the real fairseq CLIs, and trained checkpoints."""

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "fairseq_difformer")
MULTI30K = Path(os.environ.get("DIFFORMER_MULTI30K", REPO / "data" / "multi30k"))

# Small enough for a few CPU seconds per run, real enough to exercise every code path.
TINY_ARCH = [
    "--arch", "difformer_small", "--model-dim", "64", "--latent-dim", "16",
    "--encoder-ffn-embed-dim", "128", "--encoder-attention-heads", "2",
    "--encoder-layers", "1", "--decoder-layers", "1", "--share-all-embeddings",
]
TRAIN_COMMON = [
    "--cpu", "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
    "--warmup-updates", "10", "--max-tokens", "1024", "--no-progress-bar", "--log-interval", "1",
    "--seed", "1", "--num-workers", "0",
]


def run_cli(*args, check=True, cwd=None, input=None):
    """Run a console script (fairseq-train, fairseq-generate, …) and return the finished process."""
    exe = shutil.which(args[0]) or args[0]
    proc = subprocess.run(
        [exe, *map(str, args[1:])], capture_output=True, text=True, cwd=cwd, input=input,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def preprocess(workdir: Path, prefixes: dict, src: str, tgt: str, joined=True, extra=()):
    dest = workdir / "bin"
    args = ["fairseq-preprocess", "--source-lang", src, "--target-lang", tgt,
            "--destdir", dest, "--workers", "1", *extra]
    for split, prefix in prefixes.items():
        args += [f"--{split}pref", prefix]
    if joined:
        args.append("--joined-dictionary")
    run_cli(*args)
    return dest


@pytest.fixture(scope="session")
def multi30k_bpe(tmp_path_factory):
    """Tokenised Multi30k subsets with a joint BPE of 500 merges (subword-nmt)."""
    if not MULTI30K.is_dir():
        pytest.fail(f"Multi30k not found at {MULTI30K}: set DIFFORMER_MULTI30K to its folder")
    work = tmp_path_factory.mktemp("multi30k")
    sizes = {"train": ("train", 1200), "valid": ("val", 60), "test": ("test_2016_flickr", 40)}
    for split, (name, n) in sizes.items():
        for lang in ("de", "en"):
            lines = (MULTI30K / f"{name}.{lang}").read_text(encoding="utf-8").splitlines()[:n]
            (work / f"{split}.tok.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    joint = (work / "train.tok.de").read_text() + (work / "train.tok.en").read_text()
    (work / "joint.txt").write_text(joint)
    with open(work / "codes", "w") as codes:
        subprocess.run(["subword-nmt", "learn-bpe", "-s", "500"], stdin=open(work / "joint.txt"),
                       stdout=codes, check=True)
    for split in sizes:
        for lang in ("de", "en"):
            with open(work / f"{split}.{lang}", "w") as out:
                subprocess.run(["subword-nmt", "apply-bpe", "-c", work / "codes"],
                               stdin=open(work / f"{split}.tok.{lang}"), stdout=out, check=True)
    return work


@pytest.fixture(scope="session")
def databin(multi30k_bpe):
    prefixes = {s: multi30k_bpe / s for s in ("train", "valid", "test")}
    return preprocess(multi30k_bpe, prefixes, "de", "en")


@pytest.fixture(scope="session")
def databin_separate_dicts(multi30k_bpe, tmp_path_factory):
    work = tmp_path_factory.mktemp("separate")
    prefixes = {s: multi30k_bpe / s for s in ("train", "valid")}
    return preprocess(work, prefixes, "de", "en", joined=False)


@pytest.fixture(scope="session")
def other_dict_reranker(multi30k_bpe, tmp_path_factory):
    """An AR Transformer trained on a joined data-bin with a different dictionary."""
    work = tmp_path_factory.mktemp("other_dict")
    for lang in ("de", "en"):
        lines = (multi30k_bpe / f"train.{lang}").read_text().splitlines()[:200]
        (work / f"train.{lang}").write_text("\n".join(lines) + "\n")
    other = preprocess(work, {"train": work / "train"}, "de", "en")
    return train_reranker(other, work / "ckpt", "--disable-validation")


def train_reranker(databin, save_dir, *extra):
    run_cli(
        "fairseq-train", databin, "--task", "translation", "--arch", "transformer",
        "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--encoder-layers", "1",
        "--decoder-layers", "1", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
        "--share-all-embeddings", "--criterion", "label_smoothed_cross_entropy",
        *TRAIN_COMMON, "--max-update", "3", "--save-dir", save_dir, "--no-epoch-checkpoints", *extra,
    )
    return save_dir / "checkpoint_last.pt"


def train_difformer(databin, save_dir, max_update, *extra, check=True):
    return run_cli(
        "fairseq-train", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--criterion", "difformer", *TINY_ARCH, *TRAIN_COMMON, "--max-update", max_update,
        "--save-dir", save_dir, *extra, check=check,
    )


@pytest.fixture(scope="session")
def difformer_checkpoint(databin, tmp_path_factory):
    """4 updates and a validation; TensorBoard events (where tensorboardX or tensorboard is
    installed) in the ``tensorboard`` folder beside the checkpoint."""
    save_dir = tmp_path_factory.mktemp("difformer_ckpt")
    train_difformer(databin, save_dir, 4, "--no-epoch-checkpoints", "--rescaling-factor", "4",
                    "--tensorboard-logdir", save_dir / "tensorboard")
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def reranker_checkpoint(databin, tmp_path_factory):
    """A fairseq AR Transformer trained a few updates on the same data-bin (task translation)."""
    return train_reranker(databin, tmp_path_factory.mktemp("reranker_ckpt"))


#: the learning test's model: large enough to learn the synthetic translation in 400 updates
SYNTHETIC_ARCH = ["--arch", "difformer_small", "--model-dim", "128", "--encoder-ffn-embed-dim", "256",
                  "--encoder-attention-heads", "4", "--encoder-layers", "2", "--decoder-layers", "2",
                  "--latent-dim", "32", "--share-all-embeddings", "--rescaling-factor", "4"]


def train_synthetic(databin, save_dir, *extra):
    """400 updates of SYNTHETIC_ARCH on the synthetic translation; returns checkpoint_last.pt."""
    run_cli(
        "fairseq-train", databin, "--user-dir", USER_DIR, "--task", "difformer", "--criterion", "difformer",
        *SYNTHETIC_ARCH, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "100", "--max-tokens", "2000",
        "--max-update", "400", "--save-dir", save_dir, "--cpu", "--no-progress-bar", "--seed", "1",
        "--no-epoch-checkpoints", "--disable-validation", *extra,
    )
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def synthetic_databin(tmp_path_factory):
    """The synthetic word-for-word translation (:func:`write_synthetic_translation`), binarised."""
    work = tmp_path_factory.mktemp("synthetic")
    return preprocess(work, write_synthetic_translation(work), "src", "tgt")


@pytest.fixture(scope="session")
def learned_synthetic(synthetic_databin, tmp_path_factory):
    """A Difformer that has learned the synthetic translation (BLEU above 50; test_learning.py)."""
    return train_synthetic(synthetic_databin, tmp_path_factory.mktemp("learned"))


def write_synthetic_translation(workdir: Path, seed=1, vocab=40, sizes=(("train", 3000), ("valid", 100), ("test", 200))):
    """A word-for-word "translation": each source word maps to a fixed target word (lengths 3–8).

    Trivial for an autoregressive model, yet a non-autoregressive model only solves it if its
    word embeddings stay apart, which is what the anchor loss is for."""
    rng = random.Random(seed)
    mapping = list(range(vocab))
    rng.shuffle(mapping)
    for split, n in sizes:
        src, tgt = [], []
        for _ in range(n):
            words = [rng.randrange(vocab) for _ in range(rng.randint(3, 8))]
            src.append(" ".join(f"s{w}" for w in words))
            tgt.append(" ".join(f"t{mapping[w]}" for w in words))
        (workdir / f"{split}.src").write_text("\n".join(src) + "\n")
        (workdir / f"{split}.tgt").write_text("\n".join(tgt) + "\n")
    return {split: workdir / split for split, _ in sizes}
