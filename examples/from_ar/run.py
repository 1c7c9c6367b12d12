#!/usr/bin/env python3
"""From your AR Transformer to a faster decoder: one fairseq AR checkpoint as the Difformer's
initialisation, its distillation teacher and its reranker.

    AR.pt + its data-bin  → (a, b) difformer-distill --teacher AR.pt: the training set translated
                                   with beam 5, binarised with the same dictionary
                          → (c) fairseq-train --task difformer --init-from-ar AR.pt on it
                          → (d) fairseq-generate --path difformer.pt:AR.pt (1×1, and 3×2 reranked)
                          → (e) difformer-score: SacreBLEU, BLEU, length ratio, sentences/s

    python examples/from_ar/run.py --ar AR.pt --databin BIN     # your model and its data-bin
    python examples/from_ar/run.py                              # the shipped Multi30k: an AR
                                                                # model is trained first
    python examples/from_ar/run.py --smoke                      # every step in a few minutes

Without --ar, the shipped Multi30k copy is prepared (as the quickstart) and an AR Transformer of
the benchmark's recipe is trained for --ar-minutes. Re-running reuses every finished step: the
data-bin, the AR model, the distilled data, a finished Difformer training and the decoded test
sets; an interrupted training resumes from checkpoint_last.pt (and --init-from-ar is not applied
again). Outputs go to --workdir (default work/from_ar).
"""

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))

from difformer_cli import user_dir  # noqa: E402
from difformer_cli.commands import CommandFailed, run_logged  # noqa: E402
from difformer_cli.recipes import recipe  # noqa: E402
from quickstart import prepare  # noqa: E402

#: the decodings compared at the end: (name, generate options, uses the AR model as reranker)
DECODINGS = (
    # Greedy, with difformer-distill's length limit (fairseq's default allows 200 tokens).
    ("ar_greedy", ["--task", "translation", "--beam", "1", "--max-len-a", "1.2", "--max-len-b", "10"], False),
    ("difformer_default", ["--task", "difformer", "--seed", "1"], False),
    ("difformer_3x2_rerank", ["--task", "difformer", "--length-beam-size", "3", "--noise-beam-size", "2",
                              "--ppl-mbr", "--seed", "1"], True),
)
_TRANSLATED = re.compile(r"Translated ([\d,]+) sentences .* in ([\d.]+)s \(([\d.]+) sentences/s")


def say(message):
    print(f"[from_ar] {message}", flush=True)


def run(cmd, log: Path, **kwargs):
    try:
        return run_logged(cmd, log, **kwargs)
    except CommandFailed as exc:
        sys.exit(f"from_ar: {exc}")


def train_ar(databin: Path, save_dir: Path, minutes: float, max_update):
    """The benchmark's AR Transformer recipe for ``minutes`` (the teacher when no --ar is given)."""
    done = save_dir / "training.done"
    if not done.exists():
        say(f"(0) training an AR Transformer for {minutes:g} min ({save_dir})")
        run(["fairseq-train", databin, "--user-dir", user_dir(), *recipe("ar", "cpu"),
             "--stop-time-hours", minutes / 60, "--max-update", max_update or 10 ** 7,
             "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates", 500,
             "--log-format", "simple", "--log-interval", 50, "--save-dir", save_dir],
            save_dir.parent / "train-ar.log", append=True)
        done.touch()
    else:
        say(f"(0) AR Transformer already trained ({save_dir})")
    return save_dir / "checkpoint_last.pt"


def distill(databin: Path, ar: Path, destdir: Path, smoke: bool):
    """(a, b) the training set translated with the AR model (beam 5, 8,000-token batches; the
    smoke setting beam 2),
    binarised with the data-bin's own dictionary; difformer-distill reuses a finished one."""
    if (destdir / "manifest.json").exists():
        say(f"(a, b) reusing the distilled data-bin {destdir / 'bin'} (difformer-distill checks it is {ar}'s)")
    else:
        say(f"(a, b) distilling the training set with {ar} (beam {2 if smoke else 5})")
    start = time.time()
    # The smoke setting's AR model has had 5 updates: its outputs are cut short.
    limits = ["--beam", 2, "--max-len-a", 0, "--max-len-b", 20] if smoke else ["--beam", 5]
    run(["difformer-distill", databin, "--destdir", destdir, "--teacher", ar, *limits, "--max-tokens", 8000,
         "--cpu"], destdir.parent / "distill.log", on_line=lambda line: None)
    say(f"      distilled data-bin {destdir / 'bin'} ({time.time() - start:.0f} s)")
    return destdir / "bin"


def train_difformer(databin: Path, ar: Path, save_dir: Path, minutes: float, max_update):
    """(c) Difformer's recipe, started from the AR model (--init-from-ar), for ``minutes``."""
    done = save_dir / "training.done"
    if done.exists():
        say(f"(c) Difformer already trained ({save_dir})")
        return save_dir / "checkpoint_last.pt"
    say(f"(c) training Difformer from {ar} for {minutes:g} min ({save_dir})")

    def show(line):
        if "--init-from-ar" in line:
            say("    " + line.split("|")[-1].strip()[:400])
        match = re.search(r"loss=([\d.]+).*?num_updates=(\d+)", line)
        if "train_inner" in line and match:
            say(f"    update {int(match.group(2)):5d}  loss {match.group(1)}")

    run(["fairseq-train", databin, "--user-dir", user_dir(), *recipe("difformer", "cpu"), "--init-from-ar", ar,
         "--stop-time-hours", minutes / 60, "--max-update", max_update or 10 ** 7, "--disable-validation",
         "--no-epoch-checkpoints", "--save-interval-updates", 200, "--log-format", "simple",
         "--log-interval", 1 if max_update else 50, "--save-dir", save_dir],
        save_dir.parent / "train-difformer.log", on_line=show, append=True)
    done.touch()
    return save_dir / "checkpoint_last.pt"


def decode(name, options, databin: Path, model: Path, ar: Path, reranked: bool, work: Path):
    """(d, e) translate the test split at batch 100 and score it; reused when the command and the
    checkpoints are unchanged."""
    path = f"{model}:{ar}" if reranked else str(model)
    cmd = ["fairseq-generate", databin, "--user-dir", user_dir(), "--path", path, "--gen-subset", "test",
           "--batch-size", 100, "--required-batch-size-multiple", 1, "--cpu", *options]
    out, command_file = work / f"{name}.txt", work / f"{name}.command"
    command = shlex.join(map(str, cmd))
    newest = max(Path(p).stat().st_mtime for p in path.split(":"))
    if not (out.exists() and command_file.exists() and command_file.read_text() == command
            and out.stat().st_mtime >= newest):
        say(f"(d) decoding test with {name}")
        partial = out.with_suffix(".partial")
        run(cmd, work / f"{name}.log", stdout=partial)
        partial.rename(out)
        command_file.write_text(command)
    scores_file = out.with_suffix(".scores.json")
    run(["difformer-score", "--generate-output", out, "--remove-bpe", "--detok", "en", "--json"],
        work / f"{name}.score.log", stdout=scores_file)
    scores = json.loads(scores_file.read_text())
    speed = _TRANSLATED.search((work / f"{name}.log").read_text(encoding="utf-8") + out.read_text(encoding="utf-8"))
    scores["sentences_per_s"] = float(speed.group(3)) if speed else None
    return scores


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--ar", type=Path, help="your AR fairseq Transformer checkpoint (task translation), trained "
                                           "on --databin with the Difformer's sizes (default: train one)")
    p.add_argument("--databin", type=Path, help="the AR model's data-bin (joined dictionary; default: the "
                                                "shipped Multi30k, prepared)")
    p.add_argument("--ar-minutes", type=float, default=20, help="without --ar: the AR model's training minutes")
    p.add_argument("--minutes", type=float, default=20, help="the Difformer's training minutes (default 20)")
    p.add_argument("--smoke", action="store_true", help="every step in a few minutes: 500 pairs, 5 updates each")
    p.add_argument("--workdir", type=Path, default=REPO / "work" / "from_ar")
    args = p.parse_args(argv)
    if (args.ar is None) != (args.databin is None):
        p.error("give --ar and --databin together: the AR model and the data-bin it was trained on")
    if args.ar is not None and not args.ar.is_file():
        p.error(f"--ar {args.ar}: file not found")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    max_update = 5 if args.smoke else None
    start = time.time()

    databin = args.databin or prepare(work, 500 if args.smoke else None, 300 if args.smoke else 8000)
    ar = args.ar or train_ar(databin, work / "ar", args.ar_minutes, max_update)
    kd = distill(databin, ar, work / "distill", args.smoke)
    model = train_difformer(kd, ar, work / "difformer", args.minutes, max_update)

    results = {}
    for name, options, reranked in DECODINGS:
        checkpoint = ar if name.startswith("ar_") else model
        results[name] = decode(name, options, kd, checkpoint, ar, reranked, work)
    say("(e) test set, batch 100, on this CPU:")
    for name, scores in results.items():
        speed = scores["sentences_per_s"]
        say(f"    {name:22s} SacreBLEU {scores['sacrebleu']:6.2f}  BLEU {scores['tok_bleu']:6.2f}  "
            f"length ratio {scores['length_ratio']:.3f}  {speed or 0:7.1f} sentences/s")
    say(f"    ({results['ar_greedy']['sacrebleu_signature']})")
    (work / "results.json").write_text(json.dumps(results, indent=1))
    say(f"done in {time.time() - start:.0f} s; outputs in {work}")


if __name__ == "__main__":
    main()
