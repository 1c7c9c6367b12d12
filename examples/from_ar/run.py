#!/usr/bin/env python3
"""From your AR Transformer to a faster decoder: one fairseq AR checkpoint as the Difformer's
initialisation, its distillation teacher and its reranker.

    AR.pt + its data-bin  → (a, b) difformer-distill --teacher AR.pt: the training set translated
                                   with beam 5, binarised with the same dictionary
                          → (c) fairseq-train --task difformer --init-from-ar AR.pt on it
                          → (d) fairseq-generate --path difformer.pt:AR.pt (1×1, and 3×2 reranked)
                          → (e) difformer-score: SacreBLEU, BLEU, length ratio, sentences/s

    python examples/from_ar/run.py --ar AR.pt --databin BIN     # your model and its data-bin
    python examples/from_ar/run.py                              # the shipped Multi30k: an AR
                                                                # model is trained first
    python examples/from_ar/run.py --smoke                      # every step in a few minutes

Without --ar, the shipped Multi30k copy is prepared (as the quickstart) and an AR Transformer of
the benchmark's recipe is trained for --ar-minutes. Re-running reuses every finished step: the
data-bin, the AR model, the distilled data, a finished Difformer training and the decoded test
sets; an interrupted training resumes from checkpoint_last.pt (and --init-from-ar is not applied
again). Outputs go to --workdir (default work/from_ar).
"""

import argparse
import sys
import time
from pathlib import Path

from difformer_cli import pipeline
from difformer_cli.pipeline import AR_ROUTE_DECODINGS, say

REPO = Path(__file__).resolve().parents[2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--ar", type=Path, help="your AR fairseq Transformer checkpoint (task translation), trained "
                                           "on --databin with the Difformer's sizes (default: train one)")
    p.add_argument("--databin", type=Path, help="the AR model's data-bin (joined dictionary; default: the "
                                                "shipped Multi30k, prepared)")
    p.add_argument("--ar-minutes", type=float, default=20, help="without --ar: the AR model's training minutes")
    p.add_argument("--minutes", type=float, default=20, help="the Difformer's training minutes (default 20)")
    p.add_argument("--smoke", action="store_true", help="every step in a few minutes: 500 pairs, 5 updates each")
    p.add_argument("--workdir", type=Path, default=REPO / "work" / "from_ar")
    args = p.parse_args(argv)
    if (args.ar is None) != (args.databin is None):
        p.error("give --ar and --databin together: the AR model and the data-bin it was trained on")
    if args.ar is not None and not args.ar.is_file():
        p.error(f"--ar {args.ar}: file not found")
    pipeline.PREFIX[0] = "from_ar"
    with pipeline.workdir(args.workdir) as work:
        max_update = 5 if args.smoke else None
        start = time.time()

        databin = args.databin or pipeline.prepare(pipeline.MULTI30K, work, 500 if args.smoke else None, 300 if args.smoke else 8000)
        ar = args.ar or pipeline.train("ar", databin, work / "ar", args.ar_minutes, max_update)
        kd, _ = pipeline.distill(databin, ar, work / "distill", args.smoke)
        model = pipeline.train("difformer", kd, work / "difformer", args.minutes, max_update, extra=["--init-from-ar", ar])
        results = {name: pipeline.decode(name, options, kd, ar if name.startswith("ar_") else model, work,
                                      reranker=ar if reranked else None)
                   for name, options, reranked in AR_ROUTE_DECODINGS}
        say("test set, batch 100, on this CPU:")
        pipeline.show_scores(results)
        pipeline.write_results(work / "results.json", results)
        say(f"done in {time.time() - start:.0f} s; outputs in {work}")


if __name__ == "__main__":
    main()
