"""examples/gigaword/run.py at its smoke setting: the AR route on Gigaword headlines with real
fairseq commands (500 training pairs, 5 updates per training), scored with ROUGE beside LEAD-k."""

import json
import os
import re
import subprocess
import sys

from conftest import REPO

from difformer_cli.score import rouge_f1

GIGAWORD = REPO.parent / "shared" / "data" / "gigaword"
DECODINGS = ("ar_greedy", "ar_beam5", "difformer_default", "difformer_3x2_rerank")


def test_gigaword_smoke_runs_the_ar_route_and_scores_rouge_beside_lead(tmp_path):
    proc = subprocess.run([sys.executable, REPO / "examples" / "gigaword" / "run.py", "--smoke", "--workdir", tmp_path],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    headlines = (GIGAWORD / "train.tgt").read_text(encoding="utf-8").splitlines()[:500]
    k = round(sum(len(line.split()) for line in headlines) / len(headlines))
    for name in (*DECODINGS, f"lead{k}"):
        assert re.search(rf"{name} +ROUGE-1 +[\d.]+ +ROUGE-2 +[\d.]+ +ROUGE-L +[\d.]+ +length ratio [\d.]+", out), name
    assert "Gigaword validation set (50 pairs" in out and "--init-from-ar" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {*DECODINGS, f"lead{k}"}
    assert all(results[name]["sentences"] == 50 and results[name]["sentences_per_s"] > 0 for name in DECODINGS)
    assert "--ppl-mbr" in (tmp_path / "difformer_3x2_rerank.command").read_text()
    # LEAD-k: the first k words of each source, scored as rouge-score scores them.
    sources = (tmp_path / "data" / "tok" / "test.src").read_text(encoding="utf-8").splitlines()
    references = (tmp_path / "data" / "tok" / "test.tgt").read_text(encoding="utf-8").splitlines()
    expected = rouge_f1([" ".join(line.split()[:k]) for line in sources], references)
    assert all(abs(results[f"lead{k}"][key] - expected[key]) < 1e-9 for key in ("rouge1", "rouge2", "rougeL"))
    assert results[f"lead{k}"]["rougeL"] > 10
    # The AR teacher trained on lead pairs beside the headlines: a second training shard, read by fairseq-train.
    assert json.loads((tmp_path / "ar-bin" / "lead_pairs.json").read_text())["pairs"] == 500
    assert re.search(r"ar-bin train1 src-tgt 500 examples", (tmp_path / "ar" / "train.log").read_text())
    # The released unknown word is the dictionary's: BPE left it whole.
    assert "<unk>" in (tmp_path / "data" / "bpe" / "train.src").read_text(encoding="utf-8").split()
