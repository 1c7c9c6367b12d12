"""The steps of the AR route that examples/quickstart.py, examples/from_ar/run.py and
examples/gigaword/run.py take: prepare a corpus (:class:`Corpus`: Multi30k, Gigaword), train (with
a wall-clock budget, resumable), distil with an AR model, decode the corpus's test split and score
it. Where CTranslate2 is installed the AR model's roles run on it: the distillation
(difformer-distill's ``--engine auto``) and the reranking (``--reranker-engine``).

Every step reuses what a previous run finished: the data-bin, a training whose budget is spent
(a ``training.done`` marker beside its checkpoints), the distilled data-bin (difformer-distill
checks it is the same teacher's), a translation made by the same command from the same
checkpoints.
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import re
import shlex
import sys
import time
from pathlib import Path

from difformer_core.checkpoints import allow_fairseq_checkpoints
from difformer_core.errors import DifformerError
from difformer_core.locks import lock_folder

from . import user_dir
from .commands import CommandFailed, run_logged
from .generate_output import parse_generate_output
from .recipes import recipe, with_options
from .whole_split import EVERY_SENTENCE, check_generate_output

#: what the messages start with: the running script's name
PREFIX = ["examples"]
#: the work folder's lock file: one run at a time in a work folder
LOCK_NAME = "run.lock"
_TRANSLATED = re.compile(r"Translated ([\d,]+) sentences .* in ([\d.]+)s \(([\d.]+) sentences/s")
SYSTEM_NAMES = {"ar": "the AR Transformer", "difformer": "difformer_small"}
#: the decodings of the AR route: (name, fairseq-generate options, reranked by the AR model)
AR_ROUTE_DECODINGS = (
    # Greedy, with difformer-distill's length limit (fairseq's default allows 200 tokens).
    ("ar_greedy", ["--task", "translation", "--beam", "1", "--max-len-a", "1.2", "--max-len-b", "10"], False),
    ("difformer_default", ["--task", "difformer", "--seed", "1"], False),
    ("difformer_3x2_rerank", ["--task", "difformer", "--length-beam-size", "3", "--noise-beam-size", "2",
                              "--ppl-mbr", "--seed", "1"], True),
)


def route_parser(description: str, workdir: Path):
    """The command line every example of the whole AR route takes: --minutes, --ar-share, --smoke
    and --workdir (default ``workdir``); :func:`route_setting` checks and reads it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--minutes", type=float, default=30,
                   help="the whole training budget in minutes: AR model, distillation and Difformer (default 30)")
    p.add_argument("--ar-share", type=float, default=0.4,
                   help="the AR model's share of --minutes (default 0.4, as the benchmark's 8 of 20 minutes)")
    p.add_argument("--smoke", action="store_true",
                   help="a check of every step in a few minutes: 500 training pairs, 5 updates per training")
    p.add_argument("--workdir", type=Path, default=workdir,
                   help=f"where data, checkpoints and outputs go (default {workdir})")
    return p


def route_setting(parser, args):
    """(training pairs, BPE merges, updates per training) of ``args``: all of them, 8,000 and the
    budget's, or the smoke setting's 500, 300 and 5 (with --minutes at most 2); an --ar-share
    outside (0, 1) is the parser's error."""
    if not 0 < args.ar_share < 1:
        parser.error(f"--ar-share {args.ar_share:g}: give a fraction between 0 and 1")
    if not args.smoke:
        return None, 8000, None
    args.minutes = min(args.minutes, 2)
    return 500, 300, 5


def say(message):
    print(f"[{PREFIX[0]}] {message}", flush=True)


def clock(seconds):
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def run(cmd, log: Path, **kwargs):
    """Run ``cmd`` with its output in ``log``; a failure ends the script with the log's tail."""
    try:
        return run_logged(cmd, log, **kwargs)
    except CommandFailed as exc:
        sys.exit(f"{PREFIX[0]}: {exc}")


@contextlib.contextmanager
def workdir(work: Path):
    """WORK, made if needed and locked (WORK/run.lock) while the block runs: a second run on it
    stops at once in one line naming the process that holds it, before it touches anything."""
    try:
        lock = lock_folder(work / LOCK_NAME, f"--workdir {work}", f"{PREFIX[0]} run",
                           "wait for it to end, or give this run another --workdir")
    except DifformerError as exc:
        sys.exit(f"{PREFIX[0]}: {exc}")
    with lock:
        yield work


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A corpus the AR route runs on: where its files are, how difformer-prepare reads them and
    how difformer-score scores its decodings."""

    #: the test split's name in messages (``test2016``)
    test_name: str
    folder: Path
    source_lang: str
    target_lang: str
    #: the file stems of the train, valid and test splits in ``folder`` (STEM.LANG)
    stems: tuple
    #: difformer-prepare's options beyond the files and the BPE merges
    prepare_args: tuple
    #: difformer-score's options beyond the files
    score_args: tuple


#: Multi30k's lowercased, Moses-tokenised release (data/multi30k): scored with SacreBLEU on
#: Moses-detokenised text, and tokenised BLEU
MULTI30K = Corpus(
    "test2016", Path(__file__).resolve().parents[1] / "data" / "multi30k", "de", "en",
    ("train", "val", "test_2016_flickr"),
    ("--no-tokenize", "--input-tokenizer", "moses_lowercase", "--input-tokenizer-args",
     '{"moses_no_dash_splits": true}'),
    ("--detok", "en"))


def prepare(corpus: Corpus, work: Path, max_lines, bpe_merges):
    """Subset (for the smoke setting: ``max_lines`` training pairs, a tenth of that of the
    others) and prepare ``corpus`` with difformer-prepare; returns the data-bin."""
    source, langs = corpus.folder, (corpus.source_lang, corpus.target_lang)
    if max_lines:
        source = work / "subset"
        source.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(corpus.stems):
            for lang in langs:
                lines = (corpus.folder / f"{name}.{lang}").read_text(encoding="utf-8").splitlines()
                n = max_lines if i == 0 else max(1, max_lines // 10)
                (source / f"{name}.{lang}").write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    train, valid, test = (source / stem for stem in corpus.stems)
    run(["difformer-prepare", "--source-lang", langs[0], "--target-lang", langs[1], *corpus.prepare_args,
         "--trainpref", train, "--validpref", valid, "--testpref", test, "--bpe-merges", bpe_merges,
         "--destdir", work / "data"], work / "prepare.log", on_line=lambda line: print("   ", line.rstrip()))
    return work / "data" / "bin"


def prepared_split(work: Path, corpus: Corpus, split: str):
    """The text of ``split`` as :func:`prepare` left it before BPE (difformer-prepare's tok/), by
    language: what fairseq-generate's references read once --remove-bpe has run."""
    return {lang: work / "data" / "tok" / f"{split}.{lang}" for lang in (corpus.source_lang, corpus.target_lang)}


def previous_training_time(checkpoint: Path) -> float:
    """Seconds of training already in a checkpoint (fairseq counts them against the budget)."""
    if not checkpoint.exists():
        return 0.0
    import torch

    allow_fairseq_checkpoints()
    state = torch.load(checkpoint, map_location="cpu")
    return float(state.get("extra_state", {}).get("previous_training_time", 0.0))


def train(system: str, databin: Path, save_dir: Path, minutes: float, max_update=None, extra=(), options=None):
    """fairseq-train with ``system``'s CPU recipe (:mod:`difformer_cli.recipes`; ``options``,
    option → value, replace its values) and ``extra`` for ``minutes`` of wall-clock time (or
    ``max_update`` updates, the smoke setting), showing progress and the time left; returns
    checkpoint_last.pt."""
    done = save_dir / "training.done"
    if done.exists():
        say(f"{SYSTEM_NAMES[system]}: training already finished ({save_dir}); delete {done.name} to train further")
        return save_dir / "checkpoint_last.pt"
    budget = minutes * 60
    system_recipe = with_options(recipe(system, "cpu"), options or {})
    cmd = ["fairseq-train", databin, "--user-dir", user_dir(), *system_recipe, *extra,
           "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates", 200,
           "--log-format", "simple", "--log-interval", 1 if max_update else 50,
           "--stop-time-hours", minutes / 60, "--max-update", max_update or 10 ** 7, "--save-dir", save_dir]
    say(f"training {SYSTEM_NAMES[system]} for {minutes:g} min (resumes from {save_dir}/checkpoint_last.pt if any)")
    start = time.time() - previous_training_time(save_dir / "checkpoint_last.pt")

    def show_progress(line):
        if "Loaded checkpoint" in line:
            say("resuming: " + line.split("|")[-1].strip())
        if "--init-from-ar" in line:
            say("    " + line.split("|")[-1].strip()[:400])
        match = re.search(r"loss=([\d.]+).*?num_updates=(\d+)", line)
        if "train_inner" in line and match:
            elapsed = time.time() - start
            say(f"update {int(match.group(2)):5d}  loss {match.group(1)}  elapsed {clock(elapsed)}  "
                f"~{clock(max(0.0, budget - elapsed))} left of {clock(budget)}")

    save_dir.mkdir(parents=True, exist_ok=True)
    run(cmd, save_dir / "train.log", on_line=show_progress, append=True)
    done.touch()
    return save_dir / "checkpoint_last.pt"


def distill(databin: Path, teacher: Path, destdir: Path, smoke: bool):
    """The training set translated with ``teacher`` (beam 5, on CTranslate2 where it is installed,
    else fairseq-generate in 8,000-token batches; the smoke setting beam 2, at most 20 tokens),
    binarised with the data-bin's own dictionary. Returns the
    distilled data-bin and the seconds the distillation took (kept in ``destdir``/time.json, so
    that a reused one reports the time it took when it ran; None if unknown)."""
    timing = destdir / "time.json"
    reused = (destdir / "manifest.json").exists()
    if reused:
        say(f"reusing the distilled data-bin {destdir / 'bin'} (difformer-distill checks it is {teacher}'s)")
    else:
        say(f"distilling the training set with {teacher} (beam {2 if smoke else 5})")
    start = time.time()
    limits = ["--beam", 2, "--max-len-a", 0, "--max-len-b", 20] if smoke else ["--beam", 5]
    run(["difformer-distill", databin, "--destdir", destdir, "--teacher", teacher, *limits, "--max-tokens", 8000,
         "--cpu"], destdir.parent / "distill.log", on_line=lambda line: None)
    recorded = json.loads(timing.read_text()) if reused and timing.exists() else {}
    if recorded.get("teacher") != str(teacher):  # difformer-distill ran just now
        timing.write_text(json.dumps({"seconds": round(time.time() - start, 1), "teacher": str(teacher)}))
    seconds = json.loads(timing.read_text())["seconds"]
    say(f"      distilled data-bin {destdir / 'bin'} ({seconds:.0f} s)")
    return destdir / "bin", seconds


def reranker_engine() -> str:
    """The --reranker-engine of the reranked decoding: ctranslate2 where it is installed (found
    without importing it), else fairseq."""
    return "ctranslate2" if importlib.util.find_spec("ctranslate2") else "fairseq"


def decode(name, options, databin: Path, model: Path, work: Path, reranker: Path = None, corpus=MULTI30K):
    """Translate the test split at batch 100 into ``work``/``name``.txt (with ``reranker`` scoring
    the candidates when given, on :func:`reranker_engine`) and score it (difformer-score with the
    ``corpus``'s options: SacreBLEU, tokenised BLEU, ROUGE, length ratio) and its sentences/s. A
    translation made by the same command from checkpoints no newer than it is reused."""
    path = f"{model}:{reranker}" if reranker else str(model)
    engine = ["--reranker-engine", reranker_engine()] if reranker else []
    cmd = ["fairseq-generate", databin, "--user-dir", user_dir(), "--path", path, "--gen-subset", "test",
           "--batch-size", 100, *EVERY_SENTENCE, "--remove-bpe", "--cpu", *options, *engine]
    out, command_file = work / f"{name}.txt", work / f"{name}.command"
    command = shlex.join(map(str, cmd))
    newest = max(Path(p).stat().st_mtime for p in path.split(":"))
    if not (out.exists() and command_file.exists() and command_file.read_text() == command
            and out.stat().st_mtime >= newest):
        say(f"translating {corpus.test_name} with {name}")
        partial = out.with_suffix(".partial")
        run(cmd, work / f"{name}.log", stdout=partial)
        try:
            check_generate_output(partial, databin, "test")
        except DifformerError as exc:
            sys.exit(f"{PREFIX[0]}: {exc}")
        partial.rename(out)
        command_file.write_text(command)
    scores_file = out.with_suffix(".scores.json")
    run(["difformer-score", "--generate-output", out, *corpus.score_args, "--json"],
        work / f"{name}.score.log", stdout=scores_file)
    scores = json.loads(scores_file.read_text())
    speed = _TRANSLATED.search((work / f"{name}.log").read_text(encoding="utf-8") + out.read_text(encoding="utf-8"))
    scores["sentences_per_s"] = float(speed.group(3)) if speed else None
    return scores


def write_results(path: Path, results):
    """``results`` as JSON in ``path``, whole or not at all (written beside it, then renamed)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(results, indent=1))
    partial.replace(path)


#: how :func:`show_scores` names each score of difformer-score's
SCORE_LABELS = {"sacrebleu": "SacreBLEU", "tok_bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
                "rougeL": "ROUGE-L"}


def show_scores(results, scores=("sacrebleu", "tok_bleu")):
    """One line per decoding: its ``scores`` (keys of :data:`SCORE_LABELS`), length ratio and
    sentences/s; the SacreBLEU signature after them where SacreBLEU is shown."""
    for name, result in results.items():
        shown = "  ".join(f"{SCORE_LABELS[key]} {result[key]:6.2f}" for key in scores)
        speed = result.get("sentences_per_s")
        speed = f"  {speed:7.1f} sentences/s" if speed is not None else ""
        say(f"  {name:22s} {shown}  length ratio {result['length_ratio']:.3f}{speed}")
    if "sacrebleu" in scores:
        say(f"  ({next(iter(results.values()))['sacrebleu_signature']})")


def show_examples(generate_output: Path, n=3):
    entries = parse_generate_output(generate_output.read_text(encoding="utf-8").splitlines())
    for i in sorted(entries)[:n]:
        print(f"  source:     {entries[i]['S']}\n  reference:  {entries[i]['T']}\n  hypothesis: {entries[i]['H']}\n")
