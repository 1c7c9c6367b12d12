"""Shared fixtures: tiny real data-bins built with the real fairseq CLIs, and trained checkpoints."""

import contextlib
import fcntl
import io
import os
import random
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (make test: one worker per core) each worker, and every command it starts,
# computes on one thread, so that the workers share the cores instead of each spreading over all.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
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


def run_in_process(tool, *args, input=None):
    """The console script ``tool`` (fairseq-train, fairseq-generate, …) run in this process, as
    :func:`run_cli` runs it: its exit status, stdout, and stderr with the line the plugin's error
    hook prints for an error it explains (else the traceback). For checks of a command's error
    message, where a new process adds only its start-up; each tool keeps one real run elsewhere
    that shows the hook prints one line and no traceback."""
    from importlib.metadata import entry_points

    from difformer_core.errors import DifformerError, explain

    (script,) = entry_points(group="console_scripts", name=tool)
    main = script.load()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved = sys.argv, sys.stdin
    sys.argv, sys.stdin = [tool, *map(str, args)], io.StringIO(input or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (exit.code is not None)
        if isinstance(exit.code, str):
            err.write(exit.code + "\n")
    except Exception as exc:
        code = 1
        message = str(exc) if isinstance(exc, DifformerError) else explain(exc, exc.__traceback__)
        err.write(f"{tool}: error: {message}\n" if message is not None
                  else "".join(traceback.format_exception(exc)))
    finally:
        sys.argv, sys.stdin = saved
    return subprocess.CompletedProcess([tool, *args], code, out.getvalue(), err.getvalue())


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


@contextlib.contextmanager
def built_once(tmp_path_factory, name):
    """The folder of a session fixture, built once per test run however many pytest-xdist workers
    need it: yields (folder, build); ``build`` is False where another worker has already built it.
    The workers of one run share the parent of their base temporary folders; the first to get
    the folder's lock builds it, the others wait on the lock and reuse what it built."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = not done.exists()
        if build:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        yield folder, build
        done.touch()


@pytest.fixture(scope="session")
def multi30k_bpe(tmp_path_factory):
    """Tokenised Multi30k subsets with a joint BPE of 500 merges (subword-nmt)."""
    if not MULTI30K.is_dir():
        pytest.fail(f"Multi30k not found at {MULTI30K}: set DIFFORMER_MULTI30K to its folder")
    with built_once(tmp_path_factory, "multi30k") as (work, build):
        if build:
            write_multi30k_bpe(work)
    return work


def write_multi30k_bpe(work):
    """The first 1,200 / 60 / 40 Multi30k pairs of train / val / test2016 in ``work``, tokenised,
    with a joint subword-nmt BPE of 500 merges (``codes``) applied."""
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


@pytest.fixture(scope="session")
def databin(multi30k_bpe, tmp_path_factory):
    with built_once(tmp_path_factory, "multi30k-bin") as (_, build):
        if build:
            preprocess(multi30k_bpe, {s: multi30k_bpe / s for s in ("train", "valid", "test")}, "de", "en")
    return multi30k_bpe / "bin"


@pytest.fixture(scope="session")
def databin_separate_dicts(multi30k_bpe, tmp_path_factory):
    with built_once(tmp_path_factory, "separate") as (work, build):
        if build:
            preprocess(work, {s: multi30k_bpe / s for s in ("train", "valid")}, "de", "en", joined=False)
    return work / "bin"


@pytest.fixture(scope="session")
def other_dict_reranker(multi30k_bpe, tmp_path_factory):
    """An AR Transformer trained on a joined data-bin with a different dictionary."""
    with built_once(tmp_path_factory, "other_dict") as (work, build):
        if build:
            for lang in ("de", "en"):
                lines = (multi30k_bpe / f"train.{lang}").read_text().splitlines()[:200]
                (work / f"train.{lang}").write_text("\n".join(lines) + "\n")
            other = preprocess(work, {"train": work / "train"}, "de", "en")
            train_reranker(other, work / "ckpt", "--disable-validation")
    return work / "ckpt" / "checkpoint_last.pt"


def train_reranker(databin, save_dir, *extra):
    run_cli(
        "fairseq-train", databin, "--task", "translation", "--arch", "transformer",
        "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--encoder-layers", "1",
        "--decoder-layers", "1", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
        "--share-all-embeddings", "--criterion", "label_smoothed_cross_entropy",
        *TRAIN_COMMON, "--max-update", "3", "--save-dir", save_dir, "--no-epoch-checkpoints", *extra,
    )
    return save_dir / "checkpoint_last.pt"


def train_difformer(databin, save_dir, max_update, *extra, check=True, in_process=False):
    """fairseq-train of TINY_ARCH for ``max_update`` updates (in this process: :func:`run_in_process`)."""
    args = ["fairseq-train", databin, "--user-dir", USER_DIR, "--task", "difformer", "--criterion", "difformer",
            *TINY_ARCH, *TRAIN_COMMON, "--max-update", max_update, "--save-dir", save_dir, *extra]
    return run_in_process(*args) if in_process else run_cli(*args, check=check)


@pytest.fixture(scope="session")
def difformer_checkpoint(databin, tmp_path_factory):
    """4 updates and a validation; TensorBoard events (where tensorboardX or tensorboard is
    installed) in the ``tensorboard`` folder beside the checkpoint."""
    with built_once(tmp_path_factory, "difformer_ckpt") as (save_dir, build):
        if build:
            train_difformer(databin, save_dir, 4, "--no-epoch-checkpoints", "--rescaling-factor", "4",
                            "--tensorboard-logdir", save_dir / "tensorboard")
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def reranker_checkpoint(databin, tmp_path_factory):
    """A fairseq AR Transformer trained a few updates on the same data-bin (task translation)."""
    with built_once(tmp_path_factory, "reranker_ckpt") as (save_dir, build):
        if build:
            train_reranker(databin, save_dir)
    return save_dir / "checkpoint_last.pt"


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
    with built_once(tmp_path_factory, "synthetic") as (work, build):
        if build:
            preprocess(work, write_synthetic_translation(work), "src", "tgt")
    return work / "bin"


@pytest.fixture(scope="session")
def learned_synthetic(synthetic_databin, tmp_path_factory):
    """A Difformer that has learned the synthetic translation (BLEU above 50; test_learning.py)."""
    with built_once(tmp_path_factory, "learned") as (save_dir, build):
        if build:
            train_synthetic(synthetic_databin, save_dir)
    return save_dir / "checkpoint_last.pt"


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
