#!/usr/bin/env python3
"""Gigaword headline generation, the Difformer paper's summarization task, on a CPU through the AR
route, in one budget.

    ../shared/data/gigaword (first sentence of an article → its headline; 25,477 training and
    1,000 validation pairs, as released: tokenised, lowercased, digits as #, <unk> for rare words)
      → difformer-prepare --no-tokenize (joint BPE; <unk> stays the dictionary's unknown word)
      → fairseq-train an AR Transformer for --ar-share of --minutes, on the headlines and on lead
        pairs (each source, tagged, → its first k words: difformer_cli/lead_pairs.py)
      → difformer-distill: the training headlines written by it (beam 5)
      → fairseq-train difformer_small --init-from-ar on those, for the rest
      → fairseq-generate the validation set: AR greedy and beam 5, the Difformer's default
        decoding and 3×2 candidates reranked by the AR model → ROUGE-1/2/L, length ratio,
        sentences/s, beside LEAD-k (the first k source words, k the mean training headline length)

The sources are single sentences (24 words on average, 31 in the validation set), the size of
Multi30k's, so no source is cut and the systems train with the translation recipe
(difformer_cli/recipes.py), but for the AR teacher's lead pairs and larger batches
(HEADLINE_AR_OPTIONS), without which it does not learn to read the article in CPU minutes. ROUGE is rouge-score's F1 with Porter stemming on the released tokens, averaged over
sentences (difformer-score). The figures compare within this data only: papers train on the
3.8M-pair training split and report on the 1,951-pair test set.

Re-running reuses what is done, as the quickstart does (difformer_cli/pipeline.py).
"""

import json
import os
import time
from pathlib import Path

from difformer_cli import pipeline
from difformer_cli.lead_pairs import write_lead_databin
from difformer_cli.pipeline import Corpus, clock, say
from difformer_cli.recipes import HEADLINE_AR_OPTIONS, HEADLINE_DECODING, with_options

REPO = Path(__file__).resolve().parents[2]
#: the validation set is the test split too: the data's README says to select and report on it
GIGAWORD = Corpus("the validation set", Path(os.environ.get("GIGAWORD", REPO.parent / "shared" / "data" / "gigaword")),
                  "src", "tgt", ("train", "valid", "valid"), ("--no-tokenize",), ("--metrics", "tok-bleu,rouge,lengths"))
#: the decodings: (name, fairseq-generate options, reranked by the AR model); the Difformer's with the
#: headline recipe's decoding options
DECODINGS = (
    ("ar_greedy", ["--task", "translation", "--beam", "1", "--max-len-a", "1.2", "--max-len-b", "10"], False),
    ("ar_beam5", ["--task", "translation", "--beam", "5", "--max-len-a", "1.2", "--max-len-b", "10"], False),
    ("difformer_default", ["--task", "difformer", *HEADLINE_DECODING, "--seed", "1"], False),
    ("difformer_3x2_rerank", ["--task", "difformer", *HEADLINE_DECODING, "--length-beam-size", "3",
                              "--noise-beam-size", "2", "--ppl-mbr", "--seed", "1"], True),
)
#: the smoke setting's AR decodings: at most 20 tokens (an AR model of 5 updates rambles to its limit)
SMOKE_LIMITS = {"--max-len-a": "0", "--max-len-b": "20"}
ROUGE = ("rouge1", "rouge2", "rougeL")
MIN_DIFFORMER_MINUTES = 1.0


def lead(corpus: Corpus, work: Path, train_lines=None):
    """LEAD-k on the validation set: each source's first k words, k the mean training headline
    length in words (rounded); scored by difformer-score as the decodings are."""
    headlines = (corpus.folder / f"{corpus.stems[0]}.{corpus.target_lang}").read_text(encoding="utf-8").splitlines()
    headlines = headlines[:train_lines] if train_lines else headlines
    k = round(sum(len(line.split()) for line in headlines) / len(headlines))
    valid = pipeline.prepared_split(work, corpus, "test")
    sources = valid[corpus.source_lang].read_text(encoding="utf-8").splitlines()
    hyp = work / f"lead{k}.txt"
    hyp.write_text("".join(" ".join(line.split()[:k]) + "\n" for line in sources), encoding="utf-8")
    scores_file = work / f"lead{k}.scores.json"
    pipeline.run(["difformer-score", "--hyp", hyp, "--ref", valid[corpus.target_lang], *corpus.score_args, "--json"],
                 work / "lead.score.log", stdout=scores_file)
    return f"lead{k}", json.loads(scores_file.read_text())


def main(argv=None):
    p = pipeline.route_parser(__doc__.split("\n\n")[0], REPO / "work" / "gigaword")
    args = p.parse_args(argv)
    max_lines, bpe_merges, max_update = pipeline.route_setting(p, args)
    if not GIGAWORD.folder.is_dir():
        p.error(f"no Gigaword data in {GIGAWORD.folder}: set GIGAWORD to the folder holding train.src, "
                f"train.tgt, valid.src and valid.tgt")
    pipeline.PREFIX[0] = "gigaword"
    with pipeline.workdir(args.workdir) as work:
        start = time.time()
        databin = pipeline.prepare(GIGAWORD, work, max_lines, bpe_merges)
        ar_minutes = round(args.minutes * args.ar_share, 2)
        ar_databin = write_lead_databin(databin, work / "ar-bin", GIGAWORD.source_lang, GIGAWORD.target_lang)
        ar = pipeline.train("ar", ar_databin, work / "ar", ar_minutes, max_update, options=HEADLINE_AR_OPTIONS)
        kd, seconds = pipeline.distill(databin, ar, work / "distill", args.smoke)
        minutes = max(round(args.minutes - ar_minutes - seconds / 60, 2), MIN_DIFFORMER_MINUTES)
        say(f"budget: AR {ar_minutes:g} min + distillation {seconds / 60:.1f} min + Difformer {minutes:g} min")
        model = pipeline.train("difformer", kd, work / "checkpoints", minutes, max_update, extra=["--init-from-ar", ar])
        results = {}
        for name, options, reranked in DECODINGS:
            if args.smoke and name.startswith("ar_"):
                options = with_options(options, SMOKE_LIMITS)
            results[name] = pipeline.decode(name, options, kd, ar if name.startswith("ar_") else model, work,
                                            reranker=ar if reranked else None, corpus=GIGAWORD)
        name, scores = lead(GIGAWORD, work, max_lines)
        results[name] = scores

        say("examples from the validation set:")
        pipeline.show_examples(work / "difformer_3x2_rerank.txt")
        say(f"Gigaword validation set ({scores['sentences']:,} pairs as released: tokenised, lowercased), "
            f"batch 100, on this CPU:")
        pipeline.show_scores(results, ROUGE)
        pipeline.write_results(work / "results.json", results)
        say(f"done in {clock(time.time() - start)}; outputs in {work}")


if __name__ == "__main__":
    main()
