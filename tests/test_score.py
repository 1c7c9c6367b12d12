"""difformer-score: the metrics against values counted by hand on tiny inputs, and what the tool
itself does: reading fairseq-generate output, BPE removal, detokenisation, bad input."""

import json
import math
import os
import shutil
import subprocess

import pytest

from difformer_cli.score import main, read_generate_output, score


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def hand_bleu(precisions, hyp_len, ref_len):
    """BP · (Π_n p_n)^(1/4) × 100 from n-gram precisions counted by hand."""
    brevity = min(1.0, math.exp(1 - ref_len / hyp_len))
    return 100 * brevity * math.prod(precisions) ** (1 / 4)


def tok_bleu(hyps, refs):
    result = score(hyps, refs, metrics=["tok-bleu"])
    return result["tok_bleu"], result["length_ratio"]


# ---------------------------------------------------------------- tokenised BLEU (the paper's)

def test_tokenised_bleu_closed_forms():
    assert tok_bleu(["a man rides a horse ."], ["a man rides a horse ."]) == (pytest.approx(100), 1.0)
    # One word differs at the end: 4/5, 3/4, 2/3, 1/2 of the n-grams match.
    assert tok_bleu(["a b c d e"], ["a b c d f"])[0] == pytest.approx(hand_bleu([4 / 5, 3 / 4, 2 / 3, 1 / 2], 5, 5))
    # Every n-gram matches, half the length: BP = exp(1 − 8/4).
    value, ratio = tok_bleu(["a b c d"], ["a b c d e f g h"])
    assert value == pytest.approx(100 * math.exp(-1)) and ratio == 0.5
    # Pooled over the corpus, not averaged over sentences: (4+1)/(4+2), 3/(3+1), 2/2, 1/1.
    assert tok_bleu(["a b c d", "x y"], ["a b c d", "x z"])[0] == pytest.approx(hand_bleu([5 / 6, 3 / 4, 1, 1], 6, 6))


def test_tokenised_bleu_is_zero_without_a_matching_4gram_as_fairseq_generate_reports():
    """No smoothing: a corpus with no 4-gram match scores 0, as fairseq-generate's BLEU4 (the
    paper's numbers) and multi-bleu.perl; the brevity penalty is still the length ratio's."""
    hyps, refs = ["a b x c d", "the cat"], ["a b y c d", "the cat sat"]
    value, ratio = tok_bleu(hyps, refs)
    assert value == 0.0 and ratio == pytest.approx(7 / 8)

    from fairseq.data import Dictionary
    from fairseq.scoring.bleu import BleuConfig, Scorer

    words = Dictionary()
    fairseq_bleu = Scorer(BleuConfig(pad=words.pad(), eos=words.eos(), unk=words.unk()))
    for hyp, ref in zip(["a b c d e f", *hyps], ["a b c d e g h", *refs]):
        fairseq_bleu.add(words.encode_line(ref, add_if_not_exist=True), words.encode_line(hyp, add_if_not_exist=True))
    # With one more sentence every order matches somewhere: the same number as fairseq's.
    value, _ = tok_bleu(["a b c d e f", *hyps], ["a b c d e g h", *refs])
    assert value == pytest.approx(fairseq_bleu.score(4)) and 0 < value < 100


# ---------------------------------------------------------------- SacreBLEU

def test_sacrebleu_tokenises_13a_and_smooths():
    result = score(["a man rides a horse ."], ["a man rides a horse."], metrics=["bleu", "tok-bleu"])
    assert result["sacrebleu"] == pytest.approx(100)  # 13a splits "horse." into "horse ."
    assert result["tok_bleu"] < 100
    assert result["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|")
    # exp smoothing (SacreBLEU's standard): the k-th order without a match counts 1/(2^k · total).
    value = score(["a b x c d"], ["a b y c d"], metrics=["bleu"])["sacrebleu"]
    assert value == pytest.approx(hand_bleu([4 / 5, 2 / 4, 1 / (2 * 3), 1 / (4 * 2)], 5, 5))


# ---------------------------------------------------------------- ROUGE

def test_rouge_f1_closed_forms_averaged_over_sentences():
    """F1 = 2·overlap / (|hyp n-grams| + |ref n-grams|); ROUGE-L from the longest common
    subsequence; lowercased and Porter-stemmed words."""
    hyps = ["the cat sat on the mat", "Dogs were playing", "a man rides"]
    refs = ["the cat is on the mat", "the dog plays", "a man rides a horse"]
    # the×2 cat on mat: 5 of 6 unigrams; "the cat", "on the", "the mat": 3 of 5 bigrams; LCS 5.
    # dog, play (stemmed): 2 of 3; no bigram; LCS 2.  3 of 3 against 3 of 5; 2 of 2 against 2 of 4.
    expected = {"rouge1": [5 / 6, 2 / 3, 6 / 8], "rouge2": [3 / 5, 0, 4 / 6], "rougeL": [5 / 6, 2 / 3, 6 / 8]}
    result = score(hyps, refs, metrics=["rouge"])
    assert set(result) == {"sentences", "rouge1", "rouge2", "rougeL"} and result["sentences"] == 3
    for name, values in expected.items():
        assert result[name] == pytest.approx(100 * sum(values) / 3), name


# ---------------------------------------------------------------- reading fairseq-generate output

GENERATE_OUTPUT = [
    "2026-11-27 10:00:00 | INFO | fairseq.tasks.translation | [de] dictionary: 500 types",
    "S-2\tdrei hun@@ de",
    "T-2\tthree dog@@ s",
    "H-2\t-0.31\tthree dog@@ s",
    "D-2\t-0.31\tthree cats",           # a different detokenised line: must not be read
    "P-2\t-0.1 -0.2 -0.3 -0.4",
    "H-2\t-0.90\tthree cats",           # --nbest: the selected hypothesis comes first
    "D-2\t-0.90\tthree cats",
    "S-0\tein mann",
    "T-0\ta man rides a hor@@ se",
    "H-0\t-0.20\ta man rides a hor@@ se",
    "S-1\tleer",
    "T-1\tan empty hypothesis",
    "H-1\t-1.00\t",                     # an empty hypothesis: score, tab, nothing
    "2026-11-27 10:00:05 | INFO | fairseq_cli.generate | Translated 3 sentences",
    "Generate test with beam=1: BLEU4 = 50.00, 80.0/60.0/40.0/20.0 (BP=1.000)",
]


def test_generate_output_is_read_in_sentence_order_first_hypothesis_only(tmp_path):
    hyps, refs = read_generate_output(write(tmp_path / "gen.out", GENERATE_OUTPUT))
    assert hyps == ["a man rides a hor@@ se", "", "three dog@@ s"]
    assert refs == ["a man rides a hor@@ se", "an empty hypothesis", "three dog@@ s"]


def test_scores_of_a_generate_output_with_bpe_removed(tmp_path, capsys):
    """Sentences 0 and 2 right, sentence 1 empty: every n-gram matches, 7 words against 10."""
    gen = write(tmp_path / "gen.out", GENERATE_OUTPUT)
    main(["--generate-output", str(gen), "--remove-bpe", "--json", "--metrics", "tok-bleu,rouge"])
    result = json.loads(capsys.readouterr().out)
    # "a man rides a horse" + "three dogs": 1-grams 7/7, 2-grams 5/5, 3-grams 3/3, 4-grams 2/2.
    assert result["tok_bleu"] == pytest.approx(100 * math.exp(1 - 10 / 7))
    assert result["length_ratio"] == pytest.approx(7 / 10)
    assert result["rouge1"] == pytest.approx(200 / 3) and result["sentences"] == 3
    assert "warning" not in capsys.readouterr().err
    main(["--generate-output", str(gen), "--json", "--metrics", "tok-bleu"])  # subwords kept
    out, err = capsys.readouterr()
    assert json.loads(out)["length_ratio"] == pytest.approx(9 / 12)
    assert "difformer-score: warning:" in err and "gen.out" in err and "--remove-bpe" in err


def test_remove_bpe_and_detokenise_plain_files(tmp_path, capsys):
    hyp = write(tmp_path / "hyp", ["the girl &apos;s h@@ at is red ."])
    ref = write(tmp_path / "ref", ["the girl &apos;s hat is red ."])
    raw = write(tmp_path / "raw", ["The girl's hat is red."])
    args = ["--hyp", str(hyp), "--ref", str(ref), "--json"]
    main(args + ["--remove-bpe", "--detok", "en"])
    result = json.loads(capsys.readouterr().out)
    assert result["tok_bleu"] == pytest.approx(100) and result["sacrebleu"] == pytest.approx(100)
    # --sacrebleu-ref: SacreBLEU against the raw, cased text. The detokenised hypothesis
    # "the girl's hat is red." is, in 13a tokens, the girl's hat is red . : all but "the" match.
    main(args + ["--remove-bpe", "--detok", "en", "--sacrebleu-ref", str(raw)])
    result = json.loads(capsys.readouterr().out)
    assert result["sacrebleu"] == pytest.approx(hand_bleu([5 / 6, 4 / 5, 3 / 4, 2 / 3], 6, 6))
    assert result["tok_bleu"] == pytest.approx(100)  # the tokenised BLEU keeps --ref
    main(args)  # without --remove-bpe, "h@@ at" is two words that match nothing
    out, err = capsys.readouterr()
    assert json.loads(out)["tok_bleu"] < 100
    assert err == ""  # BPE only in the hypotheses: the references say nothing of the data's units


def test_console_script_and_text_output(tmp_path):
    gen = write(tmp_path / "gen.out", ["T-0\ta dog runs .", "H-0\t-0.5\ta dog runs .",
                                       "T-1\ttwo cats", "H-1\t-0.5\ttwo cats"])
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    exe = shutil.which("difformer-score")
    proc = subprocess.run([exe, "--generate-output", str(gen), "--json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {k: round(v, 6) for k, v in result.items() if k != "sacrebleu_signature"} == {
        "sacrebleu": 100.0, "tok_bleu": 100.0, "rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0,
        "length_ratio": 1.0, "sentences": 2, "exact_length": 1.0, "mean_abs_length_diff": 0.0,
        "repeat_rate": 0.0, "ref_repeat_rate": 0.0}
    text = subprocess.run([exe, "--generate-output", str(gen)], capture_output=True, text=True, env=env).stdout
    assert "sentences: 2" in text and "SacreBLEU: 100.00 (nrefs:1|" in text
    assert "tokenised BLEU: 100.00 (length ratio 1.000)" in text
    assert "ROUGE F1: ROUGE-1 100.00, ROUGE-2 100.00, ROUGE-L 100.00" in text
    assert ("lengths: 100.0% exact, mean |hyp − ref| 0.00 tokens; repeated tokens 0.00% "
            "(references 0.00%)") in text


def test_lengths_and_repeats_count_the_tokens_as_written(tmp_path, capsys):
    """Lengths and repeats are counted on the tokens of the file, before --remove-bpe:
    H-0 "in in the par@@ k" (5 tokens, 1 repeat) against "in the park" (3 tokens: 2 short);
    H-1 "two two two dogs" (4 tokens, 2 repeats) against "two dogs run ." (4: exact);
    H-2 "a a" (2, 1 repeat) against "a a cat" (3, 1 repeat: 1 short)."""
    gen = write(tmp_path / "gen.out", ["T-0\tin the park", "H-0\t-1\tin in the par@@ k",
                                       "T-1\ttwo dogs run .", "H-1\t-1\ttwo two two dogs",
                                       "T-2\ta a cat", "H-2\t-1\ta a"])
    main(["--generate-output", str(gen), "--remove-bpe", "--json", "--metrics", "lengths"])
    result = json.loads(capsys.readouterr().out)
    assert result == pytest.approx({"sentences": 3, "exact_length": 1 / 3,
                                    "mean_abs_length_diff": (2 + 0 + 1) / 3,
                                    "repeat_rate": (1 + 2 + 1) / (5 + 4 + 2),
                                    "ref_repeat_rate": 1 / (3 + 4 + 3)})


# ---------------------------------------------------------------- bad input

def bad_inputs(tmp):
    """(arguments, text the error must contain) for each kind of bad input."""
    good, short = write(tmp / "good.txt", ["a", "b", "c", "d"]), write(tmp / "short.txt", ["a", "b", "c"])
    empty = tmp / "empty.txt"
    empty.write_text("")
    no_lines = write(tmp / "log.out", ["INFO | nothing generated"])
    no_target = write(tmp / "notarget.out", ["H-0\t-0.1\ta", "H-1\t-0.1\tb", "T-1\tb"])
    no_hypothesis = write(tmp / "cut.out", ["T-0\ta", "H-0\t-0.1\ta", "T-1\tb", "T-2\tc"])
    return {
        "missing": (["--hyp", str(tmp / "nope.txt"), "--ref", str(good)], ["nope.txt"]),
        "empty": (["--hyp", str(good), "--ref", str(empty)], ["empty.txt", "empty"]),
        "line counts": (["--hyp", str(good), "--ref", str(short)], ["good.txt", "short.txt", "4", "3"]),
        "no H/T lines": (["--generate-output", str(no_lines)], ["log.out"]),
        "H without T": (["--generate-output", str(no_target)], ["notarget.out", "1 of 2"]),
        "T without H": (["--generate-output", str(no_hypothesis)], ["cut.out", "2 references", "first id 1"]),
        "sacrebleu-ref length": (["--hyp", str(good), "--ref", str(good), "--sacrebleu-ref", str(short)],
                                 ["short.txt", "3", "4"]),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "line counts", "no H/T lines", "H without T",
                                  "T without H", "sacrebleu-ref length"])
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, case):
    args, expected = bad_inputs(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "difformer-score: error:" in err and "Traceback" not in err
    for text in expected:
        assert text in err
