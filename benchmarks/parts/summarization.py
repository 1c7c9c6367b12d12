"""Part summarization: Gigaword headline generation through the AR route, as
examples/gigaword/run.py runs it, at the benchmark's budget.

The data (``--gigaword``: an article's first sentence → its headline) is prepared by
difformer-prepare with the released tokens kept, its validation set as the test split. An AR
Transformer is trained ``--summarization-minutes`` with the translation recipe (the sources are
single sentences: none is cut) but for the headline options of the AR teacher
(:data:`~difformer_cli.recipes.HEADLINE_AR_OPTIONS`, and lead pairs beside the training pairs:
:mod:`difformer_cli.lead_pairs`), the training set distilled with it (beam 5, timed), and a
Difformer initialised from it (``--init-from-ar``) trained ``--summarization-minutes`` on the
distilled headlines. Each decoding of :data:`~benchmarks.systems.SUMMARIZATION_SETTINGS` runs on
the validation set at batch 100 and is scored (ROUGE-1/2/L F1, length ratio), beside LEAD-k.

The Difformer's decoding is then chosen on the same set (the data's README: select and report on
it), one option at a time (:func:`choose_decoding`): the length offset at the default steps, the
steps at that offset, the reranked pool at both.

Results: ``summarization.gigaword`` with ``records`` (one per decoding: ``rouge1``, ``rouge2``,
``rougeL``, ``length_ratio``, ``sentences_per_s``, ``updates`` of the checkpoint decoded,
``command``), ``lead``, ``training``, ``valid_sentences`` and ``choice`` (``records`` of the same
form, one per decoding tried, and ``chosen``: the offset, the steps and the pool). Each record is
written when measured; a rerun skips one whose command and checkpoint updates are unchanged.
"""

from pathlib import Path

from difformer_cli.lead_pairs import write_lead_databin
from difformer_cli.recipes import HEADLINE_AR_OPTIONS

from .. import systems
from ..pipeline import say, shell
from ..pipeline.data import count_sentences
from .distill import distilled_databin
from .from_ar_plateau import POOLS

#: the part's place in the results file
SECTION = ("summarization", "gigaword")
ROUGE = ("rouge1", "rouge2", "rougeL")
#: the decodings :func:`choose_decoding` tries: length offsets and steps (and the reranked pools
#: (L × N) of the plateau part, :data:`~benchmarks.parts.from_ar_plateau.POOLS`)
CHOICE_OFFSETS = (0, 1, 2, 3, 4)
CHOICE_STEPS = (5, 10, 20)
#: the ROUGE-L a cheaper decoding may give up against the best: less than one decoding varies
#: from seed to seed
CHOICE_TOLERANCE = 0.5


def run(bench):
    """The AR route on Gigaword: AR Transformer, distillation, AR-initialised Difformer; every
    decoding of the validation set scored into a record, and LEAD-k."""
    # The summarization section holds this data only (the part measured AESLC before).
    bench.results.set("summarization", {"gigaword": bench.results.get(*SECTION, default={})})
    databin, minutes = bench.gigaword_databin, bench.args.summarization_minutes
    ar_databin = write_lead_databin(databin, databin.parent / "ar-bin", "src", "tgt")
    ar = bench.train_for_budget("gigaword-ar", "ar", minutes, databin=ar_databin, options=HEADLINE_AR_OPTIONS)
    teacher = Path(ar["checkpoint"])
    # Named by the AR model's budget: a teacher trained for another budget is distilled anew.
    kd_databin, distillation_minutes = distilled_databin(bench, f"gigaword-ar{minutes:g}", teacher, databin=databin)
    difformer = bench.train_for_budget("gigaword-difformer", "difformer", minutes, databin=kd_databin,
                                       extra=["--init-from-ar", teacher])
    bench.results.set(*SECTION, "training", {
        **{system: {key: t[key] for key in ("minutes", "updates", "command")}
           for system, t in (("ar", ar), ("difformer", difformer))},
        "distillation_minutes": distillation_minutes})
    bench.results.set(*SECTION, "valid_sentences", count_sentences(databin))
    for name, setting in systems.SUMMARIZATION_SETTINGS.items():
        model = ar if setting.system == "ar" else difformer
        decode(bench, setting, Path(model["checkpoint"]), model["updates"], teacher, databin)
    prepared = databin.parent / "tok"
    bench.results.set(*SECTION, "lead", lead_baseline(prepared / "train.tgt", prepared / "test.src",
                                                      prepared / "test.tgt"))
    choose_decoding(bench, Path(difformer["checkpoint"]), difformer["updates"], teacher, databin)


def choice_setting(offset: int, steps: int, pool=None):
    """The Difformer decoding of :func:`choose_decoding` with length offset ``offset``, ``steps``
    steps (the last quarter skipped, as by default) and, with ``pool`` (L, N), L × N candidates
    reranked by the AR model; named ``offset<k>_steps<s>[_<L>x<N>_rerank]``."""
    name, label = f"offset{offset}_steps{steps}", f"Difformer, length offset {offset}, {steps} steps"
    args = ("--decoding-length-offset", str(offset), "--decoding-steps", str(steps), "--seed", "1")
    if pool:
        lengths, noises = pool
        name, label = f"{name}_{lengths}x{noises}_rerank", f"{label}, {lengths}×{noises}, AR reranker"
        args += ("--length-beam-size", str(lengths), "--noise-beam-size", str(noises), "--ppl-mbr")
    return systems.DecodingSetting(name, "difformer", args, label, reranker=bool(pool), steps=steps)


def choose_decoding(bench, checkpoint: Path, updates, reranker: Path, databin: Path) -> dict:
    """The Difformer's decoding chosen by ROUGE-L on the validation set, one option at a time: the
    length offset among :data:`CHOICE_OFFSETS` at the default steps (the best), then the steps
    among :data:`CHOICE_STEPS` at that offset, then the reranked pool among :data:`POOLS` at both
    (for these two, which cost time, the cheapest within :data:`CHOICE_TOLERANCE` of the best).
    Each decoding is a record under ``choice``; ``chosen`` holds the three choices."""
    def chosen_among(candidates, tolerance):
        """The first key of ``candidates`` (option value → setting, cheapest first) whose decoding
        has a ROUGE-L within ``tolerance`` of the highest."""
        place = ("choice", "records")
        rouge_l = {value: decode(bench, setting, checkpoint, updates, reranker, databin, place)["rougeL"]
                   for value, setting in candidates.items()}
        return next(value for value in candidates if rouge_l[value] >= max(rouge_l.values()) - tolerance)

    offset = chosen_among({k: choice_setting(k, systems.DEFAULT_DECODING[1]) for k in CHOICE_OFFSETS}, 0.0)
    steps = chosen_among({s: choice_setting(offset, s) for s in CHOICE_STEPS}, CHOICE_TOLERANCE)
    lengths, noises = chosen_among({pool: choice_setting(offset, steps, pool) for pool in POOLS}, CHOICE_TOLERANCE)
    pool = f"{lengths}x{noises}"
    chosen = {"offset": offset, "steps": steps, "pool": pool}
    bench.results.set(*SECTION, "choice", "chosen", chosen)
    say(f"  chosen on the validation set: length offset {offset}, {steps} steps, {pool} reranked")
    return chosen


def decode(bench, setting, checkpoint: Path, updates, reranker: Path, databin: Path, place=("records",)):
    """fairseq-generate of the validation set at batch 100 with ``setting`` (``reranker`` scoring
    the candidates where the setting reranks), scored: its record in the results at ``place``
    under the part (skipped where one with the same command and updates is there)."""
    command = shell(bench.generate_command(setting, 100, checkpoint, reranker=reranker, databin=databin))
    measured = bench.results.get(*SECTION, *place, setting.name)
    if measured and measured.get("command") == command and measured.get("updates") == updates:
        say(f"  {setting.name}: already measured (ROUGE-L {measured['rougeL']:.2f})")
        return measured
    say(f"decoding Gigaword with {setting.name}")
    out, speed = bench.generate(setting, 100, checkpoint, tag=f"gigaword-{setting.name}", reranker=reranker,
                                databin=databin)
    scores = bench.score(out)
    record = {**{key: round(scores[key], 2) for key in ROUGE}, "length_ratio": round(scores["length_ratio"], 3),
              "sentences_per_s": speed["sentences_per_s"], "updates": updates, "command": speed["command"]}
    say(f"  ROUGE-1/2/L {record['rouge1']:.2f} / {record['rouge2']:.2f} / {record['rougeL']:.2f}, "
        f"{record['sentences_per_s']:.1f} sentences/s")
    bench.results.set(*SECTION, *place, setting.name, record)
    return record


def lead_length(train_target: Path) -> int:
    """k of LEAD-k: the mean length in words of the training headlines (``train_target``, one a
    line), rounded; at least 1."""
    headlines = train_target.read_text(encoding="utf-8").splitlines()
    return max(1, round(sum(len(line.split()) for line in headlines) / len(headlines)))


def lead_baseline(train_target: Path, sources: Path, references: Path) -> dict:
    """LEAD-k, the summarization baseline that needs no model: the first k words of each source
    (``sources``, one a line, as difformer-prepare left them before BPE) as its headline, k
    :func:`lead_length`; scored like the systems (ROUGE F1 and length ratio) against
    ``references``."""
    from difformer_cli.score import score

    k = lead_length(train_target)
    leads = [" ".join(line.split()[:k]) for line in sources.read_text(encoding="utf-8").splitlines()]
    refs = references.read_text(encoding="utf-8").splitlines()
    scores = score(leads, refs, metrics=("rouge", "tok-bleu"))
    return {"k": k, **{key: round(scores[key], 2) for key in ROUGE}, "length_ratio": round(scores["length_ratio"], 3)}
