"""The names and number formats the report's tables share."""

from typing import List

from ..parts.from_ar import TECHNIQUES

SYSTEM_NAMES = {"ar": "AR Transformer", "cmlm": "CMLM", "difformer": "Difformer"}
ARM_LABELS = {"scratch_refs": "scratch, references", "scratch_kd": "scratch, distilled",
              "ar_init_refs": "AR-initialised, references", "ar_init_kd": "AR-initialised, distilled",
              **{f"ar_init_kd_{name}": f"AR-initialised, distilled, {name}" for name in TECHNIQUES}}
DECODING_LABELS = {"default": "default 1×1", "3x2_rerank": "default 3×2, AR reranks"}
BASELINE_LABELS = {"ar_greedy": "AR Transformer, greedy", "ar_beam5": "AR Transformer, beam 5"}


def fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def fixed(value, digits=2):
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(a, b, digits=2):
    return f"{a / b:.{digits}f}×" if a is not None and b else "–"


def table(header: List[str], rows: List[List]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
