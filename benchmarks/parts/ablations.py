"""Part ablations: the paper's ablations, each trained --ablation-minutes: BLEU and embedding collapse."""

from pathlib import Path

from .. import systems
from ..pipeline import say


def run(bench):
    minutes = bench.args.ablation_minutes
    setting = systems.SETTINGS_BY_NAME["difformer_20"]
    variants = bench.args.variants or list(systems.ABLATIONS)
    for variant in variants:
        summary = bench.train_for_budget(f"ablation-{variant}", "difformer", minutes,
                                        systems.ABLATIONS[variant])
        checkpoint = Path(summary["checkpoint"])
        say(f"decoding ablation {variant}")
        out, speed = bench.generate(setting, bench.scale.decode_batch_sizes[0], checkpoint,
                                   tag=f"ablation-{variant}")
        scores = bench.score(out)
        collapse = collapse_statistics(checkpoint, systems.rescaling_factor(variant))
        say(f"  SacreBLEU {scores['sacrebleu']:.2f}, embedding spread {collapse['spread']:.3f}, "
            f"mean distance {collapse['mean_distance']:.2f}")
        bench.results.set("ablations", variant, {
            "bleu": round(scores["sacrebleu"], 2),
            "tok_bleu": round(scores["tok_bleu"], 2),
            "collapse": round(collapse["spread"], 4),
            "collapse_stats": collapse,
            "description": systems.ABLATION_DESCRIPTIONS[variant],
            "minutes": minutes,
            "updates": summary["updates"],
            "command": summary["command"],
        })


def collapse_statistics(checkpoint: Path, rescaling_factor: float) -> dict:
    """The embedding-collapse statistics of the z0 = √d·E[w] the diffusion runs on (see
    ``fairseq_difformer.diagnostics``), and their mean distance relative to the noise scale F."""
    import torch
    from fairseq import checkpoint_utils

    import fairseq_difformer  # noqa: F401
    from fairseq_difformer.diagnostics import embedding_collapse_stats

    (model,), _, _ = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    decoder = model.decoder
    with torch.no_grad():
        z0 = decoder.embed_latent(torch.arange(decoder.embed_tokens.num_embeddings))
    stats = embedding_collapse_stats(z0, decoder.dictionary.nspecial)
    stats["distance_over_noise_scale"] = stats["mean_distance"] / rescaling_factor
    return stats
