"""The denoising trajectory of a sentence as a grid, and as a text table.

One row per decoding step, one column per target position; a cell is a word (one position, or
the positions of one word once BPE is removed), marked when it differs from the step before.
The last row is the hypothesis, position by position (before the generator collapses runs of one
repeated word). Plain Python: the text table, the picture and the HTML page are
all drawn from these cells.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

GAP = 1  # characters between two columns
CHANGED_MARK = "*"  # the text table's mark for a word that changed since the previous step


@dataclass
class Trajectory:
    """The selected candidate of one sentence at every decoding step.

    ``steps[k][p]`` is the symbol at target position p after step k + 1, as fairseq's dictionary
    writes it, and "" where the model put ``</s>`` (which fairseq's output drops); the final
    position, always ``</s>``, is left out. ``timesteps[k]`` is the training timestep t the
    model was fed at step k + 1. ``hypothesis`` and ``score`` are what fairseq-generate prints on
    the ``H-`` line (the score in base 2)."""

    sentence_id: int
    source: str
    timesteps: List[int]
    steps: List[List[str]]
    hypothesis: str
    score: float


@dataclass
class Cell:
    """A word of one step: target positions [start, end), its text, and whether any of its
    positions holds another symbol than at the previous step."""

    start: int
    end: int
    text: str
    changed: bool = False


def word_cells(symbols: List[str], post_process: Optional[Callable[[str], str]] = None) -> List[Cell]:
    """Group one step's positions into words, covering every position exactly once.

    Without ``post_process`` every position is a word. With it (fairseq's ``--remove-bpe``
    function, e.g. ``post_process(text, "subword_nmt")``), two neighbouring symbols a, b belong
    to one word when ``post_process("a b")`` has no space and neither is a bare separator
    (``post_process`` of it alone is empty); a ``</s>`` position ("") inside a word joins it, one
    between words is an empty word. A word's text is ``post_process`` of its symbols, so the
    non-empty texts joined by spaces are ``post_process`` of the whole step: the ``H-`` text."""
    if post_process is None:
        return [Cell(p, p + 1, symbol) for p, symbol in enumerate(symbols)]
    filled = [p for p, symbol in enumerate(symbols) if symbol]
    groups: List[List[int]] = []
    for p in filled:
        if groups and _same_word(symbols[groups[-1][-1]], symbols[p], post_process):
            groups[-1].append(p)
        else:
            groups.append([p])
    cells, position = [], 0
    for group in groups:
        cells += [Cell(q, q + 1, "") for q in range(position, group[0])]
        text = post_process(" ".join(symbols[q] for q in group))
        cells.append(Cell(group[0], group[-1] + 1, text))
        position = group[-1] + 1
    cells += [Cell(q, q + 1, "") for q in range(position, len(symbols))]
    return cells


def _same_word(left: str, right: str, post_process: Callable[[str], str]) -> bool:
    if not post_process(left) or not post_process(right):
        return False
    return " " not in post_process(f"{left} {right}")


def grid_rows(trajectory: Trajectory, post_process=None) -> List[List[Cell]]:
    """The cells of every step; a cell is changed when a position of it holds another symbol
    than at the previous step (nothing is marked at the first step)."""
    rows = []
    previous = None
    for symbols in trajectory.steps:
        cells = word_cells(symbols, post_process)
        if previous is not None:
            for cell in cells:
                cell.changed = any(symbols[p] != previous[p] for p in range(cell.start, cell.end))
        rows.append(cells)
        previous = symbols
    return rows


def column_widths(rows: List[List[Cell]], num_positions: int, mark: int = 0) -> List[int]:
    """Characters per position column, wide enough for the position number and every cell
    (its text plus ``mark`` characters); a word over several positions widens the last one."""
    widths = [len(str(p + 1)) for p in range(num_positions)]
    cells = sorted((cell for row in rows for cell in row), key=lambda cell: cell.end - cell.start)
    for cell in cells:
        needed = len(cell.text) + (mark if cell.text or cell.changed else 0)
        available = span_width(widths, cell)
        if needed > available:
            widths[cell.end - 1] += needed - available
    return widths


def span_width(widths: List[int], cell: Cell) -> int:
    """Characters a cell covers: its columns and the gaps between them."""
    return sum(widths[cell.start:cell.end]) + GAP * (cell.end - cell.start - 1)


def step_labels(trajectory: Trajectory) -> List[Tuple[str, str]]:
    """``step`` and ``t`` column texts for each row, the header first."""
    return [("step", "t")] + [(str(k + 1), str(t)) for k, t in enumerate(trajectory.timesteps)]


def format_table(trajectory: Trajectory, rows: List[List[Cell]]) -> str:
    """The trajectory as text: the ``S-`` line, a header of positions, one line per step (step,
    timestep t, then the words, changed ones followed by ``*``), and fairseq-generate's ``H-``
    line."""
    num_positions = len(trajectory.steps[0]) if trajectory.steps else 0
    widths = column_widths(rows, num_positions, mark=len(CHANGED_MARK))
    labels = step_labels(trajectory)
    step_width = max(len(step) for step, _ in labels)
    t_width = max(len(t) for _, t in labels)
    header = [Cell(p, p + 1, str(p + 1)) for p in range(num_positions)]
    lines = [f"S-{trajectory.sentence_id}\t{trajectory.source}"]
    for (step, t), cells in zip(labels, [header] + rows):
        words = " ".join(
            (cell.text + (CHANGED_MARK if cell.changed else "")).ljust(span_width(widths, cell))
            for cell in cells
        )
        lines.append(f"{step:>{step_width}} {t:>{t_width}} | {words}".rstrip())
    lines.append(f"H-{trajectory.sentence_id}\t{trajectory.score}\t{trajectory.hypothesis}")
    return "\n".join(lines)
