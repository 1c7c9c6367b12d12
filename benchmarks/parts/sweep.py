"""Part sweep: the small-budget recipe sweep, each variant (systems.SWEEP) trained from several seeds."""

from pathlib import Path

from .. import systems
from ..pipeline import say, shell


def run(bench):
    """Each recipe variant (``systems.SWEEP``) trained from each seed for --sweep-minutes and
    decoded with the default decoding on the validation set (which decides what is kept) and
    on test2016, at --decoding-length-offset 0: the sweep's runs were first measured before the
    offset of 2 became the default, and a variant compares with its baseline's seed band only
    under the same decoding."""
    minutes = bench.args.sweep_minutes
    setting = systems.SETTINGS_BY_NAME["difformer_default_length0"]
    batch_size = bench.scale.decode_batch_sizes[0]
    for variant in bench.args.sweep_variants or list(systems.SWEEP):
        bench.results.set("sweep", variant, "description", systems.SWEEP_DESCRIPTIONS[variant])
        for seed in bench.args.sweep_seeds or bench.scale.sweep_seeds:
            name = f"sweep-{variant}-seed{seed}"
            options = {**systems.SWEEP[variant], "--seed": str(seed)}
            measured = bench.results.get("sweep", variant, "seeds", str(seed))
            if measured and measured["command"] == shell(
                    bench.budget_command(name, "difformer", minutes, options=options)):
                say(f"{name}: already measured (valid {measured['valid_bleu']:.2f})")
                continue
            summary = bench.train_for_budget(name, "difformer", minutes, options=options)
            run = {"minutes": minutes, "updates": summary["updates"], "command": summary["command"],
                   "words_per_s": summary.get("words_per_s")}
            for subset in ("valid", "test"):
                out, _ = bench.generate(setting, batch_size, Path(summary["checkpoint"]),
                                       tag=f"{name}-{subset}", subset=subset)
                scores = bench.score(out)
                run[f"{subset}_bleu"] = round(scores["sacrebleu"], 2)
                run[f"{subset}_lengths"] = {key: round(scores[key], 4) for key in
                                            ("length_ratio", "exact_length", "mean_abs_length_diff")}
            say(f"  {name}: SacreBLEU valid {run['valid_bleu']:.2f}, test {run['test_bleu']:.2f}")
            bench.results.set("sweep", variant, "seeds", str(seed), run)
