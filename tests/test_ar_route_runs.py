"""The AR route's runs: every sentence of a split translated, work folders one run at a time, only
a dead run's temporary folders removed, and no command left running after the tool that started
it is killed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import USER_DIR, preprocess, run_cli
from difformer_cli import pipeline
from difformer_cli import prepare as prepare_cli
from difformer_cli.distill import main as distill_main
from difformer_cli.generate_output import parse_generate_output
from difformer_cli.whole_split import EVERY_SENTENCE, check_every_sentence, hypothesis_ids, split_size
from difformer_core.errors import DifformerError
from difformer_core.locks import lock_folder, owner_is_dead

#: sentences in the test split below: 60 = 7 · 8 + 4, so fairseq 0.12.3's default batching drops 4
SPLIT = 60


@pytest.fixture(scope="module")
def databin_60(multi30k_bpe, databin, tmp_path_factory):
    """``databin``'s training pairs with a test split of 60 sentences (its dictionary)."""
    work = tmp_path_factory.mktemp("split60")
    return preprocess(work, {"train": multi30k_bpe / "train", "test": multi30k_bpe / "valid"}, "de", "en",
                      extra=["--srcdict", databin / "dict.de.txt"])


def test_fairseq_generate_drops_sentences_and_the_check_names_them(databin_60, reranker_checkpoint, tmp_path):
    """Without EVERY_SENTENCE fairseq-generate --task translation translates 56 of 60 sentences,
    exit 0; the shared check says so in one line. With it, all 60."""
    common = ["fairseq-generate", databin_60, "--user-dir", USER_DIR, "--task", "translation", "--path", reranker_checkpoint,
              "--gen-subset", "test", "--batch-size", "16", "--beam", "1", "--cpu"]
    dropped = hypothesis_ids(parse_generate_output(run_cli(*common).stdout.splitlines()))
    assert len(dropped) == SPLIT - SPLIT % 8
    with pytest.raises(DifformerError, match=rf"out.txt translates 56 of the 60 sentences of .*test \(first missing: \d+\)"):
        check_every_sentence(dropped, databin_60, "test", tmp_path / "out.txt")
    kept = hypothesis_ids(parse_generate_output(run_cli(*common, *EVERY_SENTENCE).stdout.splitlines()))
    assert check_every_sentence(kept, databin_60, "test", tmp_path / "out.txt") == SPLIT == split_size(databin_60, "test")


def test_the_ar_routes_decodings_score_every_sentence(databin_60, difformer_checkpoint, reranker_checkpoint,
                                                      tmp_path, monkeypatch):
    """The quickstart's AR greedy and AR-reranked 3×2 decodings (pipeline.decode) of a split of 60."""
    monkeypatch.setattr(pipeline, "reranker_engine", lambda: "fairseq")
    decodings = {name: (options, reranked) for name, options, reranked in pipeline.AR_ROUTE_DECODINGS}
    ar = pipeline.decode("ar_greedy", decodings["ar_greedy"][0], databin_60, reranker_checkpoint, tmp_path)
    reranked = pipeline.decode("difformer_3x2_rerank", decodings["difformer_3x2_rerank"][0], databin_60,
                               difformer_checkpoint, tmp_path, reranker=reranker_checkpoint)
    assert ar["sentences"] == reranked["sentences"] == SPLIT


def test_a_second_run_on_a_folder_in_use_stops_in_one_line(tmp_path, capsys, monkeypatch):
    """difformer-prepare's DESTDIR, difformer-distill's DESTDIR and an example's --workdir are
    locked while a run uses them: a second run stops before it touches anything, naming the
    folder and the process. (flock locks an open file, so a second lock from this process is
    refused like one from another process.)"""
    dest = tmp_path / "data"
    for lang in ("de", "en"):
        (tmp_path / f"train.{lang}").write_text("ein satz .\n", encoding="utf-8")
    with prepare_cli.destdir_lock("difformer-prepare", dest):
        with pytest.raises(SystemExit) as stop:
            prepare_cli.main(["--source-lang", "de", "--target-lang", "en", "--trainpref", str(tmp_path / "train"),
                              "--destdir", str(dest)])
        assert stop.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message == (f"difformer-prepare: error: --destdir {dest} is in use by another difformer-prepare run "
                       f"(process {os.getpid()}, holding {tmp_path / '.data.lock'}): wait for it to end, or give "
                       f"this run another --destdir")

    (tmp_path / "bin" / "train.de-en.de.bin").parent.mkdir()
    for name in ("train.de-en.de.bin", "train.de-en.de.idx", "dict.de.txt", "dict.en.txt"):
        (tmp_path / "bin" / name).write_text("")
    kd = tmp_path / "kd"
    with lock_folder(kd / "distill.lock", "x", "y", "z"):
        with pytest.raises(SystemExit):
            distill_main([str(tmp_path / "bin"), "--destdir", str(kd), "--engine", "fairseq", "--cpu"])
    assert capsys.readouterr().err.strip().endswith(
        f"difformer-distill: error: --destdir {kd} is in use by another difformer-distill run (process "
        f"{os.getpid()}, holding {kd / 'distill.lock'}): wait for it to end, or give this run another --destdir")
    assert not (kd / "bin").exists()

    monkeypatch.setattr(pipeline, "PREFIX", ["examples"])
    with pipeline.workdir(tmp_path / "work"):
        with pytest.raises(SystemExit) as stop, pipeline.workdir(tmp_path / "work"):
            pass
    assert str(stop.value) == (f"examples: --workdir {tmp_path / 'work'} is in use by another examples run (process "
                               f"{os.getpid()}, holding {tmp_path / 'work' / 'run.lock'}): wait for it to end, or "
                               f"give this run another --workdir")
    with pipeline.workdir(tmp_path / "work"):  # released when the first run ends
        pass


def test_only_a_dead_runs_build_folder_is_removed(tmp_path):
    """remove_dead_builds removes ``.DEST.tmp-PID`` (and its ``-old``) where process PID has ended,
    and leaves those of a live process alone."""
    live = subprocess.Popen(["sleep", "30"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        folders = {name: tmp_path / name for name in (f".data.tmp-{live.pid}", f".data.tmp-{dead.pid}",
                                                      f".data.tmp-{dead.pid}-old")}
        for folder in folders.values():
            (folder / "bin").mkdir(parents=True)
        assert [owner_is_dead(f) for f in folders.values()] == [False, True, True]
        prepare_cli.remove_dead_builds(tmp_path / "data")
        build = prepare_cli.fresh_build_folder(tmp_path / "data")
        assert build == tmp_path / f".data.tmp-{os.getpid()}" and build.is_dir() and not any(build.iterdir())
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([build.name, f".data.tmp-{live.pid}"])
    finally:
        live.kill()


def processes_mentioning(text):
    """The ids of running processes whose command line holds ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def wait_until_gone(text, seconds=20):
    """Wait for the processes mentioning ``text`` to end; the ids of those still running."""
    deadline = time.monotonic() + seconds
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_command_ends_with_the_tool_that_started_it(tmp_path):
    """kill -9 of a process that runs a command with run_logged (as every tool here runs
    fairseq's): the command ends too, instead of running on as an orphan."""
    marker = str(tmp_path / "orphan-marker")
    tool = subprocess.Popen([sys.executable, "-c", (
        "import sys; from difformer_cli.commands import run_logged; "
        f"run_logged([sys.executable, '-c', 'import time; time.sleep(120)', {marker!r}], sys.argv[1])"),
        str(tmp_path / "log")])
    try:
        deadline = time.monotonic() + 30
        while not [p for p in processes_mentioning(marker) if p != tool.pid] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in processes_mentioning(marker) if p != tool.pid], "the command did not start"
        os.kill(tool.pid, signal.SIGKILL)
        tool.wait()
        assert wait_until_gone(marker, 10) == []
    finally:
        for pid in processes_mentioning(marker):
            os.kill(pid, signal.SIGKILL)
