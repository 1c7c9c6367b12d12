"""The console scripts' shared pieces: running a command into a log, reading fairseq-generate's
output, finding the user dir; and that the console scripts start without importing fairseq."""

import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from difformer_cli import user_dir
from difformer_cli.commands import CommandFailed, run_logged
from difformer_cli.generate_output import parse_generate_output

CONSOLE_SCRIPTS = ("difformer-user-dir", "difformer-prepare", "difformer-distill", "difformer-score",
                   "difformer-average-checkpoints", "difformer-convert-checkpoint", "difformer-trajectory")
HEAVY = ("torch", "fairseq", "fairseq_difformer", "sacrebleu", "rouge_score", "sacremoses", "subword_nmt",
         "matplotlib")


def test_peak_memory_is_that_of_the_process_and_failures_show_the_log(tmp_path):
    usage = run_logged([sys.executable, "-c", "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])"],
                       tmp_path / "ok.log")
    assert usage["peak_rss_mib"] > 300
    with pytest.raises(CommandFailed, match="no such thing") as failure:
        run_logged([sys.executable, "-c", "import sys; print('line 1'); sys.exit('no such thing')"],
                   tmp_path / "bad.log")
    assert "line 1" in str(failure.value) and str(tmp_path / "bad.log") in str(failure.value)
    with pytest.raises(CommandFailed, match="not-a-command: command not found"):
        run_logged(["not-a-command"], tmp_path / "missing.log")


def test_the_log_holds_the_command_and_its_output_and_stdout_can_go_elsewhere(tmp_path):
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    seen = []
    run_logged([sys.executable, "-c", script], tmp_path / "a.log", on_line=seen.append)
    log = (tmp_path / "a.log").read_text()
    assert log.startswith(f"$ {sys.executable} -c ") and "to stdout" in log and "to stderr" in log
    assert sorted(line.strip() for line in seen) == ["to stderr", "to stdout"]

    seen.clear()
    run_logged([sys.executable, "-c", script], tmp_path / "a.log", stdout=tmp_path / "out.txt",
               on_line=seen.append, append=True)
    assert (tmp_path / "out.txt").read_text() == "to stdout\n"
    assert [line.strip() for line in seen] == ["to stderr"]
    assert (tmp_path / "a.log").read_text().count("$ ") == 2  # appended, not overwritten


def test_generate_output_is_read_by_sentence_id():
    lines = [
        "2026-11-27 | INFO | fairseq_cli.generate | loading model",
        "S-1\tein hund",
        "T-1\ta dog",
        "H-1\t-0.25\ta dog",
        "D-1\t-0.25\tA dog",
        "P-1\t-0.1 -0.2",
        "H-1\t-0.90\tthe dog",      # a second (--nbest) hypothesis: the first one is the selected one
        "S-0\tzwei männer",
        "T-0\ttwo men",
        "H-0\t-1.5\t",              # an empty hypothesis
        "H-x\tnot a line of ours",
    ]
    assert parse_generate_output(lines) == {
        1: {"S": "ein hund", "T": "a dog", "H": "a dog", "D": "A dog"},
        0: {"S": "zwei männer", "T": "two men", "H": ""},
    }


def test_user_dir_is_the_plugin_folder_without_importing_it():
    code = ("import sys; from difformer_cli import user_dir; print(user_dir()); "
            "print('fairseq_difformer' in sys.modules, 'fairseq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout.split("\n")
    assert out[0] == str(REPO / "fairseq_difformer") == user_dir()
    assert out[1] == "False False"
    assert run_cli("difformer-user-dir", cwd=REPO).stdout.strip() == str(REPO / "fairseq_difformer")


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_scripts_answer_help_without_importing_fairseq_or_torch(script):
    """``--help`` of every console script imports none of the heavy packages (the start-up time
    this saves is measured in the note, not here)."""
    code = ("import sys; from importlib.metadata import entry_points\n"
            f"main = [e for e in entry_points(group='console_scripts') if e.name == '{script}'][0].load()\n"
            f"sys.argv = ['{script}', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split("\n")[-1] == "[]"
