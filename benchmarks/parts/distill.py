"""Part distill: sequence-level distillation at an equal total budget (--distill-budget-minutes)."""

import json
import shutil
import sys
from pathlib import Path

from difformer_cli.commands import run_logged

from .. import systems
from ..pipeline import say, shell


#: each distillation student's decodings: the first alone where the arm has no AR teacher (the
#: references arm), all of them where the teacher can rerank. fairseq's own CMLM reranking
#: (--iter-decode-with-external-reranker) reads the encoder output as a namedtuple, which the
#: Transformer of fairseq 0.12 no longer returns, so CMLM is measured without a reranker.
#: Difformer is decoded at --decoding-length-offset 0, as the part was first measured (before the
#: offset of 2 became the default), so that arms measured in different sessions compare.
DISTILL_DECODINGS = {"difformer": ("difformer_default_length0", "difformer_default_3x2_rerank_length0"),
                     "cmlm": ("cmlm_lb3",)}


def run(bench):
    """Sequence-level distillation at an equal total budget of B minutes: for each teacher
    share T, the AR teacher trained T minutes, the training set translated with beam 5 (its
    wall-clock time counted), each student (--distill-students: Difformer, CMLM) trained on
    the distilled data for the minutes left; Difformer decoded by default 1×1 and 3×2 with the
    teacher as AR reranker, CMLM with its best setting (length beam 3); against the students
    trained on the references for all B minutes (no AR model in that budget, so no reranker)."""
    budget = bench.args.distill_budget_minutes
    for teacher_minutes in bench.args.teacher_minutes:
        if not 0 < teacher_minutes < budget:
            sys.exit(f"benchmark: --teacher-minutes {teacher_minutes:g} must lie between 0 and "
                     f"--distill-budget-minutes {budget:g} (the teacher's share of the budget)")
        distillation_arm(bench, budget, teacher_minutes)
    if not bench.args.teacher_only:
        distillation_arm(bench, budget, None)


def distillation_arm(bench, budget, teacher_minutes):
    arm = f"teacher{teacher_minutes:g}" if teacher_minutes else "references"
    name = f"distill-B{budget:g}-{arm}"
    entry = {"budget_minutes": budget, "teacher_minutes": teacher_minutes or 0, "commands": {}}
    databin, teacher = None, None
    if teacher_minutes:
        teacher_run = bench.train_for_budget(f"{name}-teacher", "ar", teacher_minutes)
        teacher = Path(teacher_run["checkpoint"])
        out, _ = bench.generate(systems.SETTINGS_BY_NAME["ar_beam5"], bench.scale.decode_batch_sizes[0],
                               teacher, tag=f"{name}-teacher")
        entry.update(teacher_updates=teacher_run["updates"],
                     teacher_bleu=round(bench.score(out)["sacrebleu"], 2))
        databin, entry["distill_minutes"] = distilled_databin(bench, name, teacher)
        say(f"  teacher BLEU {entry['teacher_bleu']}, distillation {entry['distill_minutes']} min")
    # What is left of the budget; rounded so that a resumed run rebuilds the same command.
    minutes = round(budget - entry["teacher_minutes"] - entry.get("distill_minutes", 0), 2)
    entry["difformer_minutes"] = minutes  # every student trains for these minutes
    for system in bench.args.distill_students:
        student = bench.train_for_budget(f"{name}-{system}", system, minutes, databin=databin)
        entry[f"{system}_updates"] = student["updates"]
        entry["commands"][system] = student["command"]
        for setting_name in DISTILL_DECODINGS[system][:1 if teacher is None else None]:
            say(f"decoding {name} {setting_name}")
            setting = systems.SETTINGS_BY_NAME[setting_name]
            out, speed = bench.generate(setting, bench.scale.decode_batch_sizes[0], Path(student["checkpoint"]),
                                       tag=f"{name}-{setting_name}", reranker=teacher if setting.reranker else None)
            scores = bench.score(out)
            say(f"  SacreBLEU {scores['sacrebleu']:.2f}")
            entry[setting_name] = {"bleu": round(scores["sacrebleu"], 2), "tok_bleu": round(scores["tok_bleu"], 2),
                                   "length_ratio": scores.get("length_ratio"),
                                   "sentences_per_s": speed["sentences_per_s"], "command": speed["command"]}
    bench.results.set("distillation", name, entry)


def distilled_databin(bench, name, teacher: Path, databin: Path = None):
    """The training set of ``databin`` (default the benchmark's) translated by ``teacher``
    (difformer-distill), and the minutes it took, kept beside the data-bin so that a resumed run
    counts the same minutes."""
    destdir = bench.work / "distill" / name
    timing = destdir / "timing.json"
    if not timing.exists():
        shutil.rmtree(destdir, ignore_errors=True)
        # fairseq-generate translates, as in the recorded arms: their equal budgets count its minutes
        # (the engines part measures CTranslate2).
        cmd = [*bench.tool("difformer-distill"), databin or bench.databin, "--destdir", destdir,
               "--teacher", teacher, "--beam", 5, "--engine", "fairseq", *(["--cpu"] if bench.device == "cpu" else [])]
        say(f"distilling with {teacher}")
        usage = run_logged(cmd, bench.work / "logs" / f"{name}-distill.log")
        timing.write_text(json.dumps({"minutes": round(usage["wall_s"] / 60, 2), "command": shell(cmd)}))
    return destdir / "bin", json.loads(timing.read_text())["minutes"]
