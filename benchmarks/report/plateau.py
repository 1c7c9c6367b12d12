"""The report of the from_ar_plateau part: its section and its targets (its plot is in plots.py)."""

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
