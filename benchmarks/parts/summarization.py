"""Part summarization: AESLC (email → subject line), the AR Transformer and Difformer of the same
size trained with the summarization recipe, decoded on the dev set: ROUGE-1/2/L and length ratio."""

import json
from pathlib import Path

from difformer_cli.recipes import SUMMARIZATION_DECODE_ARGS

from .. import systems
from ..pipeline import say
from ..pipeline.data import count_sentences


def run(bench):
    """AESLC at an equal budget: the AR Transformer and Difformer, the same size, each trained
    --summarization-minutes with the summarization recipe (sources cut to 64 tokens), decoded
    on the dev set (batch 100; Difformer's 3×2 reranked by this AR model) and scored: ROUGE-1/2/L
    F1 and the length ratio."""
    databin, minutes = bench.aeslc_databin, bench.args.summarization_minutes
    trained = {system: bench.train_for_budget(f"aeslc-{system}", system, minutes, databin=databin,
                                             summarization=True)
               for system in ("ar", "difformer")}
    batch = bench.scale.decode_batch_sizes[0]
    for name in systems.SUMMARIZATION_SETTINGS:
        setting = systems.SETTINGS_BY_NAME[name]
        say(f"decoding AESLC with {name}")
        out, speed = bench.generate(setting, batch, Path(trained[setting.system]["checkpoint"]),
                                   tag=f"aeslc-{name}", reranker=Path(trained["ar"]["checkpoint"]),
                                   databin=databin, extra=SUMMARIZATION_DECODE_ARGS)
        scores = bench.score(out)
        say(f"  ROUGE-1/2/L {scores['rouge1']:.2f} / {scores['rouge2']:.2f} / {scores['rougeL']:.2f}")
        bench.results.set("summarization", "decoding", name, {
            **{key: round(scores[key], 2) for key in ("rouge1", "rouge2", "rougeL")},
            "length_ratio": round(scores["length_ratio"], 3), "label": setting.label,
            "sentences_per_s": speed["sentences_per_s"], "command": speed["command"]})
        if name == systems.BASELINE_SETTING:
            bench.results.set("summarization", "lead", lead_baseline(out, bench.args.aeslc / "train.jsonl"))
    bench.results.set("summarization", "training", {system: {key: t[key] for key in ("minutes", "updates", "command")}
                                                   for system, t in trained.items()})
    bench.results.set("summarization", "dev_sentences", count_sentences(databin))


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
