"""The report's PNG plots, drawn with matplotlib's file-only backend."""

from pathlib import Path
from typing import Dict

from .. import systems
from . import fewer_calls, plateau
from .sections import sampler_rows, seed_bleus
from .tables import ARM_LABELS, SYSTEM_NAMES


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, its logger quiet."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def make_plots(results: Dict, directory: Path, prefix: str) -> Dict[str, str]:
    """PNG plots next to the report; returns {plot: path relative to the report}."""
    plt = pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    made = {}
    bleu = results.get("bleu", {})
    speed = results.get("decode_sentences_per_s", {})

    points = [(s, bleu[s.name], speed[s.name]) for s in systems.DECODING_SETTINGS
              if s.name in bleu and s.name in speed]
    if points:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        colours = {"ar": "tab:green", "cmlm": "tab:orange", "difformer": "tab:blue"}
        for setting, b, sps in points:
            ax.scatter(sps, b, color=colours[setting.system])
            ax.annotate(setting.name, (sps, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for system, colour in colours.items():
            ax.scatter([], [], color=colour, label=SYSTEM_NAMES[system])
        ax.set_xscale("log")
        ax.set_xlabel("sentences/s (batch 100, log scale)")
        ax.set_ylabel("SacreBLEU")
        ax.legend()
        ax.set_title("Quality against decoding speed, test2016")
        fig.tight_layout()
        fig.savefig(directory / "quality_speed.png", dpi=120)
        plt.close(fig)
        made["quality_speed"] = f"{prefix}/quality_speed.png"

    grid = sampler_rows(results)
    base = results.get("samplers_baseline", {}).get("sentences_per_s")
    if grid and base:
        beams = [f"{l}x{n}" for l, n in systems.SAMPLER_BEAMS if any(key[1] == f"{l}x{n}" for key in grid)]
        fig, axes = plt.subplots(1, len(beams), figsize=(6 * len(beams), 4.5), squeeze=False)
        colours = {"ddpm": "tab:blue", "ddim": "tab:orange", "dpm-solver++": "tab:green"}
        for ax, candidates in zip(axes[0], beams):
            for (sampler, beam, stop), row in grid.items():
                if beam != candidates:
                    continue
                steps = sorted(row)
                ax.plot([row[n]["sentences_per_s"] / base for n in steps], [row[n]["bleu"] for n in steps],
                        "o:" if stop else "o-", color=colours.get(sampler, "tab:gray"),
                        fillstyle="none" if stop else "full",
                        label=sampler + (", early stop ¼" if stop else ""))
                for n in steps:
                    ax.annotate(str(n), (row[n]["sentences_per_s"] / base, row[n]["bleu"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            ax.axvline(1.0, color="gray", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("sentences/s ÷ AR beam 5 (batch 100, log scale; labels: steps)")
            ax.set_ylabel("SacreBLEU")
            ax.legend(fontsize=8)
            ax.set_title(f"{candidates.replace('x', '×')} candidates")
        fig.suptitle("Samplers: quality against speed, test2016")
        fig.tight_layout()
        fig.savefig(directory / "samplers.png", dpi=120)
        plt.close(fig)
        made["samplers"] = f"{prefix}/samplers.png"

    ablations = results.get("ablations", {})
    if ablations:
        names = [v for v in systems.ABLATIONS if v in ablations]
        stats = {v: ablations[v]["collapse_stats"] for v in names}
        x = list(range(len(names)))
        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4))
        bleu = [ablations[v]["bleu"] for v in names]
        ax1.bar(x, bleu, color="tab:blue")
        seeds = seed_bleus(ablations)
        if len(seeds) > 1:
            ax1.axhspan(min(seeds), max(seeds), color="tab:orange", alpha=0.3,
                        label=f"reference over {len(seeds)} seeds")
            ax1.legend(fontsize=8)
        ax1.set_ylim(0, 1.25 * max(bleu + [1.0]))
        ax1.set_ylabel("SacreBLEU")
        ax1.set_title("BLEU (20 steps, 1×1)")
        width = 0.4
        ax2.bar([i - width / 2 for i in x], [stats[v]["spread"] for v in names], width, color="tab:gray",
                label="spread (distance ÷ norm)")
        ax2.bar([i + width / 2 for i in x], [stats[v]["norm_variation"] for v in names], width,
                color="tab:green", label="norm variation (std ÷ mean)")
        ax2.legend(fontsize=8)
        ax2.set_title("embedding geometry")
        ax3.bar(x, [stats[v]["distance_over_noise_scale"] for v in names], color="tab:red")
        ax3.set_title("mean distance between words ÷ F")
        for ax in (ax1, ax2, ax3):
            ax.set_xticks(x, names)
            ax.tick_params(axis="x", rotation=40, labelsize=8)
        fig.tight_layout()
        fig.savefig(directory / "ablations.png", dpi=120)
        plt.close(fig)
        made["ablations"] = f"{prefix}/ablations.png"
    made.update(from_ar_curves(results, directory, prefix, plt))
    made.update(from_ar_plateau_curves(results, directory, prefix, plt))
    figure = fewer_calls.plot(results, plt)
    if figure is not None:
        made.update(saved(figure, plt, directory, prefix, "fewer_calls"))
    return made


def from_ar_curves(results: Dict, directory: Path, prefix: str, plt) -> Dict[str, str]:
    """Validation BLEU and loss against updates, one line per arm and one for the AR model."""
    part = results.get("from_ar", {})
    curves = {"ar": part.get("ar", {}).get("curve")}
    curves.update({arm: t.get("curve") for arm, t in part.get("training", {}).items()})
    curves = {name: c for name, c in curves.items() if c}
    if not curves:
        return {}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, curve) in enumerate(curves.items()):
        label = "AR Transformer (greedy)" if name == "ar" else ARM_LABELS.get(name, name)
        # one colour per arm in both panels, also where an arm has no BLEU curve
        style = {"color": "k", "linestyle": "--"} if name == "ar" else {"color": palette[i % len(palette)]}
        scored = [p for p in curve if p.get("bleu") is not None]
        if scored:
            ax1.plot([p["updates"] for p in scored], [p["bleu"] for p in scored], marker="o",
                     markersize=3, label=label, **style)
        if name != "ar":  # the AR model's loss is a cross-entropy, the arms' a diffusion loss
            ax2.plot([p["updates"] for p in curve], [p["loss"] for p in curve], marker="o", markersize=3,
                     label=label, **style)
    ax1.set_xlabel("updates")
    ax1.set_ylabel("validation BLEU (--eval-bleu)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("updates")
    ax2.set_ylabel("validation loss (Difformer criterion)")
    ax2.legend(fontsize=8)
    fig.suptitle("from_ar: learning curves on Multi30k valid")
    return saved(fig, plt, directory, prefix, "from_ar_curves")


def from_ar_plateau_curves(results: Dict, directory: Path, prefix: str, plt) -> Dict[str, str]:
    """Left: validation BLEU against updates of the AR model and the Difformer; right: the AR
    model's best validation BLEU minus the Difformer's, against the Difformer's updates."""
    training = results.get(plateau.SECTION, {}).get("training", {})
    ar = [p for p in (training.get("ar", {}).get("curve") or []) if p.get("bleu") is not None]
    student = [p for p in (training.get("ar_init_kd", {}).get("curve") or []) if p.get("bleu") is not None]
    if not ar and not student:
        return {}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    if ar:
        ax1.plot([p["updates"] for p in ar], [p["bleu"] for p in ar], "k--", marker="o", markersize=3,
                 label="AR Transformer (greedy)")
    if student:
        ax1.plot([p["updates"] for p in student], [p["bleu"] for p in student], marker="o", markersize=3,
                 label="Difformer --init-from-ar, distilled (default decoding)")
    if ar and student:
        best = max(p["bleu"] for p in ar)
        ax2.plot([p["updates"] for p in student], [best - p["bleu"] for p in student], marker="o", markersize=3)
        ax2.axhline(plateau.GAP_GREEDY, color="grey", linestyle=":", label=f"target gap {plateau.GAP_GREEDY:g}")
        ax2.legend(fontsize=8)
    ax1.set_xlabel("updates")
    ax1.set_ylabel("validation BLEU (--eval-bleu)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("Difformer updates")
    ax2.set_ylabel("AR best validation BLEU − Difformer's")
    fig.suptitle("from_ar_plateau: learning curves on Multi30k valid")
    return saved(fig, plt, directory, prefix, "from_ar_plateau_curves")


def saved(fig, plt, directory: Path, prefix: str, name: str) -> Dict[str, str]:
    """``fig`` laid out and written to ``directory``/NAME.png, closed; {NAME: its path in the report}."""
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    fig.savefig(directory / f"{name}.png", dpi=120)
    plt.close(fig)
    return {name: f"{prefix}/{name}.png"}
