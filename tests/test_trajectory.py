"""difformer-trajectory: the steps against a real fairseq-generate / fairseq-interactive run, the
picture, the GIF and the page, the word grid, and one-line errors."""

import random
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from conftest import USER_DIR, run_cli
from fairseq.data.data_utils import post_process
from PIL import Image

from difformer_cli import trajectory_render
from difformer_cli.trajectory import main
from difformer_cli.trajectory_grid import (
    Cell, Trajectory, column_widths, format_table, grid_rows, word_cells,
)

# Repeats kept: the last step's words are then the H- line word for word.
DECODING = ["--decoding-steps", "6", "--decoding-early-stopping", "2", "--length-beam-size", "2",
            "--noise-beam-size", "2", "--seed", "3", "--cpu", "--decoding-keep-repeats"]
STEPS_TAKEN = 4  # 6 steps, the last 2 skipped


def remove_bpe(text):
    return post_process(text, "subword_nmt")


def table_blocks(stdout):
    """{sentence id: (the words of each step's row, changed marks per row, the H- line)}."""
    blocks = {}
    for block in stdout.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#")]
        sentence_id = int(re.match(r"S-(\d+)\t", lines[0]).group(1))
        step_lines = lines[2:-1]  # after the S- line and the header, before the H- line
        cells = [line.split(" | ", 1)[1].split() if " | " in line else [] for line in step_lines]
        words = [" ".join(c.rstrip("*") for c in row if c.rstrip("*")) for row in cells]
        marks = [sum(c.endswith("*") for c in row) for row in cells]
        blocks[sentence_id] = (words, marks, lines[-1])
    return blocks


def generate_output(stdout):
    """fairseq-generate's ids in print order, and per id its H- line, E- steps and I- count."""
    order = [int(i) for i in re.findall(r"^S-(\d+)\t", stdout, re.M)]
    hyps = {int(i): line for line, i in re.findall(r"^(H-(\d+)\t.*)$", stdout, re.M)}
    steps = {}
    for i, step, text in re.findall(r"^E-(\d+)_(\d+)\t(.*)$", stdout, re.M):
        steps.setdefault(int(i), []).append(text)
    counts = {int(i): int(n) for i, n in re.findall(r"^I-(\d+)\t(\d+)$", stdout, re.M)}
    return order, hyps, steps, counts


@pytest.fixture(scope="module")
def generated(databin, difformer_checkpoint):
    """One real fairseq-generate --retain-iter-history run over the 40 test sentences."""
    out = run_cli(
        "fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--path", difformer_checkpoint, "--gen-subset", "test", "--batch-size", "16",
        "--remove-bpe", "--retain-iter-history", "--print-step", *DECODING,
    ).stdout
    return generate_output(out)


def test_steps_and_hypothesis_are_fairseq_generates(databin, difformer_checkpoint, generated, tmp_path, capsys):
    order, hyps, steps, counts = generated
    # The first and the last sentence fairseq-generate prints: the last is in its third batch,
    # so the noise drawn for the two batches before it must be drawn again.
    ids = [order[0], order[-1]]
    png, gif, page = tmp_path / "t.png", tmp_path / "t.gif", tmp_path / "t.html"
    main([str(databin), "--path", str(difformer_checkpoint), "--batch-size", "16", "--remove-bpe",
          *DECODING, "--sentence-ids", ",".join(map(str, ids)),
          "--output", str(png), "--gif", str(gif), "--html", str(page)])
    blocks = table_blocks(capsys.readouterr().out)
    assert sorted(blocks) == sorted(ids)
    for i in ids:
        words, marks, h_line = blocks[i]
        assert len(words) == counts[i] == STEPS_TAKEN
        assert words == [remove_bpe(e) for e in steps[i]]
        assert words[-1] == hyps[i].split("\t")[2]
        assert h_line == hyps[i]
        assert marks[0] == 0 and sum(marks) > 0  # a barely trained model changes its words

    image = Image.open(png)
    assert image.format == "PNG" and image.mode == "RGBA"
    # a row per step, each ROW_HEIGHT high at 150 dpi, below the titles and headers
    rows = 2 * (1.5 + 1 + STEPS_TAKEN) + 1 + 2 + 1
    assert image.size[1] == round(rows * trajectory_render.ROW_HEIGHT * 150)
    colours = {c[:3] for _, c in image.getcolors(1 << 20)}
    assert (255, 209, 102) in colours and (230, 244, 228) in colours  # changed words, the hypothesis row

    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == STEPS_TAKEN
    frames = []
    for k in range(animation.n_frames):
        animation.seek(k)
        frames.append(animation.convert("RGB").tobytes())
    assert len(set(frames)) == STEPS_TAKEN  # each frame shows one more row

    tables = PageTables()
    tables.feed(page.read_text(encoding="utf-8"))
    assert [len(rows) for rows in tables.rows] == [STEPS_TAKEN, STEPS_TAKEN]
    for rows, i in zip(tables.rows, ids):
        assert [" ".join(w for w, _ in row if w) for row in rows] == blocks[i][0]
        assert [sum(changed for _, changed in row) for row in rows] == blocks[i][1]


class PageTables(HTMLParser):
    """The step rows of the page's tables: per row, (text, changed) of each word cell."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell = [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.rows.append([])
        elif tag == "tr" and "data-step" in attrs:
            self.row = []
            self.rows[-1].append(self.row)
        elif tag == "td" and self.row is not None and attrs.get("class") != "label":
            self.cell = ["", attrs.get("class") == "changed"]

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.row.append(tuple(self.cell))
            self.cell = None
        elif tag == "tr":
            self.row = None


def test_num_sentences_takes_the_first_ids(databin, difformer_checkpoint, generated, capsys):
    _, hyps, _, _ = generated
    main([str(databin), "--path", str(difformer_checkpoint), "--batch-size", "16", "--remove-bpe",
          *DECODING, "--num-sentences", "2"])
    blocks = table_blocks(capsys.readouterr().out)
    assert {i: block[2] for i, block in blocks.items()} == {0: hyps[0], 1: hyps[1]}


def test_input_lines_decode_as_fairseq_interactive(databin, difformer_checkpoint, multi30k_bpe, tmp_path, capsys):
    bpe_lines = (multi30k_bpe / "test.de").read_text().splitlines()[:3]
    (tmp_path / "bpe.de").write_text("\n".join(bpe_lines) + "\n")
    tokenised = (multi30k_bpe / "test.tok.de").read_text().splitlines()[:3]
    (tmp_path / "raw.de").write_text("\n".join(tokenised) + "\n")
    common = [str(databin), "--path", str(difformer_checkpoint), "--batch-size", "2", *DECODING]
    interactive = run_cli(
        "fairseq-interactive", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--path", difformer_checkpoint, "--buffer-size", "3", "--batch-size", "2",
        "--source-lang", "de", "--target-lang", "en", *DECODING, input="\n".join(bpe_lines) + "\n",
    ).stdout
    expected = {int(i): text for i, text in re.findall(r"^H-(\d+)\t\S+\t(.*)$", interactive, re.M)}
    assert len(expected) == 3

    main([*common, "--input", str(tmp_path / "bpe.de")])
    blocks = table_blocks(capsys.readouterr().out)
    assert {i: words[-1] for i, (words, _, _) in blocks.items()} == expected
    # Raw (tokenised, no BPE) lines with fairseq's subword-nmt encoder give the same steps.
    main([*common, "--input", str(tmp_path / "raw.de"), "--bpe", "subword_nmt",
          "--bpe-codes", str(multi30k_bpe / "codes")])
    assert table_blocks(capsys.readouterr().out) == blocks


@pytest.mark.parametrize("extra, message", [
    (["--path", "missing.pt"], "--path missing.pt: no such file"),
    (["--sentence-ids", "3,40"], "sentence 40 is out of range: the test split of "),
    (["--num-sentences", "41"], "sentence 40 is out of range"),
    (["--gen-subset", "valid2"], "--gen-subset valid2: "),
    (["--input", "missing.de"], "--input missing.de: no such file"),
    (["--decoding-early-stopping", "6"], "--decoding-early-stopping (6) must be in [0, --decoding-steps)"),
    (["--decoding-stepz", "3"], "unrecognized arguments: --decoding-stepz 3"),
    (["--output", "t.jpg"], "--output t.jpg: the file name must end in .png"),
    (["--sentence-ids", "3,x"], "is not a comma list of sentence ids"),
    (["--task", "translation"], "--task translation: the trajectory is drawn for Difformer models"),
])
def test_bad_input_is_one_line(databin, difformer_checkpoint, capsys, extra, message):
    path = [] if "--path" in extra else ["--path", str(difformer_checkpoint)]
    with pytest.raises(SystemExit) as exit:
        main([str(databin), *path, "--decoding-steps", "6", *extra])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("difformer-trajectory: error: ") and message in err[0], err


def test_missing_data_bin_and_unreadable_checkpoint(databin, tmp_path, capsys):
    not_a_checkpoint = tmp_path / "model.pt"
    not_a_checkpoint.write_text("not a checkpoint")
    for argv, message in [
        ([str(tmp_path / "nowhere"), "--path", str(not_a_checkpoint)], "nowhere: no such directory"),
        ([str(tmp_path), "--path", str(not_a_checkpoint)], f"{tmp_path} holds no fairseq-preprocess output"),
        ([str(databin), "--path", str(not_a_checkpoint)], f"cannot load --path {not_a_checkpoint}: "),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_png_and_gif_without_matplotlib_say_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(SystemExit):
        main(["data-bin", "--path", "m.pt", "--gif", "t.gif"])
    assert capsys.readouterr().err == (
        "difformer-trajectory: error: --gif draw with matplotlib, which is not installed: "
        "pip install 'fairseq-difformer[viz]' (or pip install matplotlib)\n"
    )


def test_error_in_a_real_process_is_one_line_and_help_imports_nothing_heavy(databin, difformer_checkpoint):
    proc = subprocess.run(
        [sys.executable, "-m", "difformer_cli.trajectory", str(databin), "--path",
         str(difformer_checkpoint), "--sentence-ids", "99"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"difformer-trajectory: error: sentence 99 is out of range: the test split of "
                      f"{databin} has 40 sentences (ids 0 to 39)"]


# ---------------------------------------------------------------- the word grid

SCHEMES = {
    "subword_nmt": ["a", "b@@", "c", "de@@", ""],
    "@@": ["a", "b@@", "c", ""],
    "sentencepiece": ["\u2581a", "b", "\u2581cd", "e", "\u2581", ""],
    "letter": ["a", "b", "|", ""],
    "_EOW": ["a", "b_EOW", "c", ""],
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_words_cover_every_position_once_and_read_as_fairseqs_text(scheme):
    rng = random.Random(scheme)
    for _ in range(300):
        symbols = [rng.choice(SCHEMES[scheme]) for _ in range(rng.randint(0, 8))]
        cells = word_cells(symbols, lambda text: post_process(text, scheme))
        assert [p for cell in cells for p in range(cell.start, cell.end)] == list(range(len(symbols)))
        assert not any(" " in cell.text for cell in cells), symbols  # a cell is one word
        text = " ".join(cell.text for cell in cells if cell.text)
        full = post_process(" ".join(s for s in symbols if s), scheme)
        # fairseq keeps a double space where two separators meet; words are what count
        assert text.split() == full.split(), symbols
        if scheme == "subword_nmt":
            assert text == full


def test_changed_words_and_widths():
    steps = [["a", "b@@", "c", "x"], ["a", "d@@", "c", ""], ["e", "d@@", "c", ""]]
    trajectory = Trajectory(7, "ein satz", [9, 5, 1], steps, "e dc", -1.5)
    rows = grid_rows(trajectory, remove_bpe)
    assert [[(c.start, c.end, c.text, c.changed) for c in row] for row in rows] == [
        [(0, 1, "a", False), (1, 3, "bc", False), (3, 4, "x", False)],
        [(0, 1, "a", False), (1, 3, "dc", True), (3, 4, "", True)],
        [(0, 1, "e", True), (1, 3, "dc", False), (3, 4, "", False)],
    ]
    assert grid_rows(trajectory)[1][1] == Cell(1, 2, "d@@", True)  # without --remove-bpe: subwords
    assert column_widths(rows, 4, mark=1) == [2, 1, 1, 2]  # room for "*" after each word; "dc*" fits 2-3
    assert column_widths([[Cell(0, 2, "abcdef")]], 2) == [1, 4]  # a long word widens its last column
    assert format_table(trajectory, rows).splitlines() == [
        "S-7\tein satz",
        "step t | 1  2 3 4",
        "   1 9 | a  bc  x",
        "   2 5 | a  dc* *",
        "   3 1 | e* dc",
        "H-7\t-1.5\te dc",
    ]
