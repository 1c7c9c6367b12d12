#!/usr/bin/env python3
"""The quickstart: Multi30k German → English with Difformer on a CPU, end to end, in one budget.

    data/multi30k (shipped) → difformer-prepare (joint BPE, fairseq-preprocess)
                            → fairseq-train an AR Transformer for --ar-share of --minutes
                            → difformer-distill: the training set translated by it (beam 5)
                            → fairseq-train difformer_small --init-from-ar on that, for the rest
                            → fairseq-generate test2016: AR greedy, Difformer 1×1 and 3×2
                              AR-reranked → difformer-score → SacreBLEU, BLEU, sentences/s

The whole budget (default 30 minutes) covers the three stages: the AR model, the distillation
(timed) and the Difformer. At equal total minutes this beats a Difformer trained from scratch on
the references for all of them (docs/benchmarks.md, "One budget … spent two ways"), and the AR
model comes with it, as the reranker and as the baseline. ``--from-scratch`` trains only the
Difformer, on the references, for all the minutes.

Re-running reuses what is done: the prepared data-bin, finished trainings (their budget spent),
the distilled data, decoded test sets. An interrupted training resumes from checkpoint_last.pt,
and fairseq counts the time already spent against the budget.

The data are the dataset's lowercased, Moses-tokenised release, so the scores are of lowercased
text: SacreBLEU on Moses-detokenised output against the detokenised lowercased references, and
tokenised BLEU on the tokenised text (the paper's protocol).
"""

import sys
import time
from pathlib import Path

from difformer_cli import pipeline
from difformer_cli.pipeline import AR_ROUTE_DECODINGS, clock, say

REPO = Path(__file__).resolve().parents[1]
#: --from-scratch's decoding (no AR model to rerank): 20 steps, 3 lengths × 2 noises centred 2
#: tokens above the predicted length
SCRATCH_DECODING = ["--task", "difformer", "--seed", "1", "--decoding-steps", "20", "--decoding-early-stopping", "5",
                    "--length-beam-size", "3", "--noise-beam-size", "2", "--decoding-length-offset", "2"]
#: the Difformer's training is not started with less than this many minutes left
MIN_DIFFORMER_MINUTES = 1.0


def from_ar_route(args, databin, work, max_update):
    """AR model → distillation → AR-initialised Difformer, all inside ``args.minutes``."""
    ar_minutes = round(args.minutes * args.ar_share, 2)
    ar = pipeline.train("ar", databin, work / "ar", ar_minutes, max_update)
    kd, seconds = pipeline.distill(databin, ar, work / "distill", args.smoke)
    minutes = round(args.minutes - ar_minutes - seconds / 60, 2)
    if minutes < MIN_DIFFORMER_MINUTES:
        if not args.smoke:
            sys.exit(f"quickstart: --minutes {args.minutes:g} leaves {minutes:g} min for the Difformer after the "
                     f"AR model ({ar_minutes:g} min) and the distillation ({seconds / 60:.1f} min); give a larger "
                     f"--minutes, or --from-scratch")
        minutes = MIN_DIFFORMER_MINUTES
    say(f"budget: AR {ar_minutes:g} min + distillation {seconds / 60:.1f} min + Difformer {minutes:g} min")
    model = pipeline.train("difformer", kd, work / "checkpoints", minutes, max_update, extra=["--init-from-ar", ar])
    results = {name: pipeline.decode(name, options, kd, ar if name.startswith("ar_") else model, work,
                                  reranker=ar if reranked else None)
               for name, options, reranked in AR_ROUTE_DECODINGS}
    return results, work / "difformer_3x2_rerank.txt"


def from_scratch_route(args, databin, work, max_update):
    model = pipeline.train("difformer", databin, work / "checkpoints", args.minutes, max_update)
    results = {"difformer_3x2": pipeline.decode("difformer_3x2", SCRATCH_DECODING, databin, model, work)}
    return results, work / "difformer_3x2.txt"


def main(argv=None):
    p = pipeline.route_parser(__doc__.split("\n\n")[0], REPO / "work" / "quickstart")
    p.add_argument("--from-scratch", action="store_true",
                   help="train only the Difformer, on the references, for all of --minutes (no AR model)")
    args = p.parse_args(argv)
    max_lines, bpe_merges, max_update = pipeline.route_setting(p, args)
    pipeline.PREFIX[0] = "quickstart"
    with pipeline.workdir(args.workdir) as work:
        start = time.time()
        databin = pipeline.prepare(pipeline.MULTI30K, work, max_lines, bpe_merges)
        route = from_scratch_route if args.from_scratch else from_ar_route
        results, examples = route(args, databin, work, max_update)

        say("examples from test2016:")
        pipeline.show_examples(examples)
        say("test2016 (lowercased), batch 100, on this CPU:")
        pipeline.show_scores(results)
        pipeline.write_results(work / "results.json", results)
        say(f"done in {clock(time.time() - start)}; outputs in {work}")


if __name__ == "__main__":
    main()
