#!/usr/bin/env python3
"""The quickstart: Multi30k German → English with Difformer on a CPU, end to end.

    data/multi30k (shipped)  → difformer-prepare (joint BPE, fairseq-preprocess)
                             → fairseq-train difformer_small for --minutes (default 30)
                             → fairseq-generate test2016 → difformer-score → SacreBLEU, BLEU, examples

Re-running reuses what is done: the prepared data-bin, a finished training (its budget spent),
the decoded test set. An interrupted training resumes from checkpoint_last.pt, and fairseq counts
the time already spent against the budget.

The data are the dataset's lowercased, Moses-tokenised release, so the scores are of lowercased
text: SacreBLEU on Moses-detokenised output against the detokenised lowercased references, and
tokenised BLEU on the tokenised text (the paper's protocol).
"""

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from difformer_cli import user_dir  # noqa: E402
from difformer_cli.commands import CommandFailed, run_logged  # noqa: E402
from difformer_cli.generate_output import parse_generate_output  # noqa: E402
from difformer_cli.recipes import recipe  # noqa: E402

DATA = REPO / "data" / "multi30k"
TRAIN_ARGS = [
    *recipe("difformer", "cpu"), "--log-format", "simple", "--log-interval", "50",
    "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates", "200",
    "--max-update", "1000000",
]
DECODE_ARGS = [
    "--decoding-steps", "20", "--decoding-early-stopping", "5",
    "--length-beam-size", "3", "--noise-beam-size", "2", "--decoding-length-offset", "2",
]


def say(message):
    print(f"[quickstart] {message}", flush=True)


def clock(seconds):
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def run(cmd, log: Path, **kwargs):
    """Run ``cmd`` with its output in ``log``; a failure ends the quickstart with the log's tail."""
    try:
        return run_logged(cmd, log, **kwargs)
    except CommandFailed as exc:
        sys.exit(f"quickstart: {exc}")


def prepare(work: Path, max_lines, bpe_merges):
    """Subset (for the smoke setting) and prepare the shipped data with difformer-prepare."""
    source = DATA
    if max_lines:
        source = work / "subset"
        source.mkdir(parents=True, exist_ok=True)
        for name in ("train", "val", "test_2016_flickr"):
            for lang in ("de", "en"):
                lines = (DATA / f"{name}.{lang}").read_text(encoding="utf-8").splitlines()
                n = max_lines if name == "train" else max(1, max_lines // 10)
                (source / f"{name}.{lang}").write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    run(["difformer-prepare", "--source-lang", "de", "--target-lang", "en", "--no-tokenize",
         "--trainpref", source / "train", "--validpref", source / "val",
         "--testpref", source / "test_2016_flickr", "--bpe-merges", bpe_merges,
         "--destdir", work / "data"], work / "prepare.log", on_line=lambda line: print("   ", line.rstrip()))
    return work / "data" / "bin"


def previous_training_time(checkpoint: Path) -> float:
    """Seconds of training already in a checkpoint (fairseq counts them against the budget)."""
    if not checkpoint.exists():
        return 0.0
    import torch

    import fairseq_difformer  # noqa: F401  (lets torch load fairseq checkpoints)

    state = torch.load(checkpoint, map_location="cpu")
    return float(state.get("extra_state", {}).get("previous_training_time", 0.0))


def train(databin: Path, save_dir: Path, minutes: float, max_update):
    """fairseq-train with a wall-clock budget, showing progress and an estimate of time left."""
    done = save_dir / "training.done"
    if done.exists():
        say(f"training already finished ({save_dir}); delete {done.name} to train further")
        return
    budget = minutes * 60
    cmd = ["fairseq-train", databin, "--user-dir", user_dir(), *TRAIN_ARGS,
           "--save-dir", save_dir, "--stop-time-hours", minutes / 60]
    if max_update:  # the smoke setting: a handful of updates, each one logged
        cmd[cmd.index("--max-update") + 1] = max_update
        cmd[cmd.index("--log-interval") + 1] = 1
    say(f"training difformer_small for {minutes:g} min (resumes from {save_dir}/checkpoint_last.pt if any)")
    start = time.time() - previous_training_time(save_dir / "checkpoint_last.pt")

    def show_progress(line):
        if "Loaded checkpoint" in line:
            say("resuming: " + line.split("|")[-1].strip())
        match = re.search(r"loss=([\d.]+).*?num_updates=(\d+)", line)
        if "train_inner" in line and match:
            elapsed = time.time() - start
            say(f"update {int(match.group(2)):5d}  loss {match.group(1)}  elapsed {clock(elapsed)}  "
                f"~{clock(max(0.0, budget - elapsed))} left of {clock(budget)}")

    run(cmd, save_dir.parent / "train.log", on_line=show_progress, append=True)
    done.touch()


def decode_and_score(databin: Path, checkpoint: Path, out: Path):
    """Translate test2016 into ``out`` unless it holds this checkpoint's translation with this
    command already (the command is kept beside it), then score it."""
    cmd = ["fairseq-generate", databin, "--user-dir", user_dir(), "--task", "difformer",
           "--path", checkpoint, "--gen-subset", "test", "--batch-size", "100",
           "--remove-bpe", "--cpu", "--seed", "1", *DECODE_ARGS]
    command_file = out.with_suffix(".command")
    command = shlex.join(str(a) for a in cmd)
    if (not out.exists() or out.stat().st_mtime < checkpoint.stat().st_mtime
            or not command_file.exists() or command_file.read_text() != command):
        say("translating test2016: 20 steps, early stopping 5, 3 lengths × 2 noises centred 2 tokens "
            "above the predicted length")
        partial = out.with_suffix(".partial")
        run(cmd, out.with_suffix(".log"), stdout=partial)
        partial.rename(out)
        command_file.write_text(command)
    scores = out.with_suffix(".scores.json")
    run(["difformer-score", "--generate-output", out, "--detok", "en", "--json"], out.with_suffix(".log"),
        stdout=scores, append=True)
    return json.loads(scores.read_text())


def show_examples(generate_output: Path, n=3):
    entries = parse_generate_output(generate_output.read_text(encoding="utf-8").splitlines())
    for i in sorted(entries)[:n]:
        print(f"  source:     {entries[i]['S']}\n  reference:  {entries[i]['T']}\n  hypothesis: {entries[i]['H']}\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30, help="training budget in minutes (default 30)")
    p.add_argument("--smoke", action="store_true",
                   help="a check of every step in about a minute: 500 training pairs, 5 updates")
    p.add_argument("--workdir", type=Path, default=REPO / "work" / "quickstart",
                   help="where data, checkpoints and outputs go (default work/quickstart)")
    args = p.parse_args(argv)
    if args.smoke:
        max_lines, bpe_merges, max_update, args.minutes = 500, 300, 5, min(args.minutes, 2)
    else:
        max_lines, bpe_merges, max_update = None, 8000, None
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()

    databin = prepare(work, max_lines, bpe_merges)
    save_dir = work / "checkpoints"
    save_dir.mkdir(exist_ok=True)
    train(databin, save_dir, args.minutes, max_update)
    scores = decode_and_score(databin, save_dir / "checkpoint_last.pt", work / "generate-test.txt")

    say("examples from test2016:")
    show_examples(work / "generate-test.txt")
    say(f"SacreBLEU {scores['sacrebleu']:.2f}  ({scores['sacrebleu_signature']}, lowercased test2016)")
    say(f"tokenised BLEU {scores['tok_bleu']:.2f}  length ratio {scores['length_ratio']:.3f}")
    say(f"done in {clock(time.time() - start)}; outputs in {work}")


if __name__ == "__main__":
    main()
