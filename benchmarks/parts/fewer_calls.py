"""Part fewer_calls: SacreBLEU against the number of denoiser calls, for the AR-initialised
Difformer on distilled data, decoded with fewer steps (the teacher) and step-distilled (students).

The models are the quickstart's (``--engines-models``, default work/quickstart): the Difformer
of checkpoints/ is the teacher, distill/bin its data-bin (the AR model's translations of the
training set; valid; test2016).

1. **The teacher with fewer steps.** For each number of calls c of :data:`CALLS`, every sampler
   with both spacings of :func:`spacing_args` is decoded on the validation set; the best is decoded
   on test2016, from seeds 1, 2 and 3 where c ≤ :data:`SEEDED_CALLS` and at the default decoding's
   c (:data:`TEACHER_CALLS`).
2. **The control** (``continued``): the teacher trained on for as many updates, with the same
   optimisation and its own objective (``--finetune-from-model``), decoded at 4, 2 and 1 calls
   with the teacher's choices: a student is compared with it, not only with the teacher, to tell
   distillation from the extra updates.
3. **Students** (:data:`ROUNDS`): fairseq-train --distill-steps-from TEACHER.pt --student-steps K
   on the distilled data with the Difformer recipe and :data:`STUDENT_OPTIONS`,
   ``--fewer-calls-updates`` updates each; ``round1`` halves the teacher's 4 calls, ``round2``
   halves round1's, ``direct1`` goes from 4 calls to 1 in one round, ``round1_ddim`` is round1 with
   the teacher's chain on DDIM (``--decoding-sampler ddim`` in training and decoding),
   ``continued_direct1`` goes to one call from the control (a teacher trained longer). Each is
   decoded with its default decoding (its own calls; its sampler) on the validation set and on
   test2016 from seeds 1, 2, 3.

Every decoding is one fairseq-generate at batch 100 on the CPU. Records (``fewer_calls.records``
for test2016, ``fewer_calls.validation``) hold ``bleu``, ``tok_bleu``, ``length_ratio``,
``calls``, ``student``, ``sentences_per_s``, ``updates`` (of the checkpoint's own training run: the
teacher's, or a round's on top of its teacher), ``seed`` and the command; each is
written when measured and a rerun skips those there with the same command.
"""

from pathlib import Path

from difformer_core.checkpoints import updates_of
from difformer_core.decoding import DEFAULT_STEPS
from difformer_core.diffusion import SAMPLERS

from .. import measure, systems
from ..pipeline import say, shell
from .engines import Models

#: the numbers of denoiser calls the teacher is decoded with
CALLS = (1, 2, 3, 4, 6)
#: calls up to this many, and the teacher's own (the default decoding's 4, which the students are
#: measured against), are decoded from three seeds on test2016
SEEDED_CALLS = 2
TEACHER_CALLS = DEFAULT_STEPS - DEFAULT_STEPS // 4
SEEDS = (1, 2, 3)
#: the student rounds: name → (teacher: "teacher" or an earlier round, the student's calls, the
#: sampler of the teacher's chain in training and of the student's decoding)
ROUNDS = {"round1": ("teacher", 2, "ddpm"), "round2": ("round1", 1, "ddpm"), "direct1": ("teacher", 1, "ddpm"),
          "round1_ddim": ("teacher", 2, "ddim"), "continued_direct1": ("continued", 1, "ddpm")}
#: the students' optimisation, replacing the recipe's: a student starts from trained weights, so its
#: peak learning rate is about the teacher's at the end of its inverse-square-root schedule, reached
#: after a short warm-up
STUDENT_OPTIONS = {"--lr": "3e-4", "--warmup-updates": "100"}
#: the calls the control (the teacher trained on without distillation) is decoded with
CONTROL_CALLS = (4, 2, 1)
#: the samplers tried at each number of calls (a single call takes no sampler step)
SAMPLER_NAMES = tuple(SAMPLERS)


def spacing_args(calls, spacing):
    """The decoding flags of ``calls`` denoiser calls: ``skip_last`` spaces c + 1 steps evenly and
    skips the last (the default decoding's shape: its last call is at t = T/(c + 1)); ``to_zero``
    spaces c steps, the last at t = 0."""
    if spacing == "skip_last":
        return ["--decoding-steps", str(calls + 1), "--decoding-early-stopping", "1"]
    return ["--decoding-steps", str(calls), "--decoding-early-stopping", "0"]


def sampler_flags(sampler):
    """The flags of ``sampler``: none for the task's default."""
    return [] if sampler == systems.DEFAULT_DECODING[0] else ["--decoding-sampler", sampler]


def teacher_configurations(calls):
    """(name, flags) of every decoding of the teacher at ``calls`` calls; one call has one."""
    if calls == 1:
        return [("c1", spacing_args(1, "to_zero"))]
    return [(f"c{calls}_{sampler}_{spacing}", ["--decoding-sampler", sampler, *spacing_args(calls, spacing)])
            for sampler in SAMPLER_NAMES for spacing in ("skip_last", "to_zero")]


class FewerCalls:
    """The part inside a :class:`benchmarks.pipeline.Pipeline`."""

    SECTION = "fewer_calls"

    def __init__(self, bench):
        self.bench = bench
        self.results = bench.results
        self.models = Models(bench.args.engines_models)
        self.teacher_updates = updates_of(self.models.difformer)

    def run(self):
        self.results.set(self.SECTION, "machine", measure.machine_description())
        self.results.set(self.SECTION, "setup", {
            "teacher": str(self.models.difformer), "teacher_updates": self.teacher_updates,
            "databin": str(self.models.databin), "student_updates": self.bench.args.fewer_calls_updates,
            "student_options": STUDENT_OPTIONS})
        chosen = {}  # calls → the flags of the teacher's best decoding on valid
        for calls in CALLS:
            best = None
            for name, flags in teacher_configurations(calls):
                record = self.decode(("validation", f"teacher_{name}"), self.models.difformer, flags, "valid",
                                     calls=calls, student=False, updates=self.teacher_updates)
                if best is None or record["bleu"] > best[1]["bleu"]:
                    best = (flags, record)
            chosen[calls] = best[0]
            seeds = SEEDS if calls <= SEEDED_CALLS or calls == TEACHER_CALLS else SEEDS[:1]
            for seed in seeds:
                self.decode(("records", f"teacher_c{calls}" + (f"_seed{seed}" if seed > 1 else "")),
                            self.models.difformer, best[0], "test", calls=calls, student=False,
                            updates=self.teacher_updates, seed=seed, chosen_on="valid")
        students = {"teacher": self.models.difformer, "continued": self.continued(chosen)}
        for name, (teacher, calls, sampler) in ROUNDS.items():
            flags = sampler_flags(sampler)
            students[name], updates = self.train_student(name, students[teacher], calls, flags)
            self.decode(("validation", f"student_{name}"), students[name], flags, "valid", calls=calls,
                        student=True, updates=updates, teacher=teacher)
            for seed in SEEDS:
                self.decode(("records", f"student_{name}" + (f"_seed{seed}" if seed > 1 else "")), students[name],
                            flags, "test", calls=calls, student=True, updates=updates, teacher=teacher, seed=seed)
        self.results.set(self.SECTION, "summary", summary(self.results.get(self.SECTION, "records") or {}))

    def continued(self, chosen):
        """The control: the teacher trained on for as many updates as a round, with the students'
        optimisation and its own objective (fairseq's --finetune-from-model), decoded with the
        teacher's choice at each of :data:`CONTROL_CALLS` calls: what a round owes to its updates
        rather than to distillation. Returns its checkpoint."""
        checkpoint, updates = self.train_round("continued", ["--finetune-from-model", self.models.difformer])
        for calls in CONTROL_CALLS:
            flags = chosen[calls]
            self.decode(("validation", f"continued_c{calls}"), checkpoint, flags, "valid", calls=calls,
                        student=False, updates=updates, continued=True)
            for seed in SEEDS if calls <= SEEDED_CALLS or calls == TEACHER_CALLS else SEEDS[:1]:
                self.decode(("records", f"continued_c{calls}" + (f"_seed{seed}" if seed > 1 else "")), checkpoint,
                            flags, "test", calls=calls, student=False, seed=seed, continued=True,
                            updates=updates)
        return checkpoint

    def train_student(self, name, teacher, calls, flags=()):
        """One round: the student of ``teacher`` at ``calls`` calls, ``flags`` added (the sampler
        of the teacher's chain); its checkpoint and its updates."""
        return self.train_round(name, [*flags, "--distill-steps-from", teacher, "--student-steps", calls])

    def train_round(self, name, start):
        """fairseq-train of ``fewer_calls-NAME`` on the distilled data with the Difformer recipe and
        :data:`STUDENT_OPTIONS`, ``start`` (what it starts from and learns) added, for
        --fewer-calls-updates updates; recorded under SECTION.training.``name``. Its checkpoint and
        its updates."""
        updates = self.bench.args.fewer_calls_updates
        cmd = self.bench.train_command(
            "difformer", self.bench.work / "checkpoints" / f"fewer_calls-{name}", databin=self.models.databin,
            options=STUDENT_OPTIONS, extra=[
                *start, "--max-update", updates, "--disable-validation", "--no-epoch-checkpoints",
                "--save-interval-updates", 500, "--keep-interval-updates", 1, "--log-format", "json",
                "--log-interval", self.bench.scale.log_interval])
        summary = self.bench.run_training(f"fewer_calls-{name}", cmd, {"updates": updates})
        self.results.set(self.SECTION, "training", name, {
            key: summary.get(key) for key in ("updates", "wall_s", "words_per_s", "command")})
        return Path(summary["checkpoint"]), summary["updates"]

    def decode(self, where, checkpoint, flags, subset, seed=1, **fields):
        """fairseq-generate of ``subset`` at batch 100 with ``flags``, scored; the record at
        SECTION.``where`` (skipped where one with the same command is there)."""
        setting = systems.DecodingSetting(where[-1], "difformer", (*flags, "--seed", str(seed)), where[-1])
        command = shell(self.bench.generate_command(setting, 100, checkpoint, databin=self.models.databin,
                                                    subset=subset))
        measured = self.results.get(self.SECTION, *where)
        if measured and measured.get("command") == command:
            say(f"  {where[-1]} ({subset}): already measured (SacreBLEU {measured['bleu']:.2f})")
            return measured
        out, speed = self.bench.generate(setting, 100, checkpoint, tag=f"{self.SECTION}-{subset}-{where[-1]}",
                                         databin=self.models.databin, subset=subset)
        scores = self.bench.score(out)
        record = {**fields, "seed": seed, "bleu": round(scores["sacrebleu"], 2),
                  "tok_bleu": round(scores["tok_bleu"], 2), "length_ratio": round(scores["length_ratio"], 3),
                  "exact_length": round(scores["exact_length"], 3), "sentences_per_s": speed["sentences_per_s"],
                  "flags": " ".join(flags) or "(the model's default decoding)", "command": command}
        say(f"  {where[-1]} ({subset}): SacreBLEU {record['bleu']:.2f}, {record['sentences_per_s']:.1f} sentences/s")
        self.results.set(self.SECTION, *where, record)
        return record


def summary(records):
    """Per system and number of calls, over its seeds: mean, min and max SacreBLEU and the mean
    sentences/s; ``teacher_c{c}`` and ``student_{round}``."""
    groups = {}
    for key, record in records.items():
        base = key.rsplit("_seed", 1)[0]
        groups.setdefault(base, []).append(record)
    out = {}
    for base, group in groups.items():
        bleus = [r["bleu"] for r in group]
        out[base] = {"calls": group[0]["calls"], "student": group[0]["student"], "seeds": len(group),
                     "bleu_mean": round(sum(bleus) / len(bleus), 2), "bleu_min": min(bleus), "bleu_max": max(bleus),
                     "sentences_per_s_mean": round(sum(r["sentences_per_s"] for r in group) / len(group), 1)}
    return out


def run(bench):
    FewerCalls(bench).run()
