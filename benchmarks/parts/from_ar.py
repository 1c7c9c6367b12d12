"""Part from_ar: one AR Transformer as initialisation, distillation teacher and reranker.

One AR model is trained with the benchmark's AR recipe, the training set is translated with it
(beam 5, ``difformer-distill``; its minutes reported apart), then four Difformer arms train with
the same budget:

    scratch_refs   from its own initialisation, on the references
    scratch_kd     from its own initialisation, on the AR model's translations
    ar_init_refs   --init-from-ar AR.pt, on the references
    ar_init_kd     --init-from-ar AR.pt, on the AR model's translations

Every training validates every ``curve_interval`` updates (valid loss and --eval-bleu on the
validation set: the learning curves). The AR model is decoded greedily and with beam 5, and each
arm, once trained, with the default decoding (1×1) and with 3×2 candidates reranked by the AR
model, on test2016 at batch 100 and batch 1: SacreBLEU, tokenised BLEU, length ratio and
sentences/s, all in one run, each decoding with no training beside it. Each record is merged into the results file when it is measured, and
a resumed run skips what is there with the same command.

The budget is the benchmark's training minutes, or, with ``--from-ar-updates N``, N updates for
every training: updates do not depend on what else the machine runs, minutes do.

With ``--from-ar-techniques NAME …``, the AR-initialised arm on distilled data is also trained with
each change of :data:`TECHNIQUES` (same budget, decoded the same way), as arm ``ar_init_kd_NAME``.

With ``--from-ar-total-minutes B``, one wall-clock budget is also spent two ways
(:meth:`FromAR.equal_budget`): AR for ``--from-ar-ar-minutes`` + distillation + an AR-initialised
Difformer on the distilled data for the rest, against a Difformer from scratch for all B minutes.
"""

import json
from pathlib import Path

from .. import measure, systems
from ..pipeline import say, shell
from .distill import distilled_databin

#: in the order they are run: the AR-initialised arms first, scratch on distilled data last
ARMS = (("ar_init", "kd"), ("ar_init", "refs"), ("scratch", "refs"), ("scratch", "kd"))
#: the decodings of each arm: the task's default (1×1) and 3×2 chosen by the AR model
DECODINGS = {"default": "difformer_default", "3x2_rerank": "difformer_default_3x2_rerank"}
#: the AR baselines decoded in the same run
BASELINES = {"ar_greedy": "ar_beam1", "ar_beam5": "ar_beam5"}
BATCHES = {"batch100": 100, "batch1": 1}
#: techniques tried on the AR-initialised arm on distilled data, one change each, with
#: ``--from-ar-techniques``: name → (what it changes, the training options it adds)
TECHNIQUES = {
    "latent_full": ("latent as wide as the model (256, the small recipe's width): the AR table is "
                    "copied whole, not factorised to rank 128", ["--latent-dim", "256"]),
    "lr_5e-4": ("half the peak learning rate (5e-4): gentler steps for the copied weights",
                ["--lr", "5e-4"]),
    "anneal_attn": ("the copied decoder self-attention annealed from the AR model's causal mask to "
                    "full attention over the first 500 updates", ["--self-attn-anneal-updates", "500"]),
    "new_parts_first": ("the parts without an AR counterpart trained alone for the first 300 updates, "
                        "the copied ones frozen", ["--ar-freeze-updates", "300"]),
}


def arm_names():
    """Every arm the part can train, in its order: the four of :data:`ARMS`, then the techniques."""
    return [f"{init}_{data}" for init, data in ARMS] + [f"ar_init_kd_{name}" for name in TECHNIQUES]


def validation_args(system: str, interval: int):
    """Validate (loss and BLEU on the validation set) every ``interval`` updates and at each
    epoch's end; the AR model is validated greedily (at most 1.2 · source length + 10 tokens),
    Difformer with its default decoding."""
    # An early AR model rambles: without a length limit (fairseq's default is 200 tokens) one
    # validation takes minutes. The limit is the one difformer-distill translates with.
    bleu_args = '{"beam": 1, "max_len_a": 1.2, "max_len_b": 10}' if system == "ar" else "{}"
    return ["--validate-interval-updates", interval, "--save-interval-updates", interval,
            "--keep-interval-updates", 1, "--no-epoch-checkpoints", "--eval-bleu", "--eval-bleu-remove-bpe",
            "--eval-bleu-detok", "moses", "--eval-bleu-args", bleu_args]


def learning_curve(log_text: str):
    """The validations of a fairseq-train JSON log: [{updates, loss, bleu}] in update order."""
    points = {}
    for record in measure.training_log_records(log_text, "valid"):
        updates = int(record["valid_num_updates"])
        points[updates] = {"updates": updates, "loss": record.get("valid_loss"), "bleu": record.get("valid_bleu")}
    return [points[u] for u in sorted(points)]


class FromAR:
    """Runs the part inside a :class:`benchmarks.pipeline.Pipeline` (its data, tools and results)."""

    #: the part's section of the results file
    SECTION = "from_ar"

    def __init__(self, bench):
        self.bench = bench
        self.args = bench.args
        self.results = bench.results

    def budget_args(self):
        if self.args.from_ar_updates:
            return ["--max-update", self.args.from_ar_updates], {"updates": self.args.from_ar_updates}
        minutes = self.args.budget_minutes
        return ["--stop-time-hours", minutes / 60, "--max-update", 10 ** 7], {"minutes": minutes}

    def curve_interval(self):
        """Updates between two validations of the learning curves."""
        return self.args.from_ar_curve_interval

    def train(self, name, system, databin=None, extra=()):
        budget, described = self.budget_args()
        cmd = self.bench.train_command(system, self.bench.work / "checkpoints" / name, databin=databin, extra=[
            *extra, *budget, *validation_args(system, self.curve_interval()),
            "--log-format", "json", "--log-interval", self.bench.scale.log_interval])
        summary = self.bench.run_training(name, cmd, described)
        log = self.bench.work / "logs" / f"train-{name}.log"
        if log.exists():
            summary["curve"] = learning_curve(log.read_text(encoding="utf-8"))
        return summary

    def run(self):
        budget = self.budget_args()[1]
        self.results.set("from_ar", "budget", budget)
        # The part's own machine line: its figures are compared within the part, never with the
        # other parts' (which may come from another CPU).
        self.results.set("from_ar", "machine", measure.machine_description())
        ar = self.train("from_ar-ar", "ar")
        self.results.set("from_ar", "ar", _training_record(ar))
        teacher = Path(ar["checkpoint"])
        kd_databin, distill_minutes = distilled_databin(self.bench, "from_ar", teacher)
        self.results.set("from_ar", "distillation", {
            "minutes": distill_minutes, "beam": 5,
            "command": json.loads((self.bench.work / "distill" / "from_ar" / "timing.json").read_text())["command"]})
        # The AR baselines first, then each arm decoded as soon as it is trained: every speed is
        # measured with no training running beside it.
        for name, setting in BASELINES.items():
            self.decode(name, systems.SETTINGS_BY_NAME[setting], teacher, ar["updates"], teacher)
        arms = [(f"{init}_{data}", kd_databin if data == "kd" else None,
                 ["--init-from-ar", teacher] if init == "ar_init" else []) for init, data in ARMS]
        arms += [(f"ar_init_kd_{name}", kd_databin, ["--init-from-ar", teacher, *TECHNIQUES[name][1]])
                 for name in self.args.from_ar_techniques or ()]
        for arm, databin, extra in arms:
            summary = self.train(f"from_ar-{arm}", "difformer", databin, extra)
            self.results.set("from_ar", "training", arm, _training_record(summary))
            for decoding, setting in DECODINGS.items():
                self.decode(f"{arm}_{decoding}", systems.SETTINGS_BY_NAME[setting],
                            Path(summary["checkpoint"]), summary["updates"], teacher)
        self.results.set("from_ar", "ratios", ratios(self.results.get("from_ar", "records")))
        if self.args.from_ar_total_minutes:
            self.equal_budget(self.args.from_ar_total_minutes, self.args.from_ar_ar_minutes)

    def equal_budget(self, total, ar_minutes):
        """One wall-clock budget of ``total`` minutes spent two ways: an AR model trained
        ``ar_minutes``, the training set translated with it (timed), and an AR-initialised
        Difformer on its translations for the minutes left; against a Difformer from scratch on
        the references for all ``total`` minutes (no AR model in its budget, so no reranker)."""
        if not 0 < ar_minutes < total:
            raise SystemExit(f"benchmark: --from-ar-ar-minutes {ar_minutes:g} must lie between 0 and "
                             f"--from-ar-total-minutes {total:g}")
        name = f"from_ar-B{total:g}"
        ar = self.bench.train_for_budget(f"{name}-ar", "ar", ar_minutes)
        teacher = Path(ar["checkpoint"])
        kd_databin, distill_minutes = distilled_databin(self.bench, name, teacher)
        minutes = round(total - ar_minutes - distill_minutes, 2)
        student = self.bench.train_for_budget(f"{name}-ar_init_kd", "difformer", minutes, databin=kd_databin,
                                              extra=["--init-from-ar", teacher])
        scratch = self.bench.train_for_budget(f"{name}-scratch_refs", "difformer", total)
        entry = {"total_minutes": total, "ar_minutes": ar_minutes, "ar_updates": ar["updates"],
                 "distill_minutes": distill_minutes, "difformer_minutes": minutes,
                 "ar_init_kd_updates": student["updates"], "scratch_refs_updates": scratch["updates"],
                 "commands": {"ar": ar["command"], "ar_init_kd": student["command"],
                              "scratch_refs": scratch["command"]}}
        self.results.set("from_ar", "equal_budget", "setup", entry)
        decodings = [("ar_greedy", BASELINES["ar_greedy"], teacher, ar["updates"]),
                     ("ar_init_kd_default", DECODINGS["default"], Path(student["checkpoint"]), student["updates"]),
                     ("ar_init_kd_3x2_rerank", DECODINGS["3x2_rerank"], Path(student["checkpoint"]), student["updates"]),
                     ("scratch_refs_default", DECODINGS["default"], Path(scratch["checkpoint"]), scratch["updates"])]
        for key, setting, checkpoint, updates in decodings:
            self.decode(key, systems.SETTINGS_BY_NAME[setting], checkpoint, updates, teacher,
                        where=("equal_budget", "records"), batches={"batch100": 100})

    def decode(self, key, setting, checkpoint, updates, reranker, where=("records",), batches=BATCHES,
               subset="test"):
        """Decode ``subset`` (test2016, or valid) with ``setting`` at each of ``batches``; score the
        batch-100 output, into SECTION.``where``.``key`` of the results."""
        commands = {name: shell(self.bench.generate_command(setting, batch, checkpoint, reranker=reranker,
                                                            subset=subset))
                    for name, batch in batches.items()}
        measured = self.results.get(self.SECTION, *where, key)
        if measured and all(measured.get(f"command_{name}") == c for name, c in commands.items()):
            say(f"  {key}: already measured (SacreBLEU {measured['bleu']:.2f})")
            return
        record = {"updates": updates}
        for name, batch in batches.items():
            tag = "-".join((self.SECTION, *where[:-1], key))
            out, speed = self.bench.generate(setting, batch, checkpoint, tag=tag, reranker=reranker, subset=subset)
            record[f"sentences_per_s_{name}"] = speed["sentences_per_s"]
            record[f"command_{name}"] = speed["command"]
            if batch == 100:
                scores = self.bench.score(out)
                record.update(bleu=round(scores["sacrebleu"], 2), tok_bleu=round(scores["tok_bleu"], 2),
                              length_ratio=round(scores["length_ratio"], 3),
                              exact_length=round(scores["exact_length"], 3),
                              signature=scores.get("sacrebleu_signature"),
                              sentences_per_s=speed["sentences_per_s"], command=speed["command"])
        say(f"  {key}: SacreBLEU {record['bleu']:.2f}, {record['sentences_per_s']:.1f} sentences/s")
        self.results.set(self.SECTION, *where, key, record)


def _training_record(summary):
    return {key: summary.get(key) for key in ("updates", "minutes", "wall_s", "words_per_s", "command", "curve")}


def ratios(records):
    """Each Difformer record against AR greedy and AR beam 5 of the same run: BLEU difference and
    speed ratio at both batch sizes."""
    if not records:
        return {}
    out = {}
    for key, record in records.items():
        if key in BASELINES:
            continue
        out[key] = {}
        for baseline in BASELINES:
            base = records.get(baseline)
            if not base:
                continue
            out[key][baseline] = {
                "bleu_difference": round(record["bleu"] - base["bleu"], 2),
                **{f"speed_ratio_{b}": round(record[f"sentences_per_s_{b}"] / base[f"sentences_per_s_{b}"], 2)
                   for b in BATCHES if record.get(f"sentences_per_s_{b}") and base.get(f"sentences_per_s_{b}")},
            }
    return out


def run(bench):
    FromAR(bench).run()
