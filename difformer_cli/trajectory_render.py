"""Drawing denoising trajectories: a PNG grid and an animated GIF (matplotlib, the ``viz``
extra) and a self-contained HTML page (standard library only).

Every sentence is a block: its ``S-`` line, a header of target positions, and one row per step
(step number, timestep t, the words) in which the words that changed since the previous step
are highlighted; the last row, the hypothesis, is in bold. matplotlib is imported inside the
functions that draw, so the HTML page needs nothing beyond Python.
"""

import html
from typing import List

from .trajectory_grid import Cell, Trajectory, column_widths, format_table, step_labels

FONT_SIZE = 10  # points
CHAR_WIDTH = 0.6 * FONT_SIZE / 72  # inches: the advance of DejaVu Sans Mono, 0.6 em
ROW_HEIGHT = 1.9 * FONT_SIZE / 72  # inches
PAD = 1  # characters of padding on each side of a cell's text
MAX_TITLE = 120  # characters of the source sentence shown above a grid

CHANGED = "#ffd166"
UNCHANGED = "#ffffff"
HYPOTHESIS = "#e6f4e4"
HEADER = "#eeeeee"
EDGE = "#b8b8b8"
LEGEND = "highlighted: changed since the previous step; last row (bold): the hypothesis"


def title(trajectory: Trajectory) -> str:
    """The block's first line: the sentence id and its source, cut to MAX_TITLE characters."""
    text = f"S-{trajectory.sentence_id}  {trajectory.source}"
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"


class Block:
    """Where one sentence's grid goes, in character columns (x) and rows (y, downwards)."""

    def __init__(self, trajectory: Trajectory, rows: List[List[Cell]], top: float):
        self.trajectory, self.rows, self.top = trajectory, rows, top
        labels = step_labels(trajectory)
        num_positions = len(trajectory.steps[0]) if trajectory.steps else 0
        widths = [max(len(step) for step, _ in labels), max(len(t) for _, t in labels)]
        widths += column_widths(rows, num_positions)
        self.edges = [0]  # left edge of each column: step, t, then the positions
        for width in widths:
            self.edges.append(self.edges[-1] + width + 2 * PAD)
        self.labels = labels
        self.width = max(self.edges[-1], len(title(trajectory)))
        self.height = 1.5 + 1 + len(rows)  # title, header, steps

    def cell_x(self, cell: Cell):
        """Left edge and width of a word cell (position columns follow the two label columns)."""
        left, right = self.edges[cell.start + 2], self.edges[cell.end + 2]
        return left, right - left


def draw(blocks: List[Block], legend: bool = True):
    """A matplotlib Figure with every block drawn; returns it and, per step k (1-based), the
    artists of the rows of step k in every block (for the animation)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    margin = 1.0
    width = max(block.width for block in blocks) + 2 * margin
    height = sum(block.height for block in blocks) + (len(blocks) - 1) + 2 * margin + (1 if legend else 0)
    fig = Figure(figsize=(width * CHAR_WIDTH, height * ROW_HEIGHT))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-margin, width - margin)
    ax.set_ylim(height - margin, -margin)
    ax.axis("off")
    text_style = dict(family="DejaVu Sans Mono", fontsize=FONT_SIZE, va="center", ha="left")
    steps = {}

    def cell(x, y, w, text, color, bold=False, right=False):
        box = Rectangle((x, y), w, 1, facecolor=color, edgecolor=EDGE, linewidth=0.6)
        ax.add_artist(box)  # not add_patch: the limits are set, and updating them is slow
        style = {**text_style, "ha": "right"} if right else text_style
        label = ax.text(x + w - PAD if right else x + PAD, y + 0.5, text,
                        fontweight="bold" if bold else "normal", **style)
        return [box, label]

    for block in blocks:
        ax.text(0, block.top + 0.6, title(block.trajectory), fontweight="bold", **text_style)
        y = block.top + 1.5
        edges = block.edges
        for column, (left, right) in enumerate(zip(edges, edges[1:])):
            text = block.labels[0][column] if column < 2 else str(column - 1)
            cell(left, y, right - left, text, HEADER, right=column < 2)
        last = len(block.rows) - 1
        for k, cells in enumerate(block.rows):
            y = block.top + 2.5 + k
            final = k == last
            artists = []
            for column, text in enumerate(block.labels[k + 1]):
                artists += cell(edges[column], y, edges[column + 1] - edges[column], text, HEADER, final, right=True)
            for word in cells:
                x, w = block.cell_x(word)
                color = CHANGED if word.changed else HYPOTHESIS if final else UNCHANGED
                artists += cell(x, y, w, word.text, color, final)
            steps.setdefault(k + 1, []).extend(artists)
    if legend:
        ax.text(0, height - 2 * margin - 0.5, LEGEND, color="#555555", **{**text_style, "fontsize": FONT_SIZE - 1})
    return fig, steps


def layout(trajectories: List[Trajectory], rows: List[List[List[Cell]]]) -> List[Block]:
    """One block per sentence, stacked with a blank row between them."""
    blocks, top = [], 0.0
    for trajectory, sentence_rows in zip(trajectories, rows):
        block = Block(trajectory, sentence_rows, top)
        blocks.append(block)
        top += block.height + 1
    return blocks


def _whole_pixels(fig, dpi):
    """Round the figure size to whole pixels at ``dpi`` (every GIF frame must be that size)."""
    w, h = fig.get_size_inches()
    fig.set_size_inches(max(1, round(w * dpi)) / dpi, max(1, round(h * dpi)) / dpi)


def write_png(trajectories, rows, path, dpi=150):
    """Every sentence's grid, all steps, in one PNG."""
    fig, _ = draw(layout(trajectories, rows))
    _whole_pixels(fig, dpi)
    fig.savefig(path, dpi=dpi, format="png", facecolor="white")


def write_gif(trajectories, rows, path, fps=2.0, dpi=100):
    """An animated GIF with one frame per step: frame k shows the rows of steps 1..k."""
    from matplotlib.animation import PillowWriter

    fig, steps = draw(layout(trajectories, rows))
    fig.set_facecolor("white")
    _whole_pixels(fig, dpi)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, path, dpi):
        for k in sorted(steps):
            for step, artists in steps.items():
                for artist in artists:
                    artist.set_visible(step <= k)
            writer.grab_frame()


HTML_STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; font-family: "DejaVu Sans Mono", monospace; margin-bottom: 1.5em; }
td, th { border: 1px solid #b8b8b8; padding: 2px 6px; white-space: pre; }
th, td.label { background: #eeeeee; font-weight: normal; text-align: right; }
td.changed { background: #ffd166; }
tr.hypothesis td { font-weight: bold; }
tr.hypothesis td:not(.label):not(.changed) { background: #e6f4e4; }
.source { font-family: "DejaVu Sans Mono", monospace; font-weight: bold; }
"""

HTML_SCRIPT = """
const slider = document.getElementById("step");
const shown = document.getElementById("shown");
function show() {
  const k = Number(slider.value);
  shown.textContent = k;
  document.querySelectorAll("tr[data-step]").forEach(
    row => { row.style.visibility = Number(row.dataset.step) <= k ? "visible" : "hidden"; });
}
slider.addEventListener("input", show);
show();
"""


def html_cell(cell: Cell) -> str:
    """A word's ``<td>``: spanning its positions, classed ``changed`` when it changed."""
    attributes = ' class="changed"' if cell.changed else ""
    if cell.end - cell.start > 1:
        attributes += f' colspan="{cell.end - cell.start}"'
    return f"<td{attributes}>{html.escape(cell.text)}</td>"


def html_table(trajectory: Trajectory, rows: List[List[Cell]]) -> str:
    """One sentence's grid as an HTML table (a word over several positions spans their columns)."""
    e = html.escape
    labels = step_labels(trajectory)
    num_positions = len(trajectory.steps[0]) if trajectory.steps else 0
    lines = [f'<p class="source">{e(title(trajectory))}</p>', "<table>"]
    positions = "".join(f"<th>{p + 1}</th>" for p in range(num_positions))
    lines.append(f"<tr><th>step</th><th>t</th>{positions}</tr>")
    for k, cells in enumerate(rows):
        step, t = labels[k + 1]
        final = ' class="hypothesis"' if k == len(rows) - 1 else ""
        words = "".join(html_cell(cell) for cell in cells)
        labels_html = f'<td class="label">{step}</td><td class="label">{t}</td>'
        lines.append(f'<tr data-step="{k + 1}"{final}>{labels_html}{words}</tr>')
    lines.append("</table>")
    return "\n".join(lines)


def write_html(trajectories, rows, path):
    """A self-contained page: every sentence's grid, a slider that reveals the steps one by one,
    and the text table in a collapsed section."""
    num_steps = max((len(r) for r in rows), default=0)
    body = "\n".join(html_table(t, r) for t, r in zip(trajectories, rows))
    text = "\n\n".join(format_table(t, r) for t, r in zip(trajectories, rows))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Denoising trajectory</title><style>{HTML_STYLE}</style></head>
<body>
<p><label>steps shown: <input type="range" id="step" min="1" max="{num_steps}" value="{num_steps}">
<span id="shown"></span> of {num_steps}</label> &mdash; {html.escape(LEGEND)}</p>
{body}
<details><summary>text</summary><pre>{html.escape(text)}</pre></details>
<script>{HTML_SCRIPT}</script>
</body>
</html>
"""
    with open(path, "w", encoding="utf-8") as out:
        out.write(page)
