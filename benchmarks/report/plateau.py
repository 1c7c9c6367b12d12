"""The report of the from_ar_plateau part: its section, its targets and its learning-curve plot."""

from pathlib import Path
from typing import Dict, List

from ..parts.from_ar_plateau import LENGTH_OFFSETS, POOLS
from .tables import fixed, table

#: the targets at the plateau: the default decoding ≥ AR greedy − GAP_GREEDY SacreBLEU, and some
#: reranked pool ≥ AR beam 5
GAP_GREEDY = 1.5
SECTION = "from_ar_plateau"


def rows(records: Dict) -> List[List[str]]:
    """A row per decoding: the updates of the checkpoint decoded, SacreBLEU, tokenised BLEU, length ratio, exact length,
    sentences/s at batch 100 and 1, and the BLEU difference to AR greedy and to AR beam 5."""
    greedy, beam = records.get("ar_greedy"), records.get("ar_beam5")
    labels = {"ar_greedy": "AR Transformer, greedy", "ar_beam5": "AR Transformer, beam 5",
              "ar_init_kd_default": "Difformer --init-from-ar on distilled data, default (1×1)"}
    labels.update({f"ar_init_kd_{l}x{n}_rerank": f"the same, {l}×{n} reranked by the AR model" for l, n in POOLS})
    labels.update({f"ar_init_kd_offset{o}": f"the same, default, --decoding-length-offset {o}" for o in LENGTH_OFFSETS})
    out = []
    for key, label in labels.items():
        r = records.get(key)
        if not r:
            continue
        out.append([label, fixed(r.get("updates"), 0),
                    fixed(r["bleu"]), fixed(r.get("tok_bleu")), fixed(r.get("length_ratio"), 3),
                    fixed(r.get("exact_length"), 3), fixed(r.get("sentences_per_s_batch100"), 1),
                    fixed(r.get("sentences_per_s_batch1"), 1),
                    "–" if not greedy else f"{r['bleu'] - greedy['bleu']:+.2f}",
                    "–" if not beam else f"{r['bleu'] - beam['bleu']:+.2f}"])
    return out


HEADER = ["decoding", "updates", "SacreBLEU", "tok. BLEU", "length ratio", "exact length", "sent/s batch 100",
          "sent/s batch 1", "vs AR greedy", "vs AR beam 5"]


def section(results: Dict, plots: Dict[str, str]) -> str:
    part = results.get(SECTION, {})
    title = "## The AR route trained to its plateau\n\n"
    training = part.get("training", {})
    if not training:
        return title + "Not measured yet (`python -m benchmarks --part from_ar_plateau`: hours on a CPU).\n"
    setup = part.get("setup", {})
    stopped = "; ".join(
        f"{'AR Transformer' if arm == 'ar' else 'Difformer'}: {t.get('updates')} updates, stopped by the "
        f"{t.get('stopped')}, best validation BLEU {fixed((t.get('best') or {}).get('bleu'))} at update "
        f"{(t.get('best') or {}).get('updates')}" for arm, t in training.items())
    text = (title + f"**Machine:** {part.get('machine', {}).get('description', 'unknown')} (this part's own run).\n\n"
            f"Each training validates every {setup.get('interval')} updates and stops after "
            f"{setup.get('patience')} validations without a better validation BLEU, or at "
            f"{setup.get('max_update')} updates; the decodings use its best checkpoint. {stopped}. "
            f"Distillation: {fixed(part.get('distillation', {}).get('minutes'))} min (beam 5).\n\n")
    if part.get("records"):
        text += "test2016:\n\n" + table(HEADER, rows(part["records"])) + "\n"
    if part.get("validation"):
        text += "Validation set (batch 100):\n\n" + table(HEADER, rows(part["validation"])) + "\n"
    if "from_ar_plateau_curves" in plots:
        text += f"![validation BLEU of both trainings, and the gap]({plots['from_ar_plateau_curves']})\n"
    return text


def targets(results: Dict) -> List[Dict]:
    records = results.get(SECTION, {}).get("records", {})
    greedy, beam, default = records.get("ar_greedy"), records.get("ar_beam5"), records.get("ar_init_kd_default")
    pools = {key: r for key, r in records.items() if key.endswith("_rerank")}
    name1 = f"from_ar_plateau: default decoding ≥ AR greedy SacreBLEU − {GAP_GREEDY:g}"
    name2 = "from_ar_plateau: some AR-reranked pool ≥ AR beam 5 SacreBLEU"
    out = []
    if greedy and default:
        gap = default["bleu"] - greedy["bleu"]
        out.append({"name": name1, "met": gap >= -GAP_GREEDY, "value": gap,
                    "shown": f"{default['bleu']:.2f} vs {greedy['bleu']:.2f} ({gap:+.2f})"})
    else:
        out.append({"name": name1, "met": None, "value": None, "shown": "–"})
    if beam and pools:
        key, best = max(pools.items(), key=lambda kr: kr[1]["bleu"])
        gap = best["bleu"] - beam["bleu"]
        out.append({"name": name2, "met": gap >= 0, "value": gap,
                    "shown": f"{key}: {best['bleu']:.2f} vs {beam['bleu']:.2f} ({gap:+.2f})"})
    else:
        out.append({"name": name2, "met": None, "value": None, "shown": "–"})
    return out


def curves_plot(results: Dict, directory: Path, prefix: str, plt) -> Dict[str, str]:
    """Left: validation BLEU against updates of the AR model and the Difformer; right: the AR
    model's best validation BLEU minus the Difformer's, against the Difformer's updates."""
    training = results.get(SECTION, {}).get("training", {})
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
        ax2.axhline(GAP_GREEDY, color="grey", linestyle=":", label=f"target gap {GAP_GREEDY:g}")
        ax2.legend(fontsize=8)
    ax1.set_xlabel("updates")
    ax1.set_ylabel("validation BLEU (--eval-bleu)")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("Difformer updates")
    ax2.set_ylabel("AR best validation BLEU − Difformer's")
    fig.suptitle("from_ar_plateau: learning curves on Multi30k valid")
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    fig.savefig(directory / "from_ar_plateau_curves.png", dpi=120)
    plt.close(fig)
    return {"from_ar_plateau_curves": f"{prefix}/from_ar_plateau_curves.png"}
