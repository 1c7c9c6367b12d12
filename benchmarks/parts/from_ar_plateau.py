"""Part from_ar_plateau: the AR route trained to its plateau (run only when named: hours on a CPU).

    AR Transformer (the benchmark's AR recipe) until its validation BLEU stops rising
    → the training set distilled with its best checkpoint (difformer-distill, beam 5)
    → an --init-from-ar Difformer on the distilled data until its validation BLEU stops rising

"Stops rising" is fairseq's early stopping: a validation (loss and --eval-bleu on the validation
set) every ``--plateau-interval`` updates, and the training ends when ``--plateau-patience``
validations in a row have not beaten the best BLEU (``--patience``, on ``--best-checkpoint-metric
bleu``), or at ``--plateau-max-update`` updates, the cap. fairseq counts the patience within a
process: a resumed training starts its count again from the best BLEU its checkpoint records, so a
training run in several sittings may train up to one patience longer. Each decoding uses the
training's ``checkpoint_best.pt``.

Decoded, on test2016 and the validation set (batch 100; test2016 also at batch 1 for the AR
baselines and the default): AR greedy and beam 5, the Difformer's default decoding, and the pools
of :data:`POOLS` (L lengths × N noises) reranked by the AR model; on the validation set also the
default decoding at each of :data:`LENGTH_OFFSETS`, which the length offset of this model class is
chosen from. Records: ``from_ar_plateau.records`` (test2016) and ``from_ar_plateau.validation``,
each with ``bleu``, ``tok_bleu``, ``length_ratio``, ``exact_length``, ``sentences_per_s``,
``updates`` (of the best checkpoint) and the command; the learning curves under ``from_ar_plateau.training``.

Everything resumes: each training from its last checkpoint (the same command, see
:meth:`~benchmarks.pipeline.train.TrainSteps.run_training`), the distillation when finished, and
each record is written when measured; a later sitting skips what is there.
"""

from pathlib import Path

from .. import measure, systems
from .distill import distilled_databin
from .from_ar import BASELINES, BATCHES, FromAR, ratios

#: the AR-reranked pools: (lengths, noises)
POOLS = ((3, 1), (3, 2), (5, 2), (7, 3))
#: the default decoding's length offsets decoded on the validation set
LENGTH_OFFSETS = (0, 1, 2, 3)
#: the early stopping's defaults: validations without a better BLEU, updates between validations,
#: and the cap on a training's updates
PATIENCE, INTERVAL, MAX_UPDATE = 5, 500, 30000


def pool_setting(lengths, noises):
    """The task's default decoding with ``lengths`` × ``noises`` candidates reranked by the AR model."""
    return systems.DecodingSetting(
        f"difformer_default_{lengths}x{noises}_rerank", "difformer",
        ("--length-beam-size", str(lengths), "--noise-beam-size", str(noises), "--ppl-mbr", "--seed", "1"),
        f"Difformer, default ({systems.DEFAULT_LABEL}), {lengths}×{noises}, AR reranker", reranker=True)


def offset_setting(offset):
    """The task's default decoding at ``--decoding-length-offset offset``."""
    return systems.DecodingSetting(
        f"difformer_default_offset{offset}", "difformer",
        ("--decoding-length-offset", str(offset), "--seed", "1"),
        f"Difformer, default ({systems.DEFAULT_LABEL}), 1×1, --decoding-length-offset {offset}")


class FromARPlateau(FromAR):
    """The part inside a :class:`benchmarks.pipeline.Pipeline`."""

    SECTION = "from_ar_plateau"

    def budget_args(self):
        cap, patience = self.args.plateau_max_update, self.args.plateau_patience
        # --validate-interval: no validation at the end of each epoch, so that the patience counts
        # validations every --plateau-interval updates only.
        return (["--max-update", cap, "--patience", patience, "--best-checkpoint-metric", "bleu",
                 "--maximize-best-checkpoint-metric", "--validate-interval", 10 ** 6],
                {"updates": cap})

    def curve_interval(self):
        return self.args.plateau_interval

    def run(self):
        self.results.set(self.SECTION, "setup", {
            "patience": self.args.plateau_patience, "interval": self.args.plateau_interval,
            "max_update": self.args.plateau_max_update})
        self.results.set(self.SECTION, "machine", measure.machine_description())
        ar = self.trained("ar", "ar")
        teacher, teacher_updates = Path(ar["best_checkpoint"]), ar["best_updates"]
        kd_databin, distill_minutes = distilled_databin(self.bench, self.SECTION, teacher)
        self.results.set(self.SECTION, "distillation", {"minutes": distill_minutes, "beam": 5, "teacher": str(teacher)})
        for name, setting in BASELINES.items():
            self.decode(name, systems.SETTINGS_BY_NAME[setting], teacher, teacher_updates, teacher)
        student = self.trained("ar_init_kd", "difformer", kd_databin, ["--init-from-ar", teacher])
        model, updates = Path(student["best_checkpoint"]), student["best_updates"]
        self.decode("ar_init_kd_default", systems.SETTINGS_BY_NAME["difformer_default"], model, updates, teacher)
        for lengths, noises in POOLS:
            self.decode(f"ar_init_kd_{lengths}x{noises}_rerank", pool_setting(lengths, noises), model, updates,
                        teacher, batches={"batch100": 100})
        validation = [(name, systems.SETTINGS_BY_NAME[setting], teacher, teacher_updates)
                      for name, setting in BASELINES.items()]
        validation += [(f"ar_init_kd_{lengths}x{noises}_rerank", pool_setting(lengths, noises), model, updates)
                       for lengths, noises in POOLS]
        validation += [(f"ar_init_kd_offset{offset}", offset_setting(offset), model, updates)
                       for offset in LENGTH_OFFSETS]
        for key, setting, checkpoint, trained_updates in validation:
            self.decode(key, setting, checkpoint, trained_updates, teacher, where=("validation",),
                        batches={"batch100": 100}, subset="valid")
        self.results.set(self.SECTION, "ratios", ratios(self.results.get(self.SECTION, "records")))

    def trained(self, arm, system, databin=None, extra=()):
        """Train ``arm`` to its plateau (or reuse it); its summary with the best checkpoint, its
        update (``best_updates``) and the learning curve, recorded under SECTION.training.``arm``."""
        summary = self.train(f"{self.SECTION}-{arm}", system, databin, extra)
        summary["best_checkpoint"] = str(Path(summary["checkpoint"]).with_name("checkpoint_best.pt"))
        curve = summary.get("curve") or []
        best = max((p for p in curve if p.get("bleu") is not None), key=lambda p: p["bleu"], default=None)
        summary["best_updates"] = best["updates"] if best else summary["updates"]
        self.results.set(self.SECTION, "training", arm, {
            **{key: summary.get(key) for key in ("updates", "wall_s", "words_per_s", "command", "curve")},
            "best": best, "stopped": "cap" if summary["updates"] >= self.args.plateau_max_update else "plateau"})
        return summary


def run(bench):
    FromARPlateau(bench).run()
