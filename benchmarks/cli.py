"""Difformer against fairseq's AR Transformer and CMLM on Multi30k de→en, and the paper's ablations.

    python -m benchmarks                       # everything (about 10 hours on 2 CPU cores)
    python -m benchmarks --part throughput --part train --part decode     # about 105 minutes
    python -m benchmarks --part ablations --part profile                  # about 90 minutes
    python -m benchmarks --part sweep --sweep-variants reference warmup_200   # about 55 minutes
    python -m benchmarks --quick               # every step on a small subset, a few minutes
    python -m benchmarks --device cuda --databin BIN --budget-minutes 1 \
        --part throughput --part train --part decode --part precision   # IWSLT size, --fp16, on a GPU

Parts (run in this order when several are given; each needs only what the parts before it left
in the work directory):

  throughput  each system trained for the same number of updates: words/s, peak memory
  train       each system trained for --budget-minutes of wall-clock time (equal budgets)
  decode      every decoding setting on test2016 at batch 100 and batch 1: sentences/s, peak
              memory, SacreBLEU and tokenised BLEU (needs train)
  samplers    every sampler × steps × candidates on the trained Difformer, against AR beam 5
              (needs train)
  distill     sequence-level distillation at an equal total budget (--distill-budget-minutes):
              for each --teacher-minutes T, an AR teacher trained T minutes, the training set
              translated with it, each student (Difformer, CMLM) trained on that for the
              minutes left; against the students trained on the references for the whole budget
  from_ar     one AR Transformer as initialisation (--init-from-ar), distillation teacher and
              reranker: four Difformer arms (scratch / AR-initialised × references / distilled)
              at one budget (--budget-minutes, or --from-ar-updates), their learning curves, each
              decoded 1×1 and 3×2 AR-reranked against AR greedy and beam 5 (benchmarks/parts/from_ar.py)
  from_ar_plateau  (only when named: hours on a CPU) the AR route trained to its plateau: an AR
              Transformer and an AR-initialised Difformer on its distillation, each until its
              validation BLEU stops rising (--plateau-patience, --plateau-interval,
              --plateau-max-update); default decoding and AR-reranked pools against AR greedy and
              beam 5 on test2016 and valid, the length offsets on valid
  engines     the quickstart's AR model on CTranslate2 (int8, float32; greedy, beam 5) and
              fairseq-generate, its Difformer on fairseq-generate and on ONNX Runtime (the serving
              path; default and 3x2 reranked by the AR model on CTranslate2): BLEU, sentences/s at
              batch 100 (both cores, each in its best configuration) and batch 1 (one stream)
  fewer_calls  SacreBLEU against the number of denoiser calls (1, 2, 3, 4, 6) for the quickstart's
              Difformer: decoded with fewer steps (every sampler and spacing, chosen on valid) and
              step-distilled into students of 2 and 1 calls (--fewer-calls-updates each)
  summarization  Gigaword headlines through the AR route (as examples/gigaword/run.py): an AR
              Transformer trained --summarization-minutes, the training set distilled with it,
              an AR-initialised Difformer trained --summarization-minutes on that; AR greedy and
              beam 5, Difformer default and 3x2 AR-reranked on the validation set: ROUGE-1/2/L,
              length ratio, sentences/s, beside LEAD-k
  precision   the same checkpoints decoded in float32 and in fp16 (--fp16): BLEU of each and the
              difference (needs train)
  ablations   the paper's ablations, each trained --ablation-minutes: BLEU and embedding collapse
  sweep       the small-budget recipe sweep: each recipe variant (systems.SWEEP) trained
              --sweep-minutes from 3 seeds (--sweep-seeds), the default decoding's SacreBLEU on
              valid and test2016, each variant against its baseline's seed band; a run already in
              the results file with the same command is not trained again
  profile     torch profiler on one training step and one decoding batch (needs train)
  report      only regenerate the report from the results file

Each finished measurement is merged into the results file at once, so parts run in separate
sessions add up to one results file; the report (docs/benchmarks.md and its PNG plots) is
regenerated after every part. Quick-mode results never merge with full-run results: a quick run
writes its results and report into its work folder (work/benchmarks-quick), never over the
committed ones. Run with nothing else busy on the machine.

``--device cuda`` measures the IWSLT-size systems (AR transformer_iwslt_de_en size, CMLM, Difformer
difformer_iwslt_de_en) with --fp16, decoding at batch 100 and at --max-tokens 8192; it runs fairseq
as ``python -m fairseq_cli.*`` (no console scripts needed), writes results-cuda.json and the report
under docs/gpu/, and with ``--databin`` takes an already prepared data-bin.
"""

import argparse
import functools
import logging
from pathlib import Path

from . import measure, report, systems
from .parts import OPT_IN, PARTS, from_ar, from_ar_plateau
from .parts.distill import DISTILL_DECODINGS
from .pipeline import Pipeline, run_parts
from .pipeline.commands import REPO

#: every part, and ``report``: only regenerate the report from the results file
PART_NAMES = (*PARTS, "report")
#: the budget options' defaults: (a full run's, --quick's)
BUDGET_DEFAULTS = {
    "budget_minutes": (20, 0.5),
    "ablation_minutes": (8, 0.3),
    "sweep_minutes": (8, 0.3),
    "distill_budget_minutes": (30, 1.5),
    "from_ar_ar_minutes": (8, 0.3),
    "from_ar_curve_interval": (300, 10),
    "plateau_patience": (from_ar_plateau.PATIENCE, 2),
    "plateau_interval": (from_ar_plateau.INTERVAL, 10),
    "plateau_max_update": (from_ar_plateau.MAX_UPDATE, 40),
    "summarization_minutes": (20, 0.5),
    "fewer_calls_updates": (1000, 10),
    "teacher_minutes": ([8, 12], [0.3]),
}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--part", action="append", choices=PART_NAMES,
                   help="run only this part (repeatable); default: all of them")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="training minutes per system in the train part (default 20; quick 0.5)")
    p.add_argument("--ablation-minutes", type=float, default=None,
                   help="training minutes per ablation variant (default 8; quick 0.3)")
    p.add_argument("--sweep-minutes", type=float, default=None,
                   help="training minutes per recipe variant and seed in the sweep part (default 8, "
                        "the ablations' budget; quick 0.3)")
    p.add_argument("--sweep-seeds", type=int, nargs="+",
                   help="train the sweep's variants from these seeds (default 1 2 3; --quick 1)")
    p.add_argument("--sweep-variants", nargs="+", choices=list(systems.SWEEP),
                   help="run only these recipe variants in the sweep part (the others keep their results)")
    p.add_argument("--distill-budget-minutes", type=float, default=None,
                   help="the distill part's total budget per arm: teacher, translation and Difformer "
                        "(default 30; quick 1.5)")
    p.add_argument("--teacher-minutes", type=float, nargs="+", default=None,
                   help="the distill part's teacher shares of that budget (default 8 12: the AR recipe "
                        "warms up for 400 updates, about 5 minutes; quick 0.3)")
    p.add_argument("--distill-students", nargs="+", choices=list(DISTILL_DECODINGS), default=list(DISTILL_DECODINGS),
                   help="the distill part's students, each trained on the teacher's outputs for the minutes "
                        "left (default: difformer cmlm)")
    p.add_argument("--teacher-only", action="store_true",
                   help="the distill part runs only the teacher arms, not the references arm (its "
                        "results are kept)")
    p.add_argument("--from-ar-updates", type=int, default=None,
                   help="the from_ar part's budget in updates for every training (default: --budget-minutes "
                        "of wall-clock time)")
    p.add_argument("--from-ar-curve-interval", type=int, default=None,
                   help="the from_ar part validates every N updates for its learning curves (default 300; "
                        "quick 10)")
    p.add_argument("--from-ar-techniques", nargs="+", choices=list(from_ar.TECHNIQUES), default=None,
                   help="the from_ar part also trains the AR-initialised arm on distilled data with each of "
                        "these changes (" + "; ".join(f"{k}: {v[0]}" for k, v in from_ar.TECHNIQUES.items())
                        + "; default: none)")
    p.add_argument("--from-ar-total-minutes", type=float, default=None,
                   help="the from_ar part also spends this wall-clock budget two ways: AR model + distillation + "
                        "AR-initialised Difformer, against a Difformer from scratch for all of it (default: not run)")
    p.add_argument("--from-ar-ar-minutes", type=float, default=None,
                   help="the AR model's share of --from-ar-total-minutes (default 8; quick 0.3)")
    p.add_argument("--plateau-patience", type=int, default=None,
                   help="the from_ar_plateau part stops a training after N validations without a better "
                        f"validation BLEU (default {from_ar_plateau.PATIENCE}; quick 2)")
    p.add_argument("--plateau-interval", type=int, default=None,
                   help=f"the from_ar_plateau part validates every N updates (default {from_ar_plateau.INTERVAL}; "
                        "quick 10)")
    p.add_argument("--plateau-max-update", type=int, default=None,
                   help="the from_ar_plateau part's cap on each training's updates (default "
                        f"{from_ar_plateau.MAX_UPDATE}; quick 40)")
    p.add_argument("--engines-models", type=Path, default=REPO / "work" / "quickstart",
                   help="the engines and fewer_calls parts' models: a folder with ar/checkpoint_last.pt, "
                        "checkpoints/checkpoint_last.pt and distill/bin (default work/quickstart, make quickstart's)")
    p.add_argument("--fewer-calls-updates", type=int, default=None,
                   help="updates of each step-distillation round in the fewer_calls part (default 1000; quick 10)")
    p.add_argument("--summarization-minutes", type=float, default=None,
                   help="training minutes of the AR Transformer and of the Difformer each in the "
                        "summarization part (default 20; quick 0.5)")
    p.add_argument("--gigaword", type=Path, default=REPO.parent / "shared" / "data" / "gigaword",
                   help="Gigaword folder with train.{src,tgt} and valid.{src,tgt} (default ../shared/data/gigaword)")
    p.add_argument("--quick", action="store_true",
                   help="check every step in a few minutes: 2,000 training pairs, 60 test sentences, "
                        "short budgets; results are marked quick")
    p.add_argument("--systems", nargs="+", choices=list(systems.SYSTEMS),
                   help="train only these systems in the train part (the others keep their checkpoints)")
    p.add_argument("--settings", nargs="+", choices=[s.name for s in systems.DECODING_SETTINGS],
                   help="decode only these settings")
    p.add_argument("--variants", nargs="+", choices=list(systems.ABLATIONS),
                   help="run only these ablation variants")
    p.add_argument("--data", type=Path, default=REPO / "data" / "multi30k",
                   help="Multi30k folder with train/val/test_2016_flickr.{de,en} (default data/multi30k)")
    p.add_argument("--databin", type=Path, default=None,
                   help="an already prepared Multi30k data-bin (difformer-prepare's bin/) instead of --data")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: the small systems in float32; cuda: the IWSLT-size systems with --fp16")
    p.add_argument("--workdir", type=Path, default=None,
                   help="data, checkpoints, outputs, logs (default work/benchmarks[-quick|-cuda])")
    p.add_argument("--results", type=Path, default=None,
                   help="default benchmarks/results.json (results-cuda.json with --device cuda; with "
                        "--quick the work folder's results.json, so a check never touches the committed one)")
    p.add_argument("--docs", type=Path, default=None,
                   help="where benchmarks.md and the plots (benchmarks/*.png) are written "
                        "(default docs/, docs/gpu/ with --device cuda, the work folder's docs/ with --quick)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and args.quick:
        p.error("--quick is a CPU check; with --device cuda shorten --budget-minutes instead")
    for name, (full, quick) in BUDGET_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.workdir is None:
        args.workdir = REPO / "work" / ("benchmarks-quick" if args.quick else "benchmarks-cuda" if cuda else "benchmarks")
    args.results = args.results or (args.workdir / "results.json" if args.quick
                                    else REPO / "benchmarks" / ("results-cuda.json" if cuda else "results.json"))
    args.docs = args.docs or (args.workdir / "docs" if args.quick else REPO / "docs" / ("gpu" if cuda else ""))
    if args.databin is not None and not (args.databin / "dict.en.txt").exists():
        p.error(f"--databin {args.databin}: no dict.en.txt there; give difformer-prepare's bin/ folder")
    if args.databin is None and not (args.data / "train.de").exists():
        p.error(f"--data {args.data}: no train.de there; give the Multi30k folder")
    parts = [part for part in PART_NAMES if part in (args.part or set(PART_NAMES) - set(OPT_IN))]
    if "summarization" in parts and not (args.gigaword / "train.src").exists():
        p.error(f"--gigaword {args.gigaword}: no train.src there; give the Gigaword folder")
    if cuda and parts != ["report"] and not _cuda_available():
        p.error("--device cuda: torch sees no CUDA GPU here")

    bench = Pipeline(args)
    if set(parts) - {"from_ar", "from_ar_plateau", "report"}:
        bench.results.set("machine", measure.machine_description())
    bench.results.set("device", args.device)
    logging.getLogger().setLevel(logging.WARNING)  # importing fairseq turned the root logger on
    steps = [(part, None if part == "report" else functools.partial(PARTS[part], bench)) for part in parts]
    run_parts(bench.results, steps, lambda: report.write(bench.results.data, args.docs), args.results)
