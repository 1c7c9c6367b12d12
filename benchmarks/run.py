#!/usr/bin/env python3
"""Difformer against fairseq's AR Transformer and CMLM on Multi30k de→en, and the paper's ablations.

    python benchmarks/run.py                       # everything (about 10 hours on 2 CPU cores)
    python benchmarks/run.py --part throughput --part train --part decode     # about 105 minutes
    python benchmarks/run.py --part ablations --part profile                  # about 90 minutes
    python benchmarks/run.py --part sweep --sweep-variants reference warmup_200   # about 55 minutes
    python benchmarks/run.py --quick               # every step on a small subset, a few minutes
    python benchmarks/run.py --device cuda --databin BIN --budget-minutes 1 \
        --part throughput --part train --part decode --part precision   # IWSLT size, --fp16, on a GPU

Parts (run in this order when several are given; each needs only what the parts before it left
in the work directory):

  throughput  each system trained for the same number of updates: words/s, peak memory
  train       each system trained for --budget-minutes of wall-clock time (equal budgets)
  decode      every decoding setting on test2016 at batch 100 and batch 1: sentences/s, peak
              memory, SacreBLEU and tokenised BLEU (needs train)
  samplers    every sampler × steps × candidates on the trained Difformer, against AR beam 5
              (needs train)
  distill     sequence-level distillation at an equal total budget (--distill-budget-minutes):
              for each --teacher-minutes T, an AR teacher trained T minutes, the training set
              translated with it, each student (Difformer, CMLM) trained on that for the
              minutes left; against the students trained on the references for the whole budget
  from_ar     one AR Transformer as initialisation (--init-from-ar), distillation teacher and
              reranker: four Difformer arms (scratch / AR-initialised × references / distilled)
              at one budget (--budget-minutes, or --from-ar-updates), their learning curves, each
              decoded 1×1 and 3×2 AR-reranked against AR greedy and beam 5 (benchmarks/from_ar.py)
  summarization  AESLC (email → subject line): the AR Transformer and Difformer of the same size
              trained --summarization-minutes each with the summarization recipe, decoded on
              the dev set: ROUGE-1/2/L and length ratio
  precision   the same checkpoints decoded in float32 and in fp16 (--fp16): BLEU of each and the
              difference (needs train)
  ablations   the paper's ablations, each trained --ablation-minutes: BLEU and embedding collapse
  sweep       the small-budget recipe sweep: each recipe variant (systems.SWEEP) trained
              --sweep-minutes from 3 seeds (--sweep-seeds), the default decoding's SacreBLEU on
              valid and test2016, each variant against its baseline's seed band; a run already in
              the results file with the same command is not trained again
  profile     torch profiler on one training step and one decoding batch (needs train)
  report      only regenerate the report from the results file

Each finished measurement is merged into the results file at once, so parts run in separate
sessions add up to one results file; the report (docs/benchmarks.md and its PNG plots) is
regenerated after every part. Quick-mode results never merge with full-run results: a quick run
writes its results and report into its work folder (work/benchmarks-quick), never over the
committed ones. Run with nothing else busy on the machine.

``--device cuda`` measures the IWSLT-size systems (AR transformer_iwslt_de_en size, CMLM, Difformer
difformer_iwslt_de_en) with --fp16, decoding at batch 100 and at --max-tokens 8192; it runs fairseq
as ``python -m fairseq_cli.*`` (no console scripts needed), writes results-cuda.json and the report
under docs/gpu/, and with ``--databin`` takes an already prepared data-bin.
"""

import argparse
import datetime
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import from_ar, measure, report, systems  # noqa: E402
from difformer_cli import user_dir  # noqa: E402
from difformer_cli.commands import CommandFailed, run_logged  # noqa: E402
from difformer_cli.recipes import SUMMARIZATION_DECODE_ARGS, recipe, summarization_recipe, with_options  # noqa: E402

USER_DIR = user_dir()
#: each distillation student's decodings: the first alone where the arm has no AR teacher (the
#: references arm), all of them where the teacher can rerank. fairseq's own CMLM reranking
#: (--iter-decode-with-external-reranker) reads the encoder output as a namedtuple, which the
#: Transformer of fairseq 0.12 no longer returns, so CMLM is measured without a reranker.
#: Difformer is decoded at --decoding-length-offset 0, as the part was first measured (before the
#: offset of 2 became the default), so that arms measured in different sessions compare.
DISTILL_DECODINGS = {"difformer": ("difformer_default_length0", "difformer_default_3x2_rerank_length0"),
                     "cmlm": ("cmlm_lb3",)}
PARTS = ("throughput", "train", "decode", "samplers", "distill", "from_ar", "summarization", "precision", "ablations",
         "sweep", "profile", "report")


def say(message):
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Results:
    """The results file: read, updated one measurement at a time, written back atomically."""

    def __init__(self, path: Path, mode: str):
        self.path = path
        self.data = {}
        if path.exists():
            self.data = json.loads(path.read_text())
            if self.data.get("mode") != mode:
                say(f"{path} holds {self.data.get('mode')} results; starting a fresh {mode} file")
                self.data = {}
        self.data["mode"] = mode

    def set(self, *keys_and_value):
        *keys, last, value = keys_and_value
        node = self.data
        for key in keys:
            node = node.setdefault(key, {})
        node[last] = value
        self.save()

    def get(self, *keys, default=None):
        node = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)


class Benchmark:
    say = staticmethod(say)

    def __init__(self, args):
        self.args = args
        self.device = args.device
        self.scale = systems.QUICK if args.quick else systems.CUDA if args.device == "cuda" else systems.FULL
        self.work = args.workdir
        self.results = Results(args.results, "quick" if args.quick else "full" if args.device == "cpu" else "cuda")
        self._databin = args.databin

    def tool(self, name):
        """A console script, or on a GPU machine (no console scripts) the module it runs."""
        modules = {"fairseq-train": "fairseq_cli.train", "fairseq-generate": "fairseq_cli.generate",
                   "difformer-score": "difformer_cli.score", "difformer-distill": "difformer_cli.distill"}
        return [name] if self.device == "cpu" else [sys.executable, "-m", modules[name]]

    # -- data ------------------------------------------------------------------------------------

    @property
    def databin(self) -> Path:
        """Multi30k prepared by difformer-prepare: joint BPE, one dictionary for both languages."""
        if self._databin is None:
            source = self.args.data
            if self.scale.train_lines:
                source = self.work / "subset"
                source.mkdir(parents=True, exist_ok=True)
                for name, n in (("train", self.scale.train_lines), ("val", self.scale.eval_lines),
                                ("test_2016_flickr", self.scale.eval_lines)):
                    for lang in ("de", "en"):
                        write_head(self.args.data / f"{name}.{lang}", n, source / f"{name}.{lang}")
            destdir = self.work / "data"
            cmd = ["difformer-prepare", "--source-lang", "de", "--target-lang", "en", "--no-tokenize",
                   "--trainpref", source / "train", "--validpref", source / "val",
                   "--testpref", source / "test_2016_flickr", "--bpe-merges", self.scale.bpe_merges,
                   "--destdir", destdir]
            say(f"preparing the data ({destdir})")
            run_logged(cmd, self.work / "logs" / "prepare.log")
            self.results.set("commands", "prepare", _shell(cmd))
            self._databin = destdir / "bin"
        return self._databin

    @property
    def aeslc_databin(self) -> Path:
        """AESLC prepared by difformer-prepare from its JSON lines (bodies cut to 200 words, joint
        BPE); dev is both the valid and the test split (AESLC's test set is not used here)."""
        destdir = self.work / "aeslc"
        if not (destdir / "bin" / "dict.subject.txt").exists():
            train, dev = self.args.aeslc / "train.jsonl", self.args.aeslc / "dev.jsonl"
            if self.scale.train_lines:
                subset = self.work / "aeslc-subset"
                subset.mkdir(parents=True, exist_ok=True)
                for path, n in ((train, self.scale.train_lines), (dev, self.scale.eval_lines)):
                    write_head(path, n, subset / path.name)
                train, dev = subset / train.name, subset / dev.name
            cmd = ["difformer-prepare", "--train-jsonl", train, "--valid-jsonl", dev, "--test-jsonl", dev,
                   "--source-field", "body", "--target-field", "subject", "--source-lang", "body",
                   "--target-lang", "subject", "--max-source-words", 200, "--bpe-merges", self.scale.bpe_merges,
                   "--destdir", destdir]
            say(f"preparing AESLC ({destdir})")
            run_logged(cmd, self.work / "logs" / "prepare-aeslc.log")
            self.results.set("commands", "prepare aeslc", _shell(cmd))
        return destdir / "bin"

    def train_command(self, system, save_dir, extra=(), databin=None, summarization=False, options=None):
        """fairseq-train with ``system``'s recipe (the summarization one if ``summarization``),
        its options' values replaced by ``options`` (:func:`~difformer_cli.recipes.with_options`),
        then ``extra``."""
        system_recipe = (summarization_recipe if summarization else recipe)(system, self.device)
        return [*self.tool("fairseq-train"), databin or self.databin, "--user-dir", USER_DIR,
                *with_options(system_recipe, options or {}), *extra, "--save-dir", save_dir]

    # -- part 1: throughput ----------------------------------------------------------------------

    def throughput(self):
        updates = self.scale.throughput_updates
        for system in systems.SYSTEMS:
            say(f"throughput: {system}, {updates} updates")
            save_dir = self.work / "throughput" / system
            shutil.rmtree(save_dir, ignore_errors=True)
            cmd = self.train_command(system, save_dir, [
                "--max-update", updates, "--disable-validation", "--no-save",
                "--log-format", "json", "--log-interval", self.scale.log_interval])
            log = self.work / "logs" / f"throughput-{system}.log"
            usage = run_logged(cmd, log)
            speed = measure.steady_words_per_second(measure.training_log_records(log.read_text()))
            say(f"  {speed['words_per_s']:.0f} words/s, peak memory {usage['peak_rss_mib']:.0f} MiB")
            self.results.set("train_words_per_s", system, round(speed["words_per_s"], 1))
            self.results.set("train_peak_rss_mib", system, round(usage["peak_rss_mib"], 1))
            self.results.set("throughput", system, {**speed, "total_updates": updates,
                                                    "command": _shell(cmd)})

    # -- part 2: equal-budget training -----------------------------------------------------------

    def budget_command(self, name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        """The fairseq-train command of :meth:`train_for_budget`: ``minutes`` of training, the
        checkpoints in checkpoints/``name``."""
        return self.train_command(
            system, self.work / "checkpoints" / name, databin=databin, summarization=summarization,
            options=options, extra=[
                *extra, "--stop-time-hours", minutes / 60, "--max-update", 10 ** 7,
                "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates", 500,
                "--keep-interval-updates", 1, "--log-format", "json", "--log-interval", self.scale.log_interval])

    def train_for_budget(self, name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        """Train until ``minutes`` of training time are spent (on ``databin``, default the
        benchmark's; with the summarization recipe if ``summarization``; the recipe's ``options``
        replaced); resumes an interrupted run and reuses a finished one with the same budget and
        command."""
        cmd = self.budget_command(name, system, minutes, extra, databin, summarization, options)
        return self.run_training(name, cmd, {"minutes": minutes})

    def run_training(self, name, cmd, budget):
        """Run the fairseq-train command ``cmd`` (checkpoints in checkpoints/``name``) unless a
        finished run of the same command is there; ``budget`` ({"minutes": M} or {"updates": N})
        goes into its summary."""
        save_dir = self.work / "checkpoints" / name
        described = " ".join(f"{value:g} {unit}" for unit, value in budget.items())
        done = save_dir / "training.json"
        if done.exists() and json.loads(done.read_text())["command"] == _shell(cmd):
            say(f"{name}: already trained for {described} ({save_dir})")
            return json.loads(done.read_text())
        if done.exists():
            shutil.rmtree(save_dir)
        say(f"training {name} for {described}")
        log = self.work / "logs" / f"train-{name}.log"
        usage = run_logged(cmd, log)
        summary = {
            "minutes": budget.get("minutes"),
            "updates": measure.final_updates(log.read_text()),
            "words_per_s": training_words_per_s(log.read_text()),
            "wall_s": round(usage["wall_s"], 1),
            "peak_rss_mib": round(usage["peak_rss_mib"], 1),
            "checkpoint": str(save_dir / "checkpoint_last.pt"),
            "command": _shell(cmd),
        }
        done.write_text(json.dumps(summary, indent=2))
        say(f"  {summary['updates']} updates")
        return summary

    def train(self):
        minutes = self.args.budget_minutes
        for system in self.args.systems or systems.SYSTEMS:
            summary = self.train_for_budget(system, system, minutes)
            self.results.set("training", system, summary)

    # -- part 3: decoding ------------------------------------------------------------------------

    def checkpoint(self, name):
        path = self.work / "checkpoints" / name / "checkpoint_last.pt"
        if not (path.parent / "training.json").exists():
            sys.exit(f"benchmark: {name} is not trained yet ({path.parent}); run --part train first")
        return path

    def generate_command(self, setting, batch_size, checkpoint=None, precision=None, reranker=None,
                         databin=None, extra=(), subset="test"):
        path = str(checkpoint or self.checkpoint(setting.system))
        if setting.reranker:
            path += ":" + str(reranker or self.checkpoint("ar"))
        batching = (["--batch-size", batch_size] if batch_size
                    else ["--max-tokens", systems.DECODE_MAX_TOKENS])
        return [*self.tool("fairseq-generate"), databin or self.databin, "--user-dir", USER_DIR,
                "--task", systems.GENERATE_TASK[setting.system], "--path", path, "--gen-subset", subset,
                *batching, "--required-batch-size-multiple", 1,
                *(systems.PRECISION_ARGS[self.device][precision] if precision
                  else systems.DECODE_DEVICE_ARGS[self.device]), *setting.args, *extra]

    def generate(self, setting, batch_size, checkpoint=None, tag=None, precision=None, reranker=None,
                 databin=None, extra=(), subset="test"):
        """Decode ``subset`` of ``databin`` (default the benchmark's test split) with ``setting``,
        ``extra`` options added: the output file and the speed, peak memory and command."""
        tag = tag or setting.name
        out = self.work / "generate" / f"{tag}-b{batch_size}.txt"
        cmd = self.generate_command(setting, batch_size, checkpoint, precision, reranker, databin, extra, subset)
        log = self.work / "logs" / f"generate-{tag}-b{batch_size}.log"
        usage = run_logged(cmd, log, stdout=out)
        # fairseq-generate's log lines go to stderr or stdout depending on who configured logging.
        speed = measure.generate_speed(log.read_text(encoding="utf-8") + out.read_text(encoding="utf-8"))
        expected = count_sentences(databin or self.databin, subset)
        if speed["sentences"] != expected:
            raise CommandFailed(f"{out}: {speed['sentences']} sentences decoded, the test set has {expected}")
        return out, {**speed, "peak_rss_mib": round(usage["peak_rss_mib"], 1), "command": _shell(cmd)}

    def score(self, generate_output):
        # BPE is removed here, not by fairseq-generate, so that lengths are counted in BPE tokens.
        cmd = [*self.tool("difformer-score"), "--generate-output", generate_output, "--remove-bpe",
               "--detok", "en", "--json"]
        log = generate_output.with_suffix(".score.json")
        run_logged(cmd, self.work / "logs" / "score.log", stdout=log)
        return json.loads(log.read_text())

    def decode(self):
        selected = [s for s in systems.DECODING_SETTINGS
                    if not self.args.settings or s.name in self.args.settings]
        for batch_size in self.scale.decode_batch_sizes:
            for setting in selected:
                say(f"decoding {setting.name} at batch {batch_size}")
                out, speed = self.generate(setting, batch_size)
                say(f"  {speed['sentences_per_s']:.2f} sentences/s, peak memory {speed['peak_rss_mib']:.0f} MiB")
                batch = f"batch{batch_size}" if batch_size else f"tokens{systems.DECODE_MAX_TOKENS}"
                key = "decode_sentences_per_s" if batch_size == 100 else f"decode_sentences_per_s_{batch}"
                self.results.set(key, setting.name, speed["sentences_per_s"])
                self.results.set("decoding", setting.name, batch, speed)
                if batch_size == self.scale.decode_batch_sizes[0]:
                    scores = self.score(out)
                    say(f"  SacreBLEU {scores['sacrebleu']:.2f}, tokenised BLEU {scores['tok_bleu']:.2f}")
                    self.results.set("bleu", setting.name, round(scores["sacrebleu"], 2))
                    self.results.set("tok_bleu", setting.name, round(scores["tok_bleu"], 2))
                    self.results.set("decoding", setting.name, "scores", scores)
        self.results.set("decoding_settings", {s.name: {"label": s.label, "system": s.system, "steps": s.steps}
                                               for s in systems.DECODING_SETTINGS})
        # Each system's BLEU: that of its best decoding setting.
        for system in systems.SYSTEMS:
            scored = {name: bleu for name, bleu in self.results.get("bleu", default={}).items()
                      if name in systems.SETTINGS_BY_NAME and systems.SETTINGS_BY_NAME[name].system == system}
            if scored:
                best = max(scored, key=scored.get)
                self.results.set("bleu", system, scored[best])
                self.results.set("tok_bleu", system, self.results.get("tok_bleu", best))
                self.results.set("best_setting", system, best)

    # -- part: samplers --------------------------------------------------------------------------

    def samplers(self):
        """Every sampler × steps × early stopping × candidates on the trained Difformer (batch
        100): SacreBLEU and sentences/s, with AR beam 5 decoded in the same run as the speed
        baseline."""
        batch = self.scale.decode_batch_sizes[0]
        baseline = systems.SETTINGS_BY_NAME[systems.BASELINE_SETTING]
        say(f"decoding the baseline {baseline.name} at batch {batch}")
        _, speed = self.generate(baseline, batch, tag=f"samplers-{baseline.name}")
        self.results.set("samplers_baseline", {"setting": baseline.name, "sentences_per_s": speed["sentences_per_s"],
                                               "command": speed["command"]})
        for setting, early_stopping in systems.sampler_settings(self.scale.sampler_steps):
            say(f"decoding {setting.name}")
            out, speed = self.generate(setting, batch)
            scores = self.score(out)
            say(f"  SacreBLEU {scores['sacrebleu']:.2f}, {speed['sentences_per_s']:.2f} sentences/s")
            sampler, lengths, noises = (setting.args[setting.args.index(flag) + 1] for flag in
                                        ("--decoding-sampler", "--length-beam-size", "--noise-beam-size"))
            self.results.set("samplers", setting.name, {
                "sampler": sampler, "steps": setting.steps, "early_stopping": early_stopping,
                "candidates": f"{lengths}x{noises}",
                "bleu": round(scores["sacrebleu"], 2), "tok_bleu": round(scores["tok_bleu"], 2),
                "sentences_per_s": speed["sentences_per_s"], "command": speed["command"],
            })

    # -- part: distillation ----------------------------------------------------------------------

    def distill(self):
        """Sequence-level distillation at an equal total budget of B minutes: for each teacher
        share T, the AR teacher trained T minutes, the training set translated with beam 5 (its
        wall-clock time counted), each student (--distill-students: Difformer, CMLM) trained on
        the distilled data for the minutes left; Difformer decoded by default 1×1 and 3×2 with the
        teacher as AR reranker, CMLM with its best setting (length beam 3); against the students
        trained on the references for all B minutes (no AR model in that budget, so no reranker)."""
        budget = self.args.distill_budget_minutes
        for teacher_minutes in self.args.teacher_minutes:
            if not 0 < teacher_minutes < budget:
                sys.exit(f"benchmark: --teacher-minutes {teacher_minutes:g} must lie between 0 and "
                         f"--distill-budget-minutes {budget:g} (the teacher's share of the budget)")
            self.distillation_arm(budget, teacher_minutes)
        if not self.args.teacher_only:
            self.distillation_arm(budget, None)

    def distillation_arm(self, budget, teacher_minutes):
        arm = f"teacher{teacher_minutes:g}" if teacher_minutes else "references"
        name = f"distill-B{budget:g}-{arm}"
        entry = {"budget_minutes": budget, "teacher_minutes": teacher_minutes or 0, "commands": {}}
        databin, teacher = None, None
        if teacher_minutes:
            teacher_run = self.train_for_budget(f"{name}-teacher", "ar", teacher_minutes)
            teacher = Path(teacher_run["checkpoint"])
            out, _ = self.generate(systems.SETTINGS_BY_NAME["ar_beam5"], self.scale.decode_batch_sizes[0],
                                   teacher, tag=f"{name}-teacher")
            entry.update(teacher_updates=teacher_run["updates"],
                         teacher_bleu=round(self.score(out)["sacrebleu"], 2))
            databin, entry["distill_minutes"] = self.distilled_databin(name, teacher)
            say(f"  teacher BLEU {entry['teacher_bleu']}, distillation {entry['distill_minutes']} min")
        # What is left of the budget; rounded so that a resumed run rebuilds the same command.
        minutes = round(budget - entry["teacher_minutes"] - entry.get("distill_minutes", 0), 2)
        entry["difformer_minutes"] = minutes  # every student trains for these minutes
        for system in self.args.distill_students:
            student = self.train_for_budget(f"{name}-{system}", system, minutes, databin=databin)
            entry[f"{system}_updates"] = student["updates"]
            entry["commands"][system] = student["command"]
            for setting_name in DISTILL_DECODINGS[system][:1 if teacher is None else None]:
                say(f"decoding {name} {setting_name}")
                setting = systems.SETTINGS_BY_NAME[setting_name]
                out, speed = self.generate(setting, self.scale.decode_batch_sizes[0], Path(student["checkpoint"]),
                                           tag=f"{name}-{setting_name}", reranker=teacher if setting.reranker else None)
                scores = self.score(out)
                say(f"  SacreBLEU {scores['sacrebleu']:.2f}")
                entry[setting_name] = {"bleu": round(scores["sacrebleu"], 2), "tok_bleu": round(scores["tok_bleu"], 2),
                                       "length_ratio": scores.get("length_ratio"),
                                       "sentences_per_s": speed["sentences_per_s"], "command": speed["command"]}
        self.results.set("distillation", name, entry)

    def distilled_databin(self, name, teacher: Path):
        """The training set translated by ``teacher`` (difformer-distill), and the minutes it took,
        kept beside the data-bin so that a resumed run counts the same minutes."""
        destdir = self.work / "distill" / name
        timing = destdir / "timing.json"
        if not timing.exists():
            shutil.rmtree(destdir, ignore_errors=True)
            cmd = [*self.tool("difformer-distill"), self.databin, "--destdir", destdir, "--teacher", teacher,
                   "--beam", 5, *(["--cpu"] if self.device == "cpu" else [])]
            say(f"distilling with {teacher}")
            usage = run_logged(cmd, self.work / "logs" / f"{name}-distill.log")
            timing.write_text(json.dumps({"minutes": round(usage["wall_s"] / 60, 2), "command": _shell(cmd)}))
        return destdir / "bin", json.loads(timing.read_text())["minutes"]

    # -- part: from_ar ---------------------------------------------------------------------------

    def from_ar(self):
        from_ar.FromAR(self).run()

    @staticmethod
    def shell(cmd) -> str:
        return _shell(cmd)

    # -- part: summarization ---------------------------------------------------------------------

    def summarization(self):
        """AESLC at an equal budget: the AR Transformer and Difformer, the same size, each trained
        --summarization-minutes with the summarization recipe (sources cut to 64 tokens), decoded
        on the dev set (batch 100; Difformer's 3×2 reranked by this AR model) and scored: ROUGE-1/2/L
        F1 and the length ratio."""
        databin, minutes = self.aeslc_databin, self.args.summarization_minutes
        trained = {system: self.train_for_budget(f"aeslc-{system}", system, minutes, databin=databin,
                                                 summarization=True)
                   for system in ("ar", "difformer")}
        batch = self.scale.decode_batch_sizes[0]
        for name in systems.SUMMARIZATION_SETTINGS:
            setting = systems.SETTINGS_BY_NAME[name]
            say(f"decoding AESLC with {name}")
            out, speed = self.generate(setting, batch, Path(trained[setting.system]["checkpoint"]),
                                       tag=f"aeslc-{name}", reranker=Path(trained["ar"]["checkpoint"]),
                                       databin=databin, extra=SUMMARIZATION_DECODE_ARGS)
            scores = self.score(out)
            say(f"  ROUGE-1/2/L {scores['rouge1']:.2f} / {scores['rouge2']:.2f} / {scores['rougeL']:.2f}")
            self.results.set("summarization", "decoding", name, {
                **{key: round(scores[key], 2) for key in ("rouge1", "rouge2", "rougeL")},
                "length_ratio": round(scores["length_ratio"], 3), "label": setting.label,
                "sentences_per_s": speed["sentences_per_s"], "command": speed["command"]})
            if name == systems.BASELINE_SETTING:
                self.results.set("summarization", "lead", lead_baseline(out, self.args.aeslc / "train.jsonl"))
        self.results.set("summarization", "training", {system: {key: t[key] for key in ("minutes", "updates", "command")}
                                                       for system, t in trained.items()})
        self.results.set("summarization", "dev_sentences", count_sentences(databin))

    # -- part: precision -------------------------------------------------------------------------

    def precision(self):
        """Each checkpoint decoded in float32 and in fp16 (the same noise seed): the BLEU each
        gives and the difference (fp16 − float32)."""
        for name in systems.PRECISION_SETTINGS:
            setting = systems.SETTINGS_BY_NAME[name]
            scores = {}
            for precision in ("float32", "fp16"):
                say(f"decoding {name} in {precision}")
                out, speed = self.generate(setting, 100, tag=f"{name}-{precision}", precision=precision)
                scores[precision] = {"bleu": round(self.score(out)["sacrebleu"], 2),
                                     "sentences_per_s": speed["sentences_per_s"], "command": speed["command"]}
            difference = round(scores["fp16"]["bleu"] - scores["float32"]["bleu"], 2)
            say(f"  SacreBLEU float32 {scores['float32']['bleu']}, fp16 {scores['fp16']['bleu']} ({difference:+.2f})")
            self.results.set("precision", name, {**scores, "difference": difference})

    # -- part 4: ablations -----------------------------------------------------------------------

    def ablations(self):
        minutes = self.args.ablation_minutes
        setting = systems.SETTINGS_BY_NAME["difformer_20"]
        variants = self.args.variants or list(systems.ABLATIONS)
        for variant in variants:
            summary = self.train_for_budget(f"ablation-{variant}", "difformer", minutes,
                                            systems.ABLATIONS[variant])
            checkpoint = Path(summary["checkpoint"])
            say(f"decoding ablation {variant}")
            out, speed = self.generate(setting, self.scale.decode_batch_sizes[0], checkpoint,
                                       tag=f"ablation-{variant}")
            scores = self.score(out)
            collapse = collapse_statistics(checkpoint, systems.rescaling_factor(variant))
            say(f"  SacreBLEU {scores['sacrebleu']:.2f}, embedding spread {collapse['spread']:.3f}, "
                f"mean distance {collapse['mean_distance']:.2f}")
            self.results.set("ablations", variant, {
                "bleu": round(scores["sacrebleu"], 2),
                "tok_bleu": round(scores["tok_bleu"], 2),
                "collapse": round(collapse["spread"], 4),
                "collapse_stats": collapse,
                "description": systems.ABLATION_DESCRIPTIONS[variant],
                "minutes": minutes,
                "updates": summary["updates"],
                "command": summary["command"],
            })

    # -- the recipe sweep ------------------------------------------------------------------------

    def sweep(self):
        """Each recipe variant (``systems.SWEEP``) trained from each seed for --sweep-minutes and
        decoded with the default decoding on the validation set (which decides what is kept) and
        on test2016, at --decoding-length-offset 0: the sweep's runs were first measured before the
        offset of 2 became the default, and a variant compares with its baseline's seed band only
        under the same decoding."""
        minutes = self.args.sweep_minutes
        setting = systems.SETTINGS_BY_NAME["difformer_default_length0"]
        batch_size = self.scale.decode_batch_sizes[0]
        for variant in self.args.sweep_variants or list(systems.SWEEP):
            self.results.set("sweep", variant, "description", systems.SWEEP_DESCRIPTIONS[variant])
            for seed in self.args.sweep_seeds or self.scale.sweep_seeds:
                name = f"sweep-{variant}-seed{seed}"
                options = {**systems.SWEEP[variant], "--seed": str(seed)}
                measured = self.results.get("sweep", variant, "seeds", str(seed))
                if measured and measured["command"] == _shell(
                        self.budget_command(name, "difformer", minutes, options=options)):
                    say(f"{name}: already measured (valid {measured['valid_bleu']:.2f})")
                    continue
                summary = self.train_for_budget(name, "difformer", minutes, options=options)
                run = {"minutes": minutes, "updates": summary["updates"], "command": summary["command"],
                       "words_per_s": summary.get("words_per_s")}
                for subset in ("valid", "test"):
                    out, _ = self.generate(setting, batch_size, Path(summary["checkpoint"]),
                                           tag=f"{name}-{subset}", subset=subset)
                    scores = self.score(out)
                    run[f"{subset}_bleu"] = round(scores["sacrebleu"], 2)
                    run[f"{subset}_lengths"] = {key: round(scores[key], 4) for key in
                                                ("length_ratio", "exact_length", "mean_abs_length_diff")}
                say(f"  {name}: SacreBLEU valid {run['valid_bleu']:.2f}, test {run['test_bleu']:.2f}")
                self.results.set("sweep", variant, "seeds", str(seed), run)

    # -- part 5: profile -------------------------------------------------------------------------

    def profile(self):
        from benchmarks import profiling

        self.results.set("profile", profiling.profile_all(self, steps=2 if self.args.quick else 5))


def training_words_per_s(log_text: str) -> Optional[float]:
    """fairseq's training words/s over a run's logged intervals after the first (None for a run
    too short to log two intervals): how fast this machine trained, which budgets in minutes
    depend on."""
    try:
        return round(measure.steady_words_per_second(measure.training_log_records(log_text))["words_per_s"], 1)
    except ValueError:
        return None


def collapse_statistics(checkpoint: Path, rescaling_factor: float) -> dict:
    """The embedding-collapse statistics of the z0 = √d·E[w] the diffusion runs on (see
    ``fairseq_difformer.diagnostics``), and their mean distance relative to the noise scale F."""
    import torch
    from fairseq import checkpoint_utils

    import fairseq_difformer  # noqa: F401
    from fairseq_difformer.diagnostics import embedding_collapse_stats

    (model,), _, _ = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    decoder = model.decoder
    with torch.no_grad():
        z0 = decoder.embed_latent(torch.arange(decoder.embed_tokens.num_embeddings))
    stats = embedding_collapse_stats(z0, decoder.dictionary.nspecial)
    stats["distance_over_noise_scale"] = stats["mean_distance"] / rescaling_factor
    return stats


def write_head(source: Path, n: int, destination: Path):
    """The first ``n`` lines of ``source`` into ``destination`` (the quick check's subsets)."""
    lines = source.read_text(encoding="utf-8").splitlines()[:n]
    destination.write_text("\n".join(lines) + "\n", encoding="utf-8")


def lead_baseline(generate_output: Path, train_jsonl: Path) -> dict:
    """LEAD-k, the summarization baseline that needs no model: the first k words of each source
    (as ``generate_output``'s S- lines hold it, BPE removed) as its summary, k the mean number of
    words of the training summaries (``subject`` of ``train_jsonl``), rounded; scored like the
    systems (ROUGE F1 and length ratio on Moses-detokenised text)."""
    from fairseq.data.data_utils import post_process

    from difformer_cli.generate_output import parse_generate_output
    from difformer_cli.score import score

    subjects = [json.loads(line)["subject"] for line in train_jsonl.read_text(encoding="utf-8").splitlines() if line]
    k = max(1, round(sum(len(subject.split()) for subject in subjects) / len(subjects)))
    entries = parse_generate_output(generate_output.read_text(encoding="utf-8").splitlines())
    ids = sorted(entries)
    leads = [" ".join(post_process(entries[i]["S"], "@@ ").split()[:k]) for i in ids]
    refs = [post_process(entries[i]["T"], "@@ ") for i in ids]
    scores = score(leads, refs, metrics=("rouge", "tok-bleu"), detok_lang="en")
    return {"k": k, **{key: round(scores[key], 2) for key in ("rouge1", "rouge2", "rougeL")},
            "length_ratio": round(scores["length_ratio"], 3)}


def count_sentences(databin: Path, split: str = "test") -> int:
    """The number of target sentences of ``split`` in a fairseq data-bin (one language pair)."""
    from fairseq.data import data_utils

    datasets = sorted(databin.glob(f"{split}.*-*.*.idx"))
    if not datasets:
        sys.exit(f"benchmark: {databin} has no {split} split")
    source, target = datasets[0].name.split(".")[1].split("-")
    return len(data_utils.load_indexed_dataset(str(databin / f"{split}.{source}-{target}.{target}"), None))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _shell(cmd) -> str:
    import shlex

    return " ".join(shlex.quote(str(c)).replace(str(REPO) + "/", "") for c in cmd)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--part", action="append", choices=PARTS,
                   help="run only this part (repeatable); default: all of them")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="training minutes per system in the train part (default 20; quick 0.5)")
    p.add_argument("--ablation-minutes", type=float, default=None,
                   help="training minutes per ablation variant (default 8; quick 0.3)")
    p.add_argument("--sweep-minutes", type=float, default=None,
                   help="training minutes per recipe variant and seed in the sweep part (default 8, "
                        "the ablations' budget; quick 0.3)")
    p.add_argument("--sweep-seeds", type=int, nargs="+",
                   help="train the sweep's variants from these seeds (default 1 2 3; --quick 1)")
    p.add_argument("--sweep-variants", nargs="+", choices=list(systems.SWEEP),
                   help="run only these recipe variants in the sweep part (the others keep their results)")
    p.add_argument("--distill-budget-minutes", type=float, default=None,
                   help="the distill part's total budget per arm: teacher, translation and Difformer "
                        "(default 30; quick 1.5)")
    p.add_argument("--teacher-minutes", type=float, nargs="+", default=None,
                   help="the distill part's teacher shares of that budget (default 8 12: the AR recipe "
                        "warms up for 400 updates, about 5 minutes; quick 0.3)")
    p.add_argument("--distill-students", nargs="+", choices=list(DISTILL_DECODINGS), default=list(DISTILL_DECODINGS),
                   help="the distill part's students, each trained on the teacher's outputs for the minutes "
                        "left (default: difformer cmlm)")
    p.add_argument("--teacher-only", action="store_true",
                   help="the distill part runs only the teacher arms, not the references arm (its "
                        "results are kept)")
    p.add_argument("--from-ar-updates", type=int, default=None,
                   help="the from_ar part's budget in updates for every training (default: --budget-minutes "
                        "of wall-clock time)")
    p.add_argument("--from-ar-curve-interval", type=int, default=None,
                   help="the from_ar part validates every N updates for its learning curves (default 300; "
                        "quick 10)")
    p.add_argument("--from-ar-techniques", nargs="+", choices=list(from_ar.TECHNIQUES), default=None,
                   help="the from_ar part also trains the AR-initialised arm on distilled data with each of "
                        "these changes (" + "; ".join(f"{k}: {v[0]}" for k, v in from_ar.TECHNIQUES.items())
                        + "; default: none)")
    p.add_argument("--from-ar-total-minutes", type=float, default=None,
                   help="the from_ar part also spends this wall-clock budget two ways: AR model + distillation + "
                        "AR-initialised Difformer, against a Difformer from scratch for all of it (default: not run)")
    p.add_argument("--from-ar-ar-minutes", type=float, default=None,
                   help="the AR model's share of --from-ar-total-minutes (default 8; quick 0.3)")
    p.add_argument("--summarization-minutes", type=float, default=None,
                   help="training minutes per system in the summarization part (default 20, as "
                        "examples/aeslc/run.sh; quick 0.5)")
    p.add_argument("--aeslc", type=Path, default=REPO.parent / "shared" / "data" / "aeslc",
                   help="AESLC folder with train.jsonl and dev.jsonl (default ../shared/data/aeslc)")
    p.add_argument("--quick", action="store_true",
                   help="check every step in a few minutes: 2,000 training pairs, 60 test sentences, "
                        "short budgets; results are marked quick")
    p.add_argument("--systems", nargs="+", choices=list(systems.SYSTEMS),
                   help="train only these systems in the train part (the others keep their checkpoints)")
    p.add_argument("--settings", nargs="+", choices=[s.name for s in systems.DECODING_SETTINGS],
                   help="decode only these settings")
    p.add_argument("--variants", nargs="+", choices=list(systems.ABLATIONS),
                   help="run only these ablation variants")
    p.add_argument("--data", type=Path, default=REPO / "data" / "multi30k",
                   help="Multi30k folder with train/val/test_2016_flickr.{de,en} (default data/multi30k)")
    p.add_argument("--databin", type=Path, default=None,
                   help="an already prepared Multi30k data-bin (difformer-prepare's bin/) instead of --data")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: the small systems in float32; cuda: the IWSLT-size systems with --fp16")
    p.add_argument("--workdir", type=Path, default=None,
                   help="data, checkpoints, outputs, logs (default work/benchmarks[-quick|-cuda])")
    p.add_argument("--results", type=Path, default=None,
                   help="default benchmarks/results.json (results-cuda.json with --device cuda; with "
                        "--quick the work folder's results.json, so a check never touches the committed one)")
    p.add_argument("--docs", type=Path, default=None,
                   help="where benchmarks.md and the plots (benchmarks/*.png) are written "
                        "(default docs/, docs/gpu/ with --device cuda, the work folder's docs/ with --quick)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and args.quick:
        p.error("--quick is a CPU check; with --device cuda shorten --budget-minutes instead")
    if args.budget_minutes is None:
        args.budget_minutes = 0.5 if args.quick else 20
    if args.ablation_minutes is None:
        args.ablation_minutes = 0.3 if args.quick else 8
    if args.sweep_minutes is None:
        args.sweep_minutes = 0.3 if args.quick else 8
    if args.distill_budget_minutes is None:
        args.distill_budget_minutes = 1.5 if args.quick else 30
    if args.from_ar_ar_minutes is None:
        args.from_ar_ar_minutes = 0.3 if args.quick else 8
    if args.from_ar_curve_interval is None:
        args.from_ar_curve_interval = 10 if args.quick else 300
    if args.summarization_minutes is None:
        args.summarization_minutes = 0.5 if args.quick else 20
    if args.teacher_minutes is None:
        args.teacher_minutes = [0.3] if args.quick else [8, 12]
    if args.workdir is None:
        args.workdir = REPO / "work" / ("benchmarks-quick" if args.quick else "benchmarks-cuda" if cuda else "benchmarks")
    args.results = args.results or (args.workdir / "results.json" if args.quick
                                    else REPO / "benchmarks" / ("results-cuda.json" if cuda else "results.json"))
    args.docs = args.docs or (args.workdir / "docs" if args.quick else REPO / "docs" / ("gpu" if cuda else ""))
    if args.databin is not None and not (args.databin / "dict.en.txt").exists():
        p.error(f"--databin {args.databin}: no dict.en.txt there; give difformer-prepare's bin/ folder")
    if args.databin is None and not (args.data / "train.de").exists():
        p.error(f"--data {args.data}: no train.de there; give the Multi30k folder")
    parts = [part for part in PARTS if part in (args.part or PARTS)]
    if "summarization" in parts and not (args.aeslc / "train.jsonl").exists():
        p.error(f"--aeslc {args.aeslc}: no train.jsonl there; give the AESLC folder")
    if cuda and parts != ["report"] and not _cuda_available():
        p.error("--device cuda: torch sees no CUDA GPU here")

    bench = Benchmark(args)
    if set(parts) - {"from_ar", "report"}:
        bench.results.set("machine", measure.machine_description())
    bench.results.set("device", args.device)
    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq turned the root logger on
    run_parts(bench, parts, lambda: report.write(bench.results.data, args.docs), args.results)


def run_parts(bench, parts, write_report, results_path):
    """Run each named part (a method of ``bench``) in order, stamp its finish time and minutes in
    the results, and rewrite the report after each (``report`` only rewrites it)."""
    for part in parts:
        if part != "report":
            started = time.time()
            say(f"part {part}")
            getattr(bench, part)()
            bench.results.set("parts", part, {
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "minutes": round((time.time() - started) / 60, 1),
            })
        try:
            path = write_report()
        except ImportError as exc:  # a GPU machine may lack matplotlib: the results file is complete
            say(f"results in {results_path}; no report ({exc.name} missing): run this again with "
                f"--part report where it is installed")
            continue
        say(f"results in {results_path}, report in {path}")


if __name__ == "__main__":
    main()
