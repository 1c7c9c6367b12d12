"""The report of the fewer_calls part: its section, its targets and its plot."""

from typing import Dict, List

from ..parts.fewer_calls import ROUNDS, TEACHER_CALLS
from .tables import fixed, table

SECTION = "fewer_calls"
#: the targets: a 2-call student ≥ its 4-call teacher − MARGIN SacreBLEU (the 1-call one: stretch)
MARGIN = 0.5


def _label(key, record):
    if key.startswith("continued_c"):
        return (f"control: the teacher trained on without distillation, {record['calls']} "
                f"call{'s' * (record['calls'] > 1)} ({record.get('flags', '')})")
    if key.startswith("teacher_c"):
        return f"teacher, {record['calls']} call{'s' * (record['calls'] > 1)} ({record.get('flags', '')})"
    name = key[len("student_"):]
    teacher, _, sampler = ROUNDS.get(name, ("?", None, "?"))
    return (f"student {name} ({teacher} → {record['calls']} call{'s' * (record['calls'] > 1)}, {sampler}), its "
            f"default decoding")


def rows(records: Dict, summary: Dict) -> List[List[str]]:
    """A row per system at seed 1, with the mean and range over its seeds where it has several."""
    out = []
    order = lambda kr: (kr[1]["student"], kr[0].startswith("continued"), -kr[1]["calls"], kr[0])  # noqa: E731
    for key, record in sorted(records.items(), key=order):
        if "_seed" in key:
            continue
        seeds = summary.get(key, {})
        spread = (f"{fixed(seeds['bleu_mean'])} ({fixed(seeds['bleu_min'])}–{fixed(seeds['bleu_max'])})"
                  if seeds.get("seeds", 1) > 1 else "–")
        out.append([_label(key, record), str(record["calls"]), fixed(record.get("updates"), 0), fixed(record["bleu"]),
                    spread, fixed(record.get("length_ratio"), 3), fixed(record.get("exact_length"), 3),
                    fixed(record.get("sentences_per_s"), 1)])
    return out


HEADER = ["system", "calls", "updates", "SacreBLEU (seed 1)", "mean (min–max) over 3 seeds", "length ratio",
          "exact length", "sent/s batch 100"]


def section(results: Dict, plots: Dict[str, str]) -> str:
    part = results.get(SECTION, {})
    title = "## Fewer denoiser calls: decoding with fewer steps and step distillation\n\n"
    if not part.get("records"):
        return title + "Not measured yet (`python -m benchmarks --part fewer_calls`, after `make quickstart`).\n"
    setup = part.get("setup", {})
    text = (title + f"**Machine:** {part.get('machine', {}).get('description', 'unknown')} (this part's own run).\n\n"
            f"The quickstart's AR-initialised Difformer on distilled data ({setup.get('teacher_updates')} updates) is the "
            f"teacher. Decoded with fewer steps, each number of calls takes the sampler and spacing that score best on "
            f"the validation set; students are step-distilled ({setup.get('student_updates')} updates per round, "
            f"{', '.join(f'{k} {v}' for k, v in (setup.get('student_options') or {}).items())}) and decoded with their "
            f"own default decoding. The control trains the teacher on for as many updates with the same "
            f"optimisation and its own objective, and decodes it as the teacher: a student is measured against "
            f"it too, to tell distillation from the extra updates. The updates are each run's own (the control's and "
            f"a round's on top of its teacher's). test2016, batch 100, fairseq-generate:\n\n"
            + table(HEADER, rows(part["records"], part.get("summary", {}))) + "\n")
    if "fewer_calls" in plots:
        text += f"![SacreBLEU against denoiser calls]({plots['fewer_calls']})\n"
    return text


def origin(round_name):
    """The 4-call model a round's chain of teachers starts from: ``teacher`` or ``continued``."""
    while round_name in ROUNDS:
        round_name = ROUNDS[round_name][0]
    return round_name


def targets(results: Dict) -> List[Dict]:
    """A 2-call (and, the stretch, a 1-call) student against the 4-call model its chain of teachers
    starts from (mean over seeds); the best such student counts."""
    summary = results.get(SECTION, {}).get("summary", {})
    out = []
    for calls, stretch in ((2, ""), (1, " (stretch)")):
        name = f"fewer_calls: a {calls}-call student ≥ its {TEACHER_CALLS}-call teacher − {MARGIN:g} SacreBLEU{stretch}"
        gaps = []
        for key, s in summary.items():
            reference = summary.get(f"{origin(key[len('student_'):])}_c{TEACHER_CALLS}")
            if s["student"] and s["calls"] == calls and reference:
                gaps.append((s["bleu_mean"] - reference["bleu_mean"], key, s, reference))
        if not gaps:
            out.append({"name": name, "met": None, "value": None, "shown": "–"})
            continue
        gap, key, best, reference = max(gaps, key=lambda g: g[0])
        teacher = origin(key[len("student_"):])
        out.append({"name": name, "met": gap >= -MARGIN, "value": gap,
                    "shown": f"{key}: {best['bleu_mean']:.2f} vs {teacher} {reference['bleu_mean']:.2f} ({gap:+.2f})"})
    return out


def plot(results: Dict, plt):
    """SacreBLEU (mean over seeds) against calls: the teacher with fewer steps, and each student."""
    summary = results.get(SECTION, {}).get("summary", {})
    if not summary:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    lines = (("teacher_c", "teacher, fewer decoding steps", "k"),
             ("continued_c", "control: teacher trained on, fewer steps", "tab:gray"))
    for prefix, label, colour in lines:
        points = sorted((s["calls"], s["bleu_mean"], s["bleu_min"], s["bleu_max"]) for key, s in summary.items()
                        if key.startswith(prefix))
        if points:
            ax.errorbar([p[0] for p in points], [p[1] for p in points],
                        yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
                        marker="o", color=colour, capsize=3, label=label)
    for key, s in summary.items():
        if s["student"]:
            ax.errorbar([s["calls"]], [s["bleu_mean"]], yerr=[[s["bleu_mean"] - s["bleu_min"]],
                                                              [s["bleu_max"] - s["bleu_mean"]]],
                        marker="s", linestyle="none", capsize=3, label=key.replace("_", " "))
    ax.set_xlabel("denoiser calls")
    ax.set_ylabel("SacreBLEU, test2016 (mean over seeds)")
    ax.legend(fontsize=8)
    fig.suptitle("fewer_calls: quality against denoiser calls")
    return fig
