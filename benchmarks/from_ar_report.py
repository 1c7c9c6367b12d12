"""The from_ar part in the benchmark report: its table, its targets and its learning curves."""

from pathlib import Path
from typing import Dict, List

from benchmarks.from_ar import DECODINGS, TECHNIQUES, arm_names

ARM_LABELS = {"scratch_refs": "scratch, references", "scratch_kd": "scratch, distilled",
              "ar_init_refs": "AR-initialised, references", "ar_init_kd": "AR-initialised, distilled",
              **{f"ar_init_kd_{name}": f"AR-initialised, distilled, {name}" for name in TECHNIQUES}}
DECODING_LABELS = {"default": "default 1×1", "3x2_rerank": "default 3×2, AR reranks"}
BASELINE_LABELS = {"ar_greedy": "AR Transformer, greedy", "ar_beam5": "AR Transformer, beam 5"}
#: the goal: the best AR-initialised default decoding within 2 BLEU of AR greedy at ≥ 1.5× its
#: speed (batch 100), and its 3×2 reranked decoding within 1 BLEU of AR beam 5
GAP_GREEDY, SPEED_GREEDY, GAP_BEAM = 2.0, 1.5, 1.0


def _f(value, digits=2):
    return "–" if value is None else f"{value:,.{digits}f}"


def targets(results: Dict) -> List[Dict]:
    records = results.get("from_ar", {}).get("records", {})
    greedy, beam = records.get("ar_greedy"), records.get("ar_beam5")
    arms = [arm for arm in arm_names() if arm.startswith("ar_init")]
    default = [(records[f"{a}_default"], a) for a in arms if f"{a}_default" in records]
    reranked = [(records[f"{a}_3x2_rerank"], a) for a in arms if f"{a}_3x2_rerank" in records]
    name1 = (f"from_ar: best AR-initialised default decoding ≥ AR greedy SacreBLEU − {GAP_GREEDY:g} at "
             f"≥ {SPEED_GREEDY:g}× its sentences/s (batch 100)")
    name2 = f"from_ar: best AR-initialised 3×2 AR-reranked decoding ≥ AR beam 5 SacreBLEU − {GAP_BEAM:g}"
    out = []
    if default and greedy:
        record, arm = max(default, key=lambda ra: ra[0]["bleu"])
        ratio = record["sentences_per_s"] / greedy["sentences_per_s"]
        met = record["bleu"] >= greedy["bleu"] - GAP_GREEDY and ratio >= SPEED_GREEDY
        out.append({"name": name1, "met": met, "value": record["bleu"] - greedy["bleu"],
                    "shown": f"{arm}: {record['bleu']:.2f} vs {greedy['bleu']:.2f} "
                             f"({record['bleu'] - greedy['bleu']:+.2f}) at {ratio:.2f}×"})
    else:
        out.append({"name": name1, "met": None, "value": None, "shown": "–"})
    if reranked and beam:
        record, arm = max(reranked, key=lambda ra: ra[0]["bleu"])
        out.append({"name": name2, "met": record["bleu"] >= beam["bleu"] - GAP_BEAM,
                    "value": record["bleu"] - beam["bleu"],
                    "shown": f"{arm}: {record['bleu']:.2f} vs {beam['bleu']:.2f} ({record['bleu'] - beam['bleu']:+.2f})"})
    else:
        out.append({"name": name2, "met": None, "value": None, "shown": "–"})
    return out


def section(results: Dict, plots: Dict[str, str]) -> str:
    part = results.get("from_ar", {})
    title = "## From your AR Transformer: initialisation, distillation and reranking from one checkpoint\n\n"
    if not part.get("records"):
        return title + "Not measured yet (`--part from_ar`).\n"
    records, training = part["records"], part.get("training", {})
    budget = part.get("budget", {})
    budget_text = (f"{budget['updates']:,} updates" if "updates" in budget else f"{budget.get('minutes')} minutes")
    ar = part.get("ar", {})
    distill = part.get("distillation", {})
    rows = []
    for key, label in BASELINE_LABELS.items():
        r = records.get(key)
        if r:
            rows.append([label, _f(ar.get("updates"), 0), _f(r["bleu"]), _f(r["tok_bleu"]), _f(r["length_ratio"], 3),
                         _f(r["sentences_per_s_batch100"], 1), _f(r.get("sentences_per_s_batch1"), 1), "–", "–"])
    greedy, beam = records.get("ar_greedy"), records.get("ar_beam5")
    for arm in arm_names():
        for decoding in DECODINGS:
            r = records.get(f"{arm}_{decoding}")
            if not r:
                continue
            versus = []
            for base in (greedy, beam):
                versus.append("–" if not base else
                              f"{r['bleu'] - base['bleu']:+.2f}, {r['sentences_per_s_batch100'] / base['sentences_per_s_batch100']:.2f}×"
                              f" / {r['sentences_per_s_batch1'] / base['sentences_per_s_batch1']:.2f}×")
            rows.append([f"Difformer, {ARM_LABELS[arm]}, {DECODING_LABELS[decoding]}",
                         _f(training.get(arm, {}).get("updates"), 0), _f(r["bleu"]), _f(r["tok_bleu"]),
                         _f(r["length_ratio"], 3), _f(r["sentences_per_s_batch100"], 1),
                         _f(r.get("sentences_per_s_batch1"), 1), *versus])
    header = ["system", "updates", "SacreBLEU", "tok. BLEU", "length ratio", "sent/s batch 100",
              "sent/s batch 1", "vs AR greedy (BLEU, speed b100 / b1)", "vs AR beam 5 (BLEU, speed b100 / b1)"]
    table = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    machine = part.get("machine", {}).get("description", "unknown")
    signature = (greedy or {}).get("signature")
    text = (title +
            f"**Machine:** {machine} (this part's own run; compare its figures with each other only).\n\n"
            f"One AR Transformer (the benchmark's AR recipe, {budget_text}) is the initialisation of the "
            f"AR-initialised arms (`--init-from-ar`), the teacher of the distilled arms (the training set "
            f"translated with beam 5 by `difformer-distill`: {_f(distill.get('minutes'))} min, not counted in "
            f"the arms' budgets) and the reranker of every 3×2 decoding. Each Difformer arm trains with the "
            f"benchmark's Difformer recipe for {budget_text}. All rows decode test2016 in this one run, "
            f"each with no training running beside it"
            + (f"; SacreBLEU signature `{signature}`" if signature else "") + ".\n\n"
            + "\n".join(table) + "\n")
    tried = [f"- `{name}`: {TECHNIQUES[name][0]} (`{' '.join(TECHNIQUES[name][1])}`)" for name in TECHNIQUES
             if f"ar_init_kd_{name}" in training]
    if tried:
        text += "\nTechniques, each one change to the AR-initialised arm on distilled data:\n" + "\n".join(tried) + "\n"
    text += equal_budget_section(part.get("equal_budget", {}))
    if "from_ar_curves" in plots:
        text += f"\n![validation BLEU and loss of each arm against updates]({plots['from_ar_curves']})\n"
    notes = [f"{ARM_LABELS.get(arm, arm)}: {t['curve_note']}" for arm, t in training.items() if t.get("curve_note")]
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    return text


def equal_budget_section(equal: Dict) -> str:
    """One wall-clock budget spent two ways: AR + distillation + AR-initialised Difformer against
    a Difformer from scratch for all of it."""
    setup, records = equal.get("setup"), equal.get("records", {})
    if not setup or not records:
        return ""
    labels = {"ar_greedy": f"AR Transformer ({setup['ar_minutes']:g} min, {setup['ar_updates']:,} updates), greedy",
              "ar_init_kd_default": f"Difformer, AR-initialised, distilled ({setup['difformer_minutes']:g} min, "
                                    f"{setup['ar_init_kd_updates']:,} updates), default 1×1",
              "ar_init_kd_3x2_rerank": "the same, 3×2 AR-reranked",
              "scratch_refs_default": f"Difformer from scratch, references ({setup['total_minutes']:g} min, "
                                      f"{setup['scratch_refs_updates']:,} updates), default 1×1"}
    rows = [f"| {label} | {_f(records[key]['bleu'])} | {_f(records[key]['length_ratio'], 3)} | "
            f"{_f(records[key]['sentences_per_s_batch100'], 1)} |" for key, label in labels.items() if key in records]
    text = (f"\n### One budget of {setup['total_minutes']:g} minutes, spent two ways\n\n"
            f"AR model {setup['ar_minutes']:g} min + distillation {_f(setup['distill_minutes'])} min + "
            f"AR-initialised Difformer on its translations {setup['difformer_minutes']:g} min, against a Difformer "
            f"from scratch on the references for all {setup['total_minutes']:g} min (wall-clock budgets, "
            f"test2016, batch 100).\n\n| system | SacreBLEU | length ratio | sent/s batch 100 |\n|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    student, scratch = records.get("ar_init_kd_default"), records.get("scratch_refs_default")
    if student and scratch:
        difference = student["bleu"] - scratch["bleu"]
        text += (f"\nDefault decoding: the AR route {'wins' if difference > 0 else 'loses'} by "
                 f"{abs(difference):.2f} BLEU at equal total minutes.\n")
    return text


def plot(results: Dict, directory: Path, prefix: str, plt) -> Dict[str, str]:
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
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    fig.savefig(directory / "from_ar_curves.png", dpi=120)
    plt.close(fig)
    return {"from_ar_curves": f"{prefix}/from_ar_curves.png"}
