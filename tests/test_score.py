"""difformer-score: metrics against sacrebleu / rouge-score themselves, input reading, errors."""

import json
import os
import shutil
import subprocess

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sacremoses import MosesDetokenizer

from difformer_cli.score import main, read_generate_output, score

HYPS = ["a man is riding a bike down the street .", "two dogs play in the snow .",
        "the girl 's hat is red .", "people are walking"]
REFS = ["a man rides a bicycle down the road .", "two dogs are playing in the snow .",
        "the girl 's hat is red .", "a crowd of people walk in the park ."]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_bleu_equals_sacrebleu():
    result = score(HYPS, REFS)
    assert result["sacrebleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    tok = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="none")
    assert result["tok_bleu"] == pytest.approx(tok.score)
    assert result["length_ratio"] == pytest.approx(tok.sys_len / tok.ref_len)
    assert result["length_ratio"] == pytest.approx(27 / 33)  # whitespace tokens of HYPS / REFS
    assert result["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|")
    assert result["sentences"] == 4


def test_rouge_equals_rouge_score():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, hyp) for hyp, ref in zip(HYPS, REFS)]
    result = score(HYPS, REFS, metrics=["rouge"])
    for name in ("rouge1", "rouge2", "rougeL"):
        assert result[name] == pytest.approx(100 * sum(s[name].fmeasure for s in scores) / len(scores))
    assert set(result) == {"sentences", "rouge1", "rouge2", "rougeL"}


def test_read_generate_output_sorts_ids_and_keeps_first_hypothesis(tmp_path):
    gen = write(tmp_path / "gen.out", [
        "INFO | fairseq.tasks | loaded 3 examples",
        "S-2\tdrei hunde", "T-2\tthree dogs", "H-2\t-0.31\tthree dogs", "H-2\t-0.90\tthree cats",
        "D-2\t-0.31\tthree dogs", "P-2\t-0.1 -0.2",
        "S-0\tein mann", "T-0\ta man", "H-0\t-0.20\ta man", "H-0\t-0.50\tman",
        "S-1\tleer", "T-1\tempty hypothesis", "H-1\t-1.00\t",
        "Generate test with beam=1: BLEU4 = 50.00",
    ])
    hyps, refs = read_generate_output(gen)
    assert hyps == ["a man", "", "three dogs"]
    assert refs == ["a man", "empty hypothesis", "three dogs"]


def test_remove_bpe(tmp_path, capsys):
    hyp = write(tmp_path / "hyp", ["a m@@ an is ri@@ ding"])
    ref = write(tmp_path / "ref", ["a man is ri@@ ding"])
    main(["--hyp", str(hyp), "--ref", str(ref), "--remove-bpe", "--json", "--metrics", "tok-bleu"])
    assert json.loads(capsys.readouterr().out)["tok_bleu"] == pytest.approx(100)
    main(["--hyp", str(hyp), "--ref", str(ref), "--json", "--metrics", "tok-bleu"])
    assert json.loads(capsys.readouterr().out)["tok_bleu"] < 100


def test_detok_with_sacrebleu_ref(tmp_path, capsys):
    tokenised = ["the girl &apos;s hat is red .", "it &apos;s \" quoted \" ."]
    raw = ["The girl's hat is red.", 'It\'s "quoted".']
    hyp, ref = write(tmp_path / "hyp", tokenised), write(tmp_path / "ref", tokenised)
    sacre_ref = write(tmp_path / "raw.en", raw)
    main(["--hyp", str(hyp), "--ref", str(ref), "--detok", "en", "--sacrebleu-ref", str(sacre_ref), "--json"])
    result = json.loads(capsys.readouterr().out)
    detok = MosesDetokenizer(lang="en")
    detok_hyps = [detok.detokenize(line.split()) for line in tokenised]
    assert detok_hyps[0] == "the girl's hat is red."
    assert result["sacrebleu"] == pytest.approx(sacrebleu.corpus_bleu(detok_hyps, [raw]).score)
    assert result["sacrebleu"] < 100 and result["tok_bleu"] == pytest.approx(100)  # case differs
    main(["--hyp", str(hyp), "--ref", str(ref), "--detok", "en", "--json"])
    assert json.loads(capsys.readouterr().out)["sacrebleu"] == pytest.approx(100)


def test_console_script_json(tmp_path):
    gen = write(tmp_path / "gen.out", [f"T-{i}\t{r}\nH-{i}\t-0.5\t{h}" for i, (h, r) in enumerate(zip(HYPS, REFS))])
    proc = subprocess.run([shutil.which("difformer-score"), "--generate-output", str(gen), "--json"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"sacrebleu", "sacrebleu_signature", "tok_bleu", "rouge1", "rouge2",
                           "rougeL", "length_ratio", "sentences"}
    assert result["tok_bleu"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="none").score)


def test_text_output(tmp_path, capsys):
    main(["--hyp", str(write(tmp_path / "h", HYPS)), "--ref", str(write(tmp_path / "r", REFS))])
    out = capsys.readouterr().out
    assert "SacreBLEU:" in out and "tokenised BLEU:" in out and "ROUGE-L" in out and "sentences: 4" in out


def bad_inputs(tmp):
    """(arguments, text the error must contain) for each kind of bad input."""
    good, short = write(tmp / "good.txt", HYPS), write(tmp / "short.txt", HYPS[:3])
    empty = tmp / "empty.txt"
    empty.write_text("")
    no_lines = write(tmp / "log.out", ["INFO | nothing generated"])
    no_target = write(tmp / "notarget.out", ["H-0\t-0.1\ta", "H-1\t-0.1\tb", "T-1\tb"])
    return {
        "missing": (["--hyp", str(tmp / "nope.txt"), "--ref", str(good)], ["nope.txt"]),
        "empty": (["--hyp", str(good), "--ref", str(empty)], ["empty.txt", "empty"]),
        "line counts": (["--hyp", str(good), "--ref", str(short)], ["good.txt", "short.txt", "4", "3"]),
        "no H/T lines": (["--generate-output", str(no_lines)], ["log.out"]),
        "H without T": (["--generate-output", str(no_target)], ["notarget.out", "1 of 2"]),
        "sacrebleu-ref length": (["--hyp", str(good), "--ref", str(good), "--sacrebleu-ref", str(short)],
                                 ["short.txt", "3", "4"]),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "line counts", "no H/T lines", "H without T",
                                  "sacrebleu-ref length"])
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, case):
    args, expected = bad_inputs(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "difformer-score: error:" in err and "Traceback" not in err
    for text in expected:
        assert text in err

