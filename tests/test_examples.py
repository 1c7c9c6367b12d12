"""The quickstart and the CPU example scripts, each step at a smoke setting (a handful of updates)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SHARED = REPO.parent / "shared" / "data"


def run(cmd, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_quickstart_smoke_runs_every_step_and_reuses_them(tmp_path):
    first = run([sys.executable, REPO / "examples" / "quickstart.py", "--smoke", "--workdir", tmp_path]).stdout
    assert re.search(r"SacreBLEU [\d.]+ +\(.*13a", first)
    assert "tokenised BLEU" in first and "source:" in first and "hypothesis:" in first
    assert re.search(r"update +\d+ .*left of", first)
    again = run([sys.executable, REPO / "examples" / "quickstart.py", "--smoke", "--workdir", tmp_path]).stdout
    assert "training already finished" in again and "translating" not in again
    # a translation made with another decoding command is not reused
    (tmp_path / "generate-test.command").write_text("fairseq-generate with another decoding")
    changed = run([sys.executable, REPO / "examples" / "quickstart.py", "--smoke", "--workdir", tmp_path]).stdout
    assert "training already finished" in changed and "translating" in changed
    assert "--decoding-length-offset 2" in (tmp_path / "generate-test.command").read_text()


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


def test_from_ar_example_runs_every_step_and_reuses_them(tmp_path):
    """examples/from_ar/run.py --smoke: prepare, AR model, distillation, AR-initialised
    Difformer, three decodings scored; a second run reuses every step."""
    cmd = [sys.executable, REPO / "examples" / "from_ar" / "run.py", "--smoke", "--workdir", tmp_path]
    first = run(cmd).stdout
    assert "--init-from-ar" in first and "copied" in first
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"ar_greedy", "difformer_default", "difformer_3x2_rerank"}
    assert all(r["sentences_per_s"] > 0 and "sacrebleu" in r for r in results.values())
    assert "--ppl-mbr" in (tmp_path / "difformer_3x2_rerank.command").read_text()
    again = run(cmd).stdout
    assert "AR Transformer already trained" in again and "Difformer already trained" in again
    assert "reusing the distilled data-bin" in again and "decoding test" not in again
