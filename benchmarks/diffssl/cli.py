"""The second system on SST-2: a text-free Difformer's frozen features under the DifFormer heads.

    python -m benchmarks.diffssl                 # every part (about 3 hours on 2 CPU cores)
    python -m benchmarks.diffssl --part grid       # one part (each needs the parts before it)
    python -m benchmarks.diffssl --quick           # every step on a small subset, a few minutes

Parts, in this order:

  prepare   the text model's text from ../shared/data (SST-2 training sentences without their
            labels, Multi30k English, QQP questions, AESLC subject lines), lowercased, BPE; SST-2
            train/dev binarised with it, with 100 %, 10 % and 1 % of the training labels
  lm        the text-free Difformer: --task difformer_lm, the benchmark's Difformer recipe
            (difformer_small, F = 4), --lm-minutes of training; a model trained again drops the
            grid, control and head results read from the old one
  grid      linear-probe dev accuracy of every decoder layer × noise level t: features extracted
            once (mean over the sentence), a logistic regression per cell
  control   the same probes at t = 0 on the untrained denoiser (the checkpoint's architecture,
            fresh weights): what the text model's training added to its features
  heads     linear probe, attention head, DifFormer (fusion) and DifFeed (feedback), each placed
            by the grid's best cell, 3 seeds, fairseq-train --task sentence_prediction_by_length for
            --head-minutes each
  scratch   a Transformer encoder of the denoiser's size (fairseq's roberta arch, 3 layers, 256
            wide) trained from scratch on the labels for the same minutes, 3 seeds
  labels    fusion, feedback and the scratch encoder with 10 % and 1 % of the training labels
  report    docs/diffssl.md and its plots

Each finished measurement is merged into benchmarks/results-diffssl.json at once; the report is
regenerated after every part. A rerun keeps the classifiers already measured with the same minutes
and feature placement (--redo trains them again). Run with nothing else busy on the machine.
"""

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from difformer_cli.commands import run_logged
from difformer_cli.recipes import OPTIMISATION, train_args

from .. import measure
from ..pipeline import Results, run_parts, say
from ..pipeline.commands import REPO, USER_DIR, shell
from . import report
from .probe import probe_grid
from .report import feature_placement

PARTS = ("prepare", "lm", "grid", "control", "heads", "scratch", "labels", "report")
SHARED = REPO.parent / "shared" / "data"
SEEDS = (1, 2, 3)
FRACTIONS = (1.0, 0.1, 0.01)
#: the grid's noise levels, training timesteps of T = 2000 (sqrt schedule: ᾱ ≈ 0.99 at 0, 0.93 at 10, 0.1 at 1600)
GRID_TIMESTEPS = (0, 10, 50, 100, 200, 400, 800, 1600)
HEAD_ARGS = ["--head-dim", "256", "--head-layers", "2", "--head-attention-heads", "4"]
HEAD_OPTIMISATION = ["--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
                     "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "200", "--warmup-init-lr", "1e-7",
                     "--weight-decay", "0.01", "--clip-norm", "1", "--batch-size", "64"]
#: fairseq's roberta encoder at the denoiser's size, reading the <s> the task puts first
SCRATCH_ARCH = ["--arch", "roberta", "--encoder-layers", "3", "--encoder-embed-dim", "256",
                "--encoder-ffn-embed-dim", "1024", "--encoder-attention-heads", "4", "--dropout", "0.1",
                "--max-positions", "512", "--init-token", "0"]
_VALID = re.compile(r"\| valid \| (\{.*\})\s*$")


class Scale:
    def __init__(self, quick):
        self.quick = quick
        self.lm_lines = 3000 if quick else None        # None: all the text
        self.labelled_lines = 600 if quick else None
        self.dev_lines = 200 if quick else None
        self.bpe_merges = 1000 if quick else 8000


class DiffSSLBenchmark:
    def __init__(self, args):
        self.args = args
        self.scale = Scale(args.quick)
        self.work = args.workdir
        self.results = Results(args.results, "quick" if args.quick else "full")

    # -- prepare ---------------------------------------------------------------------------------

    def text_files(self):
        """The unlabelled text, as difformer-prepare-text reads it (cut to a few lines when quick)."""
        files = [SHARED / "sst2" / "train.tsv", SHARED / "multi30k" / "train.en",
                 SHARED / "qqp" / "train.src", SHARED / "qqp" / "train.tgt", SHARED / "aeslc" / "train.jsonl"]
        if not self.scale.quick:
            return files
        cut = []
        for path in files:
            lines = path.read_text(encoding="utf-8").splitlines()
            keep = lines[: 1 + self.scale.lm_lines // len(files)]
            out = self.work / "subset" / path.parent.name / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(keep) + "\n", encoding="utf-8")
            cut.append(out)
        return cut

    def labelled_file(self, name, lines):
        path = SHARED / "sst2" / name
        if lines is None:
            return path
        out = self.work / "subset" / "sst2-labelled" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[: lines + 1]) + "\n", encoding="utf-8")
        return out

    @property
    def lm_dir(self):
        return self.work / "text"

    def sst2_dir(self, fraction):
        return self.work / f"sst2-{fraction:g}"

    def prepare(self):
        common = ["--lowercase", "--workers", 2]
        cmd = ["difformer-prepare-text", "--text", *self.text_files(), "--jsonl-field", "subject",
               "--bpe-merges", self.scale.bpe_merges, "--destdir", self.lm_dir, *common]
        say("preparing the text")
        run_logged(cmd, self.work / "logs" / "prepare-text.log")
        self.results.set("commands", "prepare_text", shell(cmd))
        counts = json.loads((self.lm_dir / "manifest.json").read_text())["counts"]
        self.results.set("data", "text_sentences", counts)
        train = self.labelled_file("train.tsv", self.scale.labelled_lines)
        dev = self.labelled_file("dev.tsv", self.scale.dev_lines)
        for fraction in FRACTIONS:
            cmd = ["difformer-prepare-text", "--labelled", "--train", train, "--valid", dev,
                   "--bpe-codes", self.lm_dir / "codes", "--srcdict", self.lm_dir / "bin" / "dict.txt",
                   "--label-fraction", fraction, "--destdir", self.sst2_dir(fraction), *common]
            say(f"preparing SST-2 with {fraction:.0%} of the labels")
            run_logged(cmd, self.work / "logs" / f"prepare-sst2-{fraction:g}.log")
            counts = json.loads((self.sst2_dir(fraction) / "manifest.json").read_text())["counts"]
            self.results.set("data", f"sst2_{fraction:g}", counts)

    # -- the text model --------------------------------------------------------------------------

    @property
    def lm_checkpoint(self):
        return self.work / "checkpoints" / "text" / "checkpoint_last.pt"

    def lm(self):
        minutes = self.args.lm_minutes
        save_dir = self.lm_checkpoint.parent
        recipe = train_args("difformer")
        recipe[recipe.index("--task") + 1] = "difformer_lm"
        cmd = ["fairseq-train", self.lm_dir / "bin", "--user-dir", USER_DIR, *recipe, *OPTIMISATION,
               "--cpu", "--max-tokens", "2048", "--num-workers", "0", "--stop-time-hours", minutes / 60,
               "--max-update", 10 ** 7, "--disable-validation", "--no-epoch-checkpoints",
               "--save-interval-updates", 500, "--keep-interval-updates", 1, "--log-format", "json",
               "--log-interval", 50, "--save-dir", save_dir]
        say(f"training the text-free Difformer for {minutes:g} min")
        log = self.work / "logs" / "train-text.log"
        usage = run_logged(cmd, log)
        updates = measure.final_updates(log.read_text())
        say(f"  {updates} updates")
        self.forget_features()
        self.results.set("lm", {"minutes": minutes, "updates": updates, "wall_s": round(usage["wall_s"], 1),
                                "command": shell(cmd)})

    def forget_features(self):
        """Drop every measurement read from the text model's features (the grid, the control and
        the heads over it; the scratch encoder reads none): after the model is trained again they
        describe a checkpoint that no longer exists, and a head kept by its placement alone would
        be mixed with the new model's."""
        data = self.results.data
        dropped = [part for part in ("grid", "control") if data.pop(part, None) is not None]
        for section in ("heads", "labels"):
            for system in [s for s in data.get(section, {}) if s != "scratch"]:
                del data[section][system]
                dropped.append(f"{section} {system}")
        if dropped:
            say(f"the text model is new: dropped the results read from the old one ({', '.join(dropped)})")
        self.results.save()

    # -- the linear-probe grid -------------------------------------------------------------------

    def grid(self):
        say(f"extracting features at layers 0 … N × t in {GRID_TIMESTEPS}, probing each")
        layers, accuracy = probe_grid(self.lm_checkpoint, self.sst2_dir(1.0), GRID_TIMESTEPS)
        cells = {f"{layer}@{t}": accuracy[i][j] for i, layer in enumerate(layers)
                 for j, t in enumerate(GRID_TIMESTEPS)}
        best = max(cells, key=cells.get)
        say(f"  best linear probe: layer {best.split('@')[0]} at t = {best.split('@')[1]}, {cells[best]:.2f} %")
        self.results.set("grid", {"layers": layers, "timesteps": list(GRID_TIMESTEPS), "accuracy": accuracy,
                                  "best": best})

    def control(self):
        say("probing the untrained denoiser's layers at t = 0")
        layers, accuracy = probe_grid(self.lm_checkpoint, self.sst2_dir(1.0), (0,), trained=False)
        self.results.set("control", {"layers": layers, "timesteps": [0], "accuracy": accuracy})

    def placement(self):
        """The grid's best layer and t, and the fusion's neighbourhood around them."""
        grid = self.results.get("grid")
        if not grid:
            sys.exit("diffssl: run --part grid first (the heads are placed by its best cell)")
        layer, t = (int(v) for v in grid["best"].split("@"))
        depth = max(grid["layers"])
        layers = sorted({max(1, layer - 1), max(1, layer), min(depth, layer + 1)})
        timesteps = sorted({max(1, t // 2), t, min(1999, 2 * t)})
        return layer, t, layers, timesteps

    def head_options(self, head):
        layer, t, layers, timesteps = self.placement()
        one = ["--feature-layers", str(layer), "--feature-timesteps", str(t)]
        several = ["--feature-layers", ",".join(map(str, layers)), "--feature-timesteps", ",".join(map(str, timesteps))]
        depth = max(self.results.get("grid")["layers"])
        return {
            "linear": ["--head", "linear", *one],
            "attention": ["--head", "attention", *one, *HEAD_ARGS],
            "fusion": ["--head", "fusion", *several, *HEAD_ARGS],
            "feedback": ["--head", "feedback", *several, "--feedback", f"{depth}:1", *HEAD_ARGS],
        }[head]

    # -- heads, scratch, labels ------------------------------------------------------------------

    def model_args(self, system):
        if system == "scratch":
            return SCRATCH_ARCH
        return ["--arch", "difformer_fusion", "--difformer-checkpoint", self.lm_checkpoint, *self.head_options(system)]

    def train_classifier(self, name, system, fraction, seed):
        """fairseq-train --task sentence_prediction_by_length for --head-minutes; the dev accuracy of the
        last checkpoint (validated once, when the time is up)."""
        model = self.model_args(system)
        save_dir = self.work / "checkpoints" / name
        cmd = ["fairseq-train", self.sst2_dir(fraction), "--user-dir", USER_DIR,
               "--task", "sentence_prediction_by_length", "--num-classes", 2, "--criterion", "sentence_prediction",
               *model, *HEAD_OPTIMISATION,
               "--seed", seed, "--cpu", "--num-workers", "0", "--stop-time-hours", self.args.head_minutes / 60,
               "--max-epoch", 10 ** 4, "--validate-interval", 10 ** 4, "--no-save", "--log-format", "json",
               "--log-interval", 50, "--save-dir", save_dir]
        say(f"training {name} for {self.args.head_minutes:g} min")
        log = self.work / "logs" / f"train-{name}.log"
        run_logged(cmd, log)
        records = [json.loads(m.group(1)) for m in map(_VALID.search, log.read_text().splitlines()) if m]
        if not records:
            sys.exit(f"diffssl: {log} has no validation")
        accuracy = float(records[-1]["valid_accuracy"])
        updates = measure.final_updates(log.read_text())
        say(f"  dev accuracy {accuracy:.2f} % after {updates} updates")
        return {"accuracy": accuracy, "updates": updates, "minutes": self.args.head_minutes,
                "command": shell(cmd)}

    def measure_classifier(self, keys, name, system, fraction, seed):
        """Train and record one classifier under ``keys`` in the results, unless a run with the
        same minutes and the same placement is already there (``--redo`` trains it again)."""
        done = self.results.get(*keys)
        if done and not self.args.redo and done["minutes"] == self.args.head_minutes and \
                feature_placement(done["command"]) == feature_placement(shell(self.model_args(system))):
            say(f"{name}: kept from {self.args.results.name} ({done['accuracy']:.2f} %); --redo trains it again")
            return
        self.results.set(*keys, self.train_classifier(name, system, fraction, seed))

    def heads(self):
        for head in ("linear", "attention", "fusion", "feedback"):
            for seed in SEEDS:
                self.measure_classifier(("heads", head, str(seed)), f"{head}-s{seed}", head, 1.0, seed)

    def scratch(self):
        for seed in SEEDS:
            self.measure_classifier(("heads", "scratch", str(seed)), f"scratch-s{seed}", "scratch", 1.0, seed)

    def labels(self):
        for fraction in FRACTIONS[1:]:
            for system in ("fusion", "feedback", "scratch"):
                self.measure_classifier(("labels", system, f"{fraction:g}"), f"{system}-labels{fraction:g}",
                                        system, fraction, 1)



def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.diffssl", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--part", action="append", choices=PARTS, help="run only this part (repeatable)")
    p.add_argument("--quick", action="store_true", help="a small subset and budgets of seconds: checks every step")
    p.add_argument("--lm-minutes", type=float, default=None, help="the text model's training (default 30; quick 1)")
    p.add_argument("--head-minutes", type=float, default=None,
                   help="each classifier's training (default 5; quick 0.3)")
    p.add_argument("--redo", action="store_true",
                   help="train every classifier again (default: keep those already in the results with the same "
                        "--head-minutes and feature placement)")
    p.add_argument("--workdir", type=Path, default=None, help="default work/diffssl[-quick]")
    p.add_argument("--results", type=Path, default=None, help="default benchmarks/results-diffssl.json (quick: the work folder's results.json)")
    p.add_argument("--docs", type=Path, default=None,
                   help="where diffssl.md and its plots go (default docs/; quick: the work folder's docs/)")
    args = p.parse_args(argv)
    args.lm_minutes = args.lm_minutes or (1 if args.quick else 30)
    args.head_minutes = args.head_minutes or (0.3 if args.quick else 5)
    args.workdir = args.workdir or REPO / "work" / ("diffssl-quick" if args.quick else "diffssl")
    args.results = args.results or (args.workdir / "results.json" if args.quick
                                    else REPO / "benchmarks" / "results-diffssl.json")
    args.docs = args.docs or (args.workdir / "docs" if args.quick else REPO / "docs")
    bench = DiffSSLBenchmark(args)
    parts = [part for part in PARTS if part in (args.part or PARTS)]
    if parts != ["report"]:  # the report alone measures nothing: the machine line stays the measuring one's
        bench.results.set("machine", measure.machine_description())
    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq turned the root logger on
    steps = [(part, None if part == "report" else getattr(bench, part)) for part in parts]
    run_parts(bench.results, steps, lambda: report.write(bench.results.data, args.docs), args.results)

