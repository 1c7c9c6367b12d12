"""The quickstart and the CPU example scripts, each step at a smoke setting (a handful of updates)."""

import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from difformer_cli import pipeline

SHARED = REPO.parent / "shared" / "data"


def run(cmd, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


QUICKSTART_SMOKE = [sys.executable, REPO / "examples" / "quickstart.py", "--smoke", "--workdir"]
AR_ROUTE_OUTPUTS = ("ar_greedy", "difformer_default", "difformer_3x2_rerank")


def ar_route_outcome(work):
    """What a quickstart run in ``work`` produced: results.json without the speeds, and each
    decoding's hypotheses by sentence id."""
    results = json.loads((work / "results.json").read_text())
    for scores in results.values():
        scores.pop("sentences_per_s")
    hypotheses = {name: re.findall(r"^H-\d+\t.*$", (work / f"{name}.txt").read_text(encoding="utf-8"), re.M)
                  for name in AR_ROUTE_OUTPUTS}
    return results, {name: sorted(lines) for name, lines in hypotheses.items()}


@pytest.fixture(scope="module")
def quickstart_smoke(tmp_path_factory):
    """One uninterrupted ``quickstart.py --smoke``: its work folder, output and outcome."""
    work = tmp_path_factory.mktemp("quickstart")
    out = run([*QUICKSTART_SMOKE, work]).stdout
    return work, out, ar_route_outcome(work)


def test_quickstart_smoke_runs_the_ar_route_and_reuses_every_step(quickstart_smoke):
    """AR model → distillation → AR-initialised Difformer in one budget, three decodings scored;
    a second run reuses every step; a decoding made with another command is made again."""
    tmp_path, first, _ = quickstart_smoke
    cmd = [*QUICKSTART_SMOKE, tmp_path]
    assert re.search(r"budget: AR 0.8 min \+ distillation [\d.]+ min \+ Difformer [\d.]+ min", first)
    assert "--init-from-ar" in first and "copied" in first
    assert re.search(r"update +\d+ .*left of", first)
    for name in ("ar_greedy", "difformer_default", "difformer_3x2_rerank"):
        assert re.search(rf"{name} +SacreBLEU +[\d.]+ +BLEU +[\d.]+ +length ratio [\d.]+ +[\d.]+ sentences/s", first)
    assert "13a" in first and "source:" in first and "hypothesis:" in first
    results = json.loads((tmp_path / "results.json").read_text())
    assert all(r["sentences_per_s"] > 0 for r in results.values())
    assert "--ppl-mbr" in (tmp_path / "difformer_3x2_rerank.command").read_text()
    assert (tmp_path / "checkpoints" / "checkpoint_last.pt").exists()  # where the README's hub example looks
    again = run(cmd).stdout
    assert again.count("training already finished") == 2 and "reusing the distilled data-bin" in again
    assert "translating" not in again
    (tmp_path / "difformer_default.command").write_text("fairseq-generate with another decoding")
    changed = run(cmd).stdout
    assert "translating test2016 with difformer_default" in changed and changed.count("translating") == 1
    # examples/from_ar with your own AR model and its data-bin: no preparation, no AR training
    own = run([sys.executable, REPO / "examples" / "from_ar" / "run.py", "--smoke", "--ar", tmp_path / "ar" /
               "checkpoint_last.pt", "--databin", tmp_path / "data" / "bin", "--workdir", tmp_path / "from_ar"]).stdout
    assert "difformer-prepare" not in own and "training the AR Transformer" not in own
    assert "--init-from-ar" in own and "distilling the training set" in own
    assert set(json.loads((tmp_path / "from_ar" / "results.json").read_text())) == {
        "ar_greedy", "difformer_default", "difformer_3x2_rerank"}


#: where the fault test kills the quickstart: after the line that starts a stage, a random moment
#: within the seconds given (the smoke run's stages take a few seconds to half a minute each)
KILL_POINTS = (("difformer-prepare", 3.0), ("running fairseq-preprocess", 1.0),
               ("training the AR Transformer", 6.0), ("distilling the training set", 5.0),
               ("training difformer_small", 8.0), ("translating test2016 with ar_greedy", 3.0),
               ("translating test2016 with difformer_3x2_rerank", 4.0))


def test_quickstart_killed_at_random_moments_ends_as_an_uninterrupted_run(quickstart_smoke, tmp_path):
    """kill -9 of quickstart.py --smoke in each stage (preparation, AR training, distillation,
    Difformer training, decoding), rerun after each: no process of the killed run is left, and
    the last run ends with the uninterrupted run's results and translations, leaving no temporary
    files."""
    from test_ar_route_runs import processes_mentioning, wait_until_gone

    rng = random.Random(39)
    work = tmp_path / "work"
    kills = []
    for marker, within in KILL_POINTS:
        proc = subprocess.Popen([str(c) for c in [*QUICKSTART_SMOKE, work]], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        for line in proc.stdout:
            if marker in line:
                time.sleep(rng.uniform(0, within))
                proc.send_signal(signal.SIGKILL)
                kills.append(marker)
                break
        proc.stdout.close()
        proc.wait()
        assert wait_until_gone(str(work)) == [], f"processes left after the kill in '{marker}'"
    assert len(kills) >= 6, kills
    run([*QUICKSTART_SMOKE, work])
    assert ar_route_outcome(work) == quickstart_smoke[2]
    leftovers = [p for p in work.rglob("*") if re.search(r"\.tmp($|-|\b)|\.partial$", p.name) or p.name == ".tmp"]
    assert leftovers == [] and processes_mentioning(str(work)) == []


def test_quickstart_from_scratch_smoke_trains_only_the_difformer(tmp_path):
    out = run([sys.executable, REPO / "examples" / "quickstart.py", "--smoke", "--from-scratch",
               "--workdir", tmp_path]).stdout
    assert re.search(r"difformer_3x2 +SacreBLEU +[\d.]+", out) and "AR Transformer" not in out
    assert "--decoding-length-offset 2" in (tmp_path / "difformer_3x2.command").read_text()
    assert not (tmp_path / "ar").exists()


def test_quickstart_stops_in_one_line_when_the_budget_leaves_no_difformer_time(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("quickstart", REPO / "examples" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)

    monkeypatch.setattr(pipeline, "prepare", lambda data, work, *a: work / "data" / "bin")
    trained = []
    monkeypatch.setattr(pipeline, "train", lambda system, *a, **k: trained.append(system) or tmp_path / "ar.pt")
    monkeypatch.setattr(pipeline, "distill", lambda *a: (tmp_path / "kd", 330.0))
    with pytest.raises(SystemExit) as exc:
        quickstart.main(["--minutes", "10", "--workdir", str(tmp_path)])
    assert trained == ["ar"]
    assert str(exc.value) == ("quickstart: --minutes 10 leaves 0.5 min for the Difformer after the AR model "
                              "(4 min) and the distillation (5.5 min); give a larger --minutes, or --from-scratch")


def test_aeslc_summarization_picks_the_best_checkpoint_by_rouge(tmp_path):
    env = {"SUBSET": "300", "MAX_UPDATE": "4", "VALIDATE_EVERY": "2", "MAX_VALID_STEPS": "1",
           "BPE_MERGES": "300", "AESLC": str(SHARED / "aeslc")}
    proc = run(["bash", REPO / "examples" / "aeslc" / "run.sh", tmp_path], env)
    log = proc.stdout + proc.stderr
    assert re.search(r"valid on 'valid' subset .*rougeL [\d.]+", log)
    assert (tmp_path / "checkpoints" / "checkpoint_best.pt").exists()
    assert re.search(r"ROUGE-L [\d.]+", proc.stdout), proc.stdout


def test_qqp_paraphrase_reports_bleu_and_rouge(tmp_path):
    env = {"SUBSET": "300", "MAX_UPDATE": "2", "VALIDATE_EVERY": "2", "MAX_VALID_STEPS": "1",
           "BPE_MERGES": "300", "QQP": str(SHARED / "qqp")}
    proc = run(["bash", REPO / "examples" / "qqp" / "run_cpu.sh", tmp_path], env)
    log = proc.stdout + proc.stderr
    assert re.search(r"valid on 'valid' subset .*bleu [\d.]+.*rougeL [\d.]+", log)
    assert re.search(r"SacreBLEU: [\d.]+", proc.stdout) and re.search(r"ROUGE-L [\d.]+", proc.stdout)
