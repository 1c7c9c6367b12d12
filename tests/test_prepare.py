"""difformer-prepare on a few hundred lines of the real Multi30k and AESLC data."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from difformer_cli import prepare as prep

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MULTI30K_ARGS = ["--source-lang", "de", "--target-lang", "en", "--lowercase", "--bpe-merges", "200"]


def head(source: Path, target: Path, n):
    """Copy the first n lines of source to target."""
    lines = source.read_text(encoding="utf-8").splitlines()[:n]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def console(*args):
    """Run difformer-prepare as a user would (the console script, else the module)."""
    script = shutil.which("difformer-prepare")
    command = [script] if script else [sys.executable, "-m", "difformer_cli.prepare"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True)


def run_main(capsys, *args):
    """Run main() in this process; returns (exit code, stdout, stderr)."""
    try:
        prep.main(args)
        code = 0
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def multi30k(tmp_path_factory):
    """300 training and 40 validation pairs of raw Multi30k."""
    folder = tmp_path_factory.mktemp("multi30k_raw")
    for lang in ("de", "en"):
        head(DATA / "multi30k" / f"train.raw.{lang}", folder / f"train.{lang}", 300)
        head(DATA / "multi30k" / f"val.raw.{lang}", folder / f"valid.{lang}", 40)
    return folder


@pytest.fixture(scope="module")
def prepared(multi30k, tmp_path_factory):
    """The Multi30k subset prepared with lowercasing and 200 BPE merges."""
    dest = tmp_path_factory.mktemp("prepared") / "data"
    options = prep.parse_args([*MULTI30K_ARGS, "--trainpref", multi30k / "train",
                               "--validpref", multi30k / "valid", "--destdir", dest])
    assert prep.prepare(options) == dest / "bin"
    return dest


def test_learned_bpe_data_bin(prepared):
    binned = prepared / "bin"
    assert (binned / "dict.de.txt").read_bytes() == (binned / "dict.en.txt").read_bytes()
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["counts"]["train"]["pairs"] == 300 and manifest["counts"]["valid"]["pairs"] == 40
    assert manifest["options"]["lowercase"] and manifest["options"]["bpe_merges"] == 200
    assert manifest["inputs"]["train"]["source"]["size"] > 0
    log = (prepared / "preprocess.log").read_text()
    for split, n in (("train", 300), ("valid", 40)):
        for lang in ("de", "en"):
            assert re.search(rf"\[{lang}\] \S+/{split}\.{lang}: {n} sents", log)
            assert len((prepared / "bpe" / f"{split}.{lang}").read_text().splitlines()) == n
    assert "@@ " in (prepared / "bpe" / "train.en").read_text()
    tokenised = (prepared / "tok" / "train.en").read_text()
    assert tokenised == tokenised.lower() and " ." in tokenised
    assert not list(prepared.glob(".tmp-*"))


def test_rerun_reuses_and_other_options_are_refused(prepared, multi30k):
    manifest_mtime = (prepared / "manifest.json").stat().st_mtime
    inputs = ["--trainpref", multi30k / "train", "--validpref", multi30k / "valid", "--destdir", prepared]
    start = time.monotonic()
    again = console(*MULTI30K_ARGS, *inputs)
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stdout and "fairseq-preprocess" not in again.stderr
    assert time.monotonic() - start < 30
    assert (prepared / "manifest.json").stat().st_mtime == manifest_mtime

    other = console("--source-lang", "de", "--target-lang", "en", "--bpe-merges", "300", *inputs)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "holds a different dataset" in other.stderr and "lowercase" in other.stderr
    assert "bpe_merges: 200 → 300" in other.stderr and "--destdir" in other.stderr


def test_apply_mode_reproduces_the_dictionary(prepared, multi30k, tmp_path, capsys):
    dest = tmp_path / "applied"
    code, _, err = run_main(capsys, "--source-lang", "de", "--target-lang", "en", "--lowercase",
                            "--trainpref", multi30k / "train", "--bpe-codes", prepared / "codes",
                            "--srcdict", prepared / "bin" / "dict.de.txt", "--destdir", dest)
    assert code == 0, err
    for lang in ("de", "en"):
        assert (dest / "bin" / f"dict.{lang}.txt").read_bytes() == (prepared / "bin" / "dict.de.txt").read_bytes()
        assert (dest / "bpe" / f"train.{lang}").read_text() == (prepared / "bpe" / f"train.{lang}").read_text()
    assert (dest / "codes").read_bytes() == (prepared / "codes").read_bytes()


def test_aeslc_json_lines(tmp_path, capsys):
    train = head(DATA / "aeslc" / "train.jsonl", tmp_path / "train.jsonl", 200)
    valid = head(DATA / "aeslc" / "dev.jsonl", tmp_path / "dev.jsonl", 20)
    dest = tmp_path / "aeslc"
    code, _, err = run_main(capsys, "--train-jsonl", train, "--valid-jsonl", valid, "--source-field", "body",
                            "--target-field", "subject", "--max-source-words", "50", "--bpe-merges", "300",
                            "--workers", "2", "--destdir", dest)
    assert code == 0, err
    assert (dest / "bin" / "dict.src.txt").read_bytes() == (dest / "bin" / "dict.tgt.txt").read_bytes()
    sources = (dest / "tok" / "train.src").read_text().splitlines()
    assert max(len(line.split()) for line in sources) == 50
    counts = json.loads((dest / "manifest.json").read_text())["counts"]
    assert counts["valid"]["pairs"] == 20 and counts["train"]["pairs"] + counts["train"]["dropped_empty"] == 200
    assert (dest / "bin" / "valid.src-tgt.tgt.idx").exists()


def write_lines(path: Path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def bad_lengths(folder: Path):
    write_lines(folder / "t.de", ["ein hund"] * 5)
    write_lines(folder / "t.en", ["a dog"] * 4)
    return ["--source-lang", "de", "--target-lang", "en", "--trainpref", folder / "t"], ["t.de", "5", "t.en", "4"]


def empty_file(folder: Path):
    write_lines(folder / "t.de", ["ein hund"])
    write_lines(folder / "t.en", ["a dog"])
    (folder / "v.en").write_text("")
    write_lines(folder / "v.de", ["ein hund"])
    return ["--source-lang", "de", "--target-lang", "en", "--trainpref", folder / "t", "--validpref",
            folder / "v"], ["v.en", "empty"]


def bad_json(folder: Path):
    write_lines(folder / "t.jsonl", ['{"body": "hi", "subject": "x"}', '{"body": "hi", subject}'])
    return ["--train-jsonl", folder / "t.jsonl", "--source-field", "body", "--target-field", "subject"], \
        ["t.jsonl:2", "not a JSON line"]


def missing_field(folder: Path):
    write_lines(folder / "t.jsonl", ['{"body": "hi", "subject": "x"}'] * 2 + ['{"id": 3, "body": "hi"}'])
    return ["--train-jsonl", folder / "t.jsonl", "--source-field", "body", "--target-field", "subject"], \
        ["t.jsonl:3", "'subject'"]


def missing_codes(folder: Path):
    write_lines(folder / "t.de", ["ein hund"])
    write_lines(folder / "t.en", ["a dog"])
    return ["--source-lang", "de", "--target-lang", "en", "--trainpref", folder / "t", "--bpe-codes",
            folder / "nowhere.codes"], ["nowhere.codes", "no such file"]


def malformed_dictionary(folder: Path):
    write_lines(folder / "t.de", ["ein hund"])
    write_lines(folder / "t.en", ["a dog"])
    write_lines(folder / "codes", ["#version: 0.2", "e i", "h u"])
    write_lines(folder / "dict.txt", ["hund 3", "dog three"])
    return ["--source-lang", "de", "--target-lang", "en", "--trainpref", folder / "t", "--bpe-codes",
            folder / "codes", "--srcdict", folder / "dict.txt"], ["dict.txt:2", "<count>"]


@pytest.mark.parametrize("case", [bad_lengths, empty_file, bad_json, missing_field, missing_codes,
                                  malformed_dictionary])
def test_bad_input_is_rejected_with_file_and_line(case, tmp_path, capsys):
    args, expected = case(tmp_path)
    code, _, err = run_main(capsys, *args, "--destdir", tmp_path / "out")
    assert code == 2
    assert err.startswith("difformer-prepare: error: ") and "Traceback" not in err
    for text in expected:
        assert text in err
    assert not (tmp_path / "out" / "manifest.json").exists() and not (tmp_path / "out" / "bin").exists()


def test_failed_preprocess_leaves_nothing_finished(multi30k, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "fakebin" / "fairseq-preprocess"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'ValueError: Incorrect dictionary format' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    dest = tmp_path / "out"
    code, _, err = run_main(capsys, *MULTI30K_ARGS, "--trainpref", multi30k / "train", "--destdir", dest)
    assert code == 2 and "fairseq-preprocess failed (exit 1)" in err
    assert "Incorrect dictionary format" in err and "Traceback" not in err
    assert not (dest / "manifest.json").exists() and not (dest / "bin").exists()
    assert not list(dest.glob(".tmp-*"))


def test_interrupted_run_keeps_nothing_then_starts_over(multi30k, tmp_path, monkeypatch):
    dest = tmp_path / "out"
    options = prep.parse_args([*MULTI30K_ARGS, "--trainpref", multi30k / "train", "--destdir", dest])
    move = prep.move_into_place

    def interrupted_move(source, target):
        if target.name == "bin":
            raise KeyboardInterrupt
        move(source, target)

    monkeypatch.setattr(prep, "move_into_place", interrupted_move)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(options)
    assert (dest / "tok").exists()  # moved before the interruption, but nothing claims completion
    assert not (dest / "manifest.json").exists() and not (dest / "bin").exists()
    assert not list(dest.glob(".tmp-*"))

    monkeypatch.undo()
    assert prep.prepare(options) == dest / "bin"
    assert (dest / "manifest.json").exists() and (dest / "bin" / "train.de-en.en.bin").exists()
