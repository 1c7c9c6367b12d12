"""Part summarization: Gigaword headline generation through the AR route, as
examples/gigaword/run.py runs it, at the benchmark's budget.

The data (``--gigaword``: an article's first sentence → its headline) is prepared by
difformer-prepare with the released tokens kept, its validation set as the test split. An AR
Transformer is trained ``--summarization-minutes`` with the translation recipe (the sources are
single sentences: none is cut), the training set distilled with it (beam 5, timed), and a
Difformer initialised from it (``--init-from-ar``) trained ``--summarization-minutes`` on the
distilled headlines. Each decoding of :data:`~benchmarks.systems.SUMMARIZATION_SETTINGS` runs on
the validation set at batch 100 and is scored (ROUGE-1/2/L F1, length ratio), beside LEAD-k.

Results: ``summarization.gigaword`` with ``records`` (one per decoding: ``rouge1``, ``rouge2``,
``rougeL``, ``length_ratio``, ``sentences_per_s``, ``updates`` of the checkpoint decoded,
``command``), ``lead``, ``training`` and ``valid_sentences``. Each record is written when
measured; a rerun skips one whose command and checkpoint updates are unchanged.
"""

from pathlib import Path

from .. import systems
from ..pipeline import say, shell
from ..pipeline.data import count_sentences
from .distill import distilled_databin

#: the part's place in the results file
SECTION = ("summarization", "gigaword")
ROUGE = ("rouge1", "rouge2", "rougeL")


def run(bench):
    """The AR route on Gigaword: AR Transformer, distillation, AR-initialised Difformer; every
    decoding of the validation set scored into a record, and LEAD-k."""
    # The summarization section holds this data only (the part measured AESLC before).
    bench.results.set("summarization", {"gigaword": bench.results.get(*SECTION, default={})})
    databin, minutes = bench.gigaword_databin, bench.args.summarization_minutes
    ar = bench.train_for_budget("gigaword-ar", "ar", minutes, databin=databin)
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


def decode(bench, setting, checkpoint: Path, updates, reranker: Path, databin: Path):
    """fairseq-generate of the validation set at batch 100 with ``setting`` (``reranker`` scoring
    the candidates where the setting reranks), scored: its record in the results (skipped where one
    with the same command and updates is there)."""
    command = shell(bench.generate_command(setting, 100, checkpoint, reranker=reranker, databin=databin))
    measured = bench.results.get(*SECTION, "records", setting.name)
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
    bench.results.set(*SECTION, "records", setting.name, record)
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
