"""difformer-prepare on a few hundred lines of the real Multi30k and AESLC data."""

import json
import os
import shutil
import subprocess
import sys
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


def console(*args, env=None):
    """Run difformer-prepare in a new process: the module these tests import, as ``python -m``."""
    return subprocess.run([sys.executable, "-m", prep.__name__, *map(str, args)], capture_output=True,
                          text=True, env=env)


def fake_tool(folder: Path, name, script):
    """An executable ``folder/name`` running the shell ``script``; returns an environment whose
    PATH finds it first."""
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{script}\n")
    (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def snapshot(folder: Path):
    """{path: (inode, mtime_ns)} of everything under ``folder``, the folder itself included."""
    return {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in [folder, *folder.rglob("*")]}


def sentences(databin: Path, name):
    """Number of sentences in a binarised file of a data-bin, read with fairseq."""
    from fairseq.data import indexed_dataset

    return len(indexed_dataset.MMapIndexedDataset(str(databin / name)))


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
    assert set(manifest["inputs"]) == {"train.de", "train.en", "valid.de", "valid.en"}
    assert len(manifest["hash"]) == 64 and "subword-nmt" in manifest["tools"]
    assert "fairseq-preprocess" in (prepared / "preprocess.log").read_text()
    for split, n in (("train", 300), ("valid", 40)):
        for lang in ("de", "en"):
            assert sentences(binned, f"{split}.de-en.{lang}") == n
            assert len((prepared / "bpe" / f"{split}.{lang}").read_text().splitlines()) == n
    assert "@@ " in (prepared / "bpe" / "train.en").read_text()
    tokenised = (prepared / "tok" / "train.en").read_text()
    assert tokenised == tokenised.lower() and " ." in tokenised
    assert sorted(path.name for path in prepared.parent.iterdir()) == ["data"]  # no build folder left
    umask = os.umask(0o022)
    os.umask(umask)
    assert prepared.stat().st_mode & 0o777 == 0o777 & ~umask  # readable by others as any new folder


def test_rerun_reuses_without_running_the_tools(prepared, multi30k, tmp_path):
    before = snapshot(prepared)
    failing = fake_tool(tmp_path / "fakebin", "fairseq-preprocess", "exit 1")  # fails if it runs
    again = console(*MULTI30K_ARGS, "--trainpref", multi30k / "train", "--validpref", multi30k / "valid",
                    "--destdir", prepared, "--workers", "2", env=failing)  # --workers does not shape the output
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stdout and "fairseq-preprocess" not in again.stderr
    assert snapshot(prepared) == before


def test_a_changed_option_or_input_line_rebuilds(prepared, multi30k, tmp_path, capsys):
    raw, dest = tmp_path / "raw", tmp_path / "data"
    shutil.copytree(multi30k, raw)
    shutil.copytree(prepared, dest)  # a finished build of the same inputs, found by their content
    args = [*MULTI30K_ARGS[:-2], "--trainpref", raw / "train", "--validpref", raw / "valid", "--destdir", dest]

    def rebuilt(merges):
        """Prepare again: whether every file of DESTDIR is new (and the hash changed), and the log."""
        before, hash_before = snapshot(dest), json.loads((dest / "manifest.json").read_text())["hash"]
        code, _, err = run_main(capsys, *args, "--bpe-merges", merges)
        assert code == 0, err
        after, new_hash = snapshot(dest), json.loads((dest / "manifest.json").read_text())["hash"]
        return all(before[path] != after.get(path) for path in before) and new_hash != hash_before, err

    assert rebuilt("200") == (False, "")
    changed, err = rebuilt("150")
    assert changed and "rebuilding" in err and "bpe_merges" in err and "fairseq-preprocess" in err
    assert json.loads((dest / "manifest.json").read_text())["options"]["bpe_merges"] == 150
    lines = (raw / "valid.en").read_text().splitlines()
    (raw / "valid.en").write_text("\n".join(lines[:-1] + ["A zebra crosses the road."]) + "\n")
    changed, err = rebuilt("150")
    assert changed and "valid.en" in err and "train.en" not in err and "valid.de" not in err
    assert (dest / "tok" / "valid.en").read_text().endswith("\na zebra crosses the road .\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "raw"]


def test_other_tool_versions_rebuild_and_a_failed_rebuild_keeps_the_old(prepared, multi30k, tmp_path,
                                                                         monkeypatch, capsys):
    dest = tmp_path / "data"
    shutil.copytree(prepared, dest)
    before = snapshot(dest)
    monkeypatch.setattr(prep.metadata, "version", lambda name: "99.0")
    monkeypatch.setenv("PATH", fake_tool(tmp_path / "fakebin", "fairseq-preprocess", "exit 1")["PATH"])
    code, _, err = run_main(capsys, *MULTI30K_ARGS, "--trainpref", multi30k / "train", "--validpref",
                            multi30k / "valid", "--destdir", dest)
    assert code == 2 and "rebuilding" in err and "fairseq-fixed" in err and "subword-nmt" in err
    assert "fairseq-preprocess failed" in err and snapshot(dest) == before


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
            folder / "codes", "--srcdict", folder / "dict.txt"], ["--srcdict", "dict.txt", "Incorrect dictionary format"]


def malformed_codes(folder: Path):
    write_lines(folder / "t.de", ["ein hund"])
    write_lines(folder / "t.en", ["a dog"])
    write_lines(folder / "codes", ["#version: 0.2", "e i", "h u n"])
    return ["--source-lang", "de", "--target-lang", "en", "--trainpref", folder / "t", "--bpe-codes",
            folder / "codes", "--workers", "2"], ["--bpe-codes", "codes", "line 3", "h u n"]


def foreign_destdir(folder: Path):
    write_lines(folder / "t.de", ["ein hund"])
    write_lines(folder / "t.en", ["a dog"])
    (folder / "out").mkdir()
    write_lines(folder / "out" / "notes.txt", ["not a data-bin"])
    return ["--source-lang", "de", "--target-lang", "en", "--trainpref", folder / "t"], \
        ["--destdir", "not a folder difformer-prepare made", "remove it"]


@pytest.mark.parametrize("case", [bad_lengths, empty_file, bad_json, missing_field, missing_codes,
                                  malformed_dictionary, malformed_codes, foreign_destdir])
def test_bad_input_is_rejected_in_one_line(case, tmp_path, capsys):
    args, expected = case(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, _, err = run_main(capsys, *args, "--destdir", tmp_path / "out")
    assert code == 2
    assert err.startswith("difformer-prepare: error: ") and err.count("\n") == 1
    for text in expected:
        assert text in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, a foreign DESTDIR untouched


@pytest.mark.parametrize("script, expected", [
    ("echo 'ValueError: Incorrect dictionary format' >&2\nexit 1",
     ["fairseq-preprocess failed (exit 1)", "Incorrect dictionary format"]),
    ("exit 0", ["fairseq-preprocess wrote no dict.de.txt and dict.en.txt"]),  # exits 0, writes nothing
])
def test_failed_preprocess_leaves_nothing_finished(script, expected, multi30k, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", fake_tool(tmp_path / "fakebin", "fairseq-preprocess", script)["PATH"])
    code, _, err = run_main(capsys, *MULTI30K_ARGS, "--trainpref", multi30k / "train", "--destdir", tmp_path / "out")
    assert code == 2 and "Traceback" not in err
    for text in expected:
        assert text in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fakebin"]


def test_a_data_bin_short_of_sentences_is_refused(prepared, tmp_path):
    counts = json.loads((prepared / "manifest.json").read_text())["counts"]
    assert prep.check_databin(prepared / "bin", "de", "en", counts) > 4
    with pytest.raises(prep.DifformerError, match=r"wrote 40 sentences to valid\.de-en\.de, expected 41"):
        prep.check_databin(prepared / "bin", "de", "en", {**counts, "valid": {"pairs": 41}})
    partial = tmp_path / "bin"
    shutil.copytree(prepared / "bin", partial)
    (partial / "train.de-en.de.idx").unlink()
    with pytest.raises(prep.DifformerError, match=r"wrote 0 sentences to train\.de-en\.de, expected 300"):
        prep.check_databin(partial, "de", "en", counts)


def test_interrupted_rebuild_keeps_the_finished_one_then_starts_over(prepared, multi30k, tmp_path,
                                                                    monkeypatch):
    dest = tmp_path / "data"
    shutil.copytree(prepared, dest)
    finished = snapshot(dest)

    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C once tok/, codes and bpe/ of the new build are written

    monkeypatch.setattr(prep, "binarize", interrupted)
    other = prep.parse_args([*MULTI30K_ARGS[:-1], "150", "--trainpref", multi30k / "train", "--destdir", dest])
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(other)
    assert snapshot(dest) == finished
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]

    monkeypatch.undo()
    assert prep.prepare(other) == dest / "bin"
    assert json.loads((dest / "manifest.json").read_text())["options"]["bpe_merges"] == 150
    assert sentences(dest / "bin", "train.de-en.en") == 300 and not (dest / "bin" / "valid.de-en.en.idx").exists()


def test_the_preprocessing_is_recorded_in_the_data_bin(prepared, multi30k, tmp_path, capsys):
    record = json.loads((prepared / "bin" / "preprocessing.json").read_text())
    assert record == {"tokenizer": "moses_lowercase", "tokenizer_args": {"moses_no_dash_splits": True,
                                                                         "moses_no_escape": True},
                      "lowercase": True, "bpe": "subword_nmt", "bpe_codes": "../codes",
                      "written_by": "difformer-prepare"}
    # Already tokenised input: the tokenizer it went through is what the user says.
    dest = tmp_path / "pretokenised"
    code, _, err = run_main(capsys, "--source-lang", "de", "--target-lang", "en", "--no-tokenize", "--bpe-merges",
                            "50", "--input-tokenizer", "moses_lowercase", "--input-tokenizer-args",
                            '{"moses_no_dash_splits": true}', "--trainpref", prepared / "tok" / "train",
                            "--destdir", dest)
    assert code == 0, err
    assert json.loads((dest / "bin" / "preprocessing.json").read_text())["tokenizer_args"] == {
        "moses_no_dash_splits": True}
    code, _, err = run_main(capsys, "--source-lang", "de", "--target-lang", "en", "--input-tokenizer", "moses",
                            "--trainpref", multi30k / "train", "--destdir", tmp_path / "x")
    assert code == 2 and "--input-tokenizer describes input that is already tokenised: it needs --no-tokenize" in err


def test_a_byte_order_mark_is_removed_and_counted(multi30k, tmp_path, capsys):
    for lang in ("de", "en"):
        text = (multi30k / f"train.{lang}").read_text(encoding="utf-8")
        (tmp_path / f"train.{lang}").write_text(("\ufeff" if lang == "de" else "") + text, encoding="utf-8")
    code, _, err = run_main(capsys, *MULTI30K_ARGS, "--trainpref", tmp_path / "train", "--destdir", tmp_path / "d")
    assert code == 0, err
    assert f"difformer-prepare: train: removed the UTF-8 byte-order mark opening {tmp_path / 'train.de'}" in err
    first = (tmp_path / "d" / "tok" / "train.de").read_text(encoding="utf-8").splitlines()[0]
    assert first.split()[0] == "zwei"  # "Zwei junge weiße Männer …", its first word as it is
    assert "\ufeff" not in (tmp_path / "d" / "bin" / "dict.de.txt").read_text(encoding="utf-8")
    counts = json.loads((tmp_path / "d" / "manifest.json").read_text())["counts"]
    assert counts["train"]["byte_order_marks"] == 1


def test_gigaword_pretokenised_text_keeps_its_unknown_word(tmp_path, capsys):
    """Gigaword as released (tokenised, lowercased, ``<unk>`` for rare words): read as it is, BPE
    never splits ``<unk>`` (with 30 merges subword-nmt alone would: ``<@@ unk@@ >``), and it binarises
    to the dictionary's unknown-word index."""
    from fairseq.data import Dictionary, data_utils

    for split, n in (("train", 300), ("valid", 40)):
        for lang in ("src", "tgt"):
            head(DATA / "gigaword" / f"{split}.{lang}", tmp_path / f"{split}.{lang}", n)
    dest = tmp_path / "gigaword"
    code, _, err = run_main(capsys, "--trainpref", tmp_path / "train", "--validpref", tmp_path / "valid",
                            "--source-lang", "src", "--target-lang", "tgt", "--no-tokenize", "--bpe-merges", "30",
                            "--destdir", dest)
    assert code == 0, err
    released = [" ".join(line.split()) for line in (tmp_path / "train.src").read_text().splitlines()]
    assert (dest / "tok" / "train.src").read_text().splitlines() == released  # whitespace only
    bpe_lines = (dest / "bpe" / "train.src").read_text().splitlines()
    with_unk = [i for i, line in enumerate((tmp_path / "train.src").read_text().splitlines()) if "<unk>" in line]
    assert with_unk and all("<unk>" in bpe_lines[i].split() for i in with_unk)
    dictionary = Dictionary.load(str(dest / "bin" / "dict.src.txt"))
    assert not [symbol for symbol in dictionary.symbols if "unk" in symbol and symbol != "<unk>"]
    source = data_utils.load_indexed_dataset(str(dest / "bin" / "train.src-tgt.src"), dictionary)
    first = with_unk[0]
    assert (source[first] == dictionary.unk()).sum() == bpe_lines[first].split().count("<unk>")
