"""End to end through the real fairseq-train / fairseq-generate / fairseq-interactive commands."""

import glob
import math
import os
import re
import shutil
import socket
import struct
import subprocess

import pytest
import sacrebleu
import torch
from conftest import TINY_ARCH, TRAIN_COMMON, USER_DIR, run_cli, run_in_process, train_difformer
from fairseq.data import Dictionary
from fairseq.logging import progress_bar
from sacremoses import MosesDetokenizer, MosesTokenizer

import fairseq_difformer  # noqa: F401  (lets torch.load read fairseq checkpoints)


def generate(databin, path, *extra, check=True, in_process=False):
    args = ["fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer", "--path", path,
            "--gen-subset", "test", "--batch-size", "16", "--cpu", "--remove-bpe", "--seed", "1", *extra]
    return run_in_process(*args) if in_process else run_cli(*args, check=check)


def hypotheses(stdout):
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^H-(\d+)\t\S+\t?(.*)$", stdout, re.M)}


def test_train_with_eval_bleu_then_resume(databin, tmp_path):
    save_dir = tmp_path / "ckpt"
    eval_bleu = ["--eval-bleu", "--eval-bleu-remove-bpe", "--eval-bleu-args", '{"decoding_steps": 5}',
                 "--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric",
                 "--max-valid-steps", "1"]
    first = train_difformer(databin, save_dir, 3, *eval_bleu, "--max-epoch", "1")
    assert re.search(r"valid on 'valid' subset \|.* bleu [\d.]+", first.stderr + first.stdout)
    for term in ("mse", "anchor", "length"):
        assert re.search(rf"\| {term} [\d.]+", first.stderr + first.stdout), term
    assert (save_dir / "checkpoint_last.pt").exists() and (save_dir / "checkpoint_best.pt").exists()
    updates_before = torch.load(save_dir / "checkpoint_last.pt")["optimizer_history"][-1]["num_updates"]

    resumed = train_difformer(databin, save_dir, updates_before + 2, *eval_bleu)
    log = resumed.stderr + resumed.stdout
    assert re.search(rf"Loaded checkpoint .*checkpoint_last.pt \(epoch \d+ @ {updates_before} updates\)", log)
    assert torch.load(save_dir / "checkpoint_last.pt")["optimizer_history"][-1]["num_updates"] == updates_before + 2


def candidates_by_sentence(stdout):
    """{id: (source, [(score, hypothesis), …] in output order)} from fairseq-generate --nbest."""
    sources = dict(re.findall(r"^S-(\d+)\t(.*)$", stdout, re.M))
    found = {}
    for sent_id, score, text in re.findall(r"^H-(\d+)\t(\S+)\t(.*)$", stdout, re.M):
        found.setdefault(int(sent_id), (sources[sent_id], []))[1].append((float(score), text))
    return found


def reranker_mean_log_prob(model, dictionary, source, hypothesis):
    """The AR model's (1/|y|) Σ log p(y_i | y_<i, x) of one BPE hypothesis, teacher-forced."""
    src = dictionary.encode_line(source, add_if_not_exist=False).long()[None]
    tgt = dictionary.encode_line(hypothesis, add_if_not_exist=False).long()[None]
    prev = torch.cat([tgt.new_full((1, 1), dictionary.eos()), tgt[:, :-1]], 1)
    with torch.no_grad():
        logits, _ = model(src, torch.tensor([src.size(1)]), prev)
    return float(torch.log_softmax(logits.double(), -1).gather(-1, tgt[..., None]).mean())


def original_bleu_mbr(texts):
    """The original code's bleu_rerank: for each candidate, the mean over the others of
    sentence_bleu(other, [candidate]) on the words with BPE removed."""
    words = [(t + " ").replace("@@ ", "").rstrip() for t in texts]
    return [sum(sacrebleu.sentence_bleu(o, [w]).score for j, o in enumerate(words) if j != i) / (len(words) - 1)
            for i, w in enumerate(words)]


def test_each_selection_outputs_its_own_choice(databin, difformer_checkpoint, reranker_checkpoint):
    """Each option prints first the candidate that is best by its own score, computed here from
    the printed candidates; the two MBR options, given the same 3 × 2 candidates, choose
    differently on some sentences. (Loading a second checkpoint draws from the random generator,
    so the MBR runs both load the reranker to decode the same candidates; --bleu-mbr ignores it.
    The model's float32 weights: the reranker's scores are recomputed here in float32.)"""
    from fairseq import checkpoint_utils

    runs = {}
    for selection in ("logprob", "ppl-mbr", "bleu-mbr"):
        path = difformer_checkpoint if selection == "logprob" else f"{difformer_checkpoint}:{reranker_checkpoint}"
        flags = {"logprob": [], "ppl-mbr": ["--ppl-mbr"], "bleu-mbr": ["--bleu-mbr"]}[selection]
        out = run_cli("fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer", "--path", path,
                      "--gen-subset", "test", "--batch-size", "16", "--cpu", "--seed", "1", "--nbest", "6",
                      "--length-beam-size", "3", "--noise-beam-size", "2", "--decoding-steps", "6",
                      "--decoding-early-stopping", "2", "--decoding-precision", "model", *flags).stdout
        runs[selection] = candidates_by_sentence(out)
    for sentences in runs.values():
        assert sorted(sentences) == list(range(40)) and {len(c) for _, c in sentences.values()} == {6}
    for sent_id, (_, candidates) in runs["ppl-mbr"].items():  # the same candidates, in another order
        assert sorted(runs["bleu-mbr"][sent_id][1], key=lambda c: c[1]) == sorted(candidates, key=lambda c: c[1])

    models, _ = checkpoint_utils.load_model_ensemble([str(reranker_checkpoint)])
    reranker, dictionary = models[0].eval(), Dictionary.load(str(databin / "dict.en.txt"))
    score = {
        "logprob": lambda source, texts: [s for s, _ in texts],
        "ppl-mbr": lambda source, texts: [reranker_mean_log_prob(reranker, dictionary, source, t) for _, t in texts],
        "bleu-mbr": lambda source, texts: original_bleu_mbr([t for _, t in texts]),
    }
    chosen = {}
    for selection, sentences in runs.items():
        for sent_id, (source, candidates) in sentences.items():
            values = score[selection](source, candidates)
            assert values[0] == pytest.approx(max(values), abs=1e-4), (selection, sent_id, candidates)
            chosen[selection, sent_id] = candidates[0][1]
    # On some sentences each MBR option picks a candidate the other one scores strictly lower.
    for selection, other in (("ppl-mbr", "bleu-mbr"), ("bleu-mbr", "ppl-mbr")):
        differ = 0
        for sent_id, (source, candidates) in runs[other].items():
            values = score[other](source, candidates)
            picked = [v for v, (_, text) in zip(values, candidates) if text == chosen[selection, sent_id]]
            differ += max(picked) < max(values) - 1e-4
        assert differ >= 3, (selection, other)


def test_retain_iter_history_and_steps(databin, difformer_checkpoint):
    out = generate(databin, difformer_checkpoint, "--decoding-steps", "5", "--decoding-early-stopping", "1",
                   "--retain-iter-history", "--print-step").stdout
    assert set(re.findall(r"^I-\d+\t(\d+)", out, re.M)) == {"4"}
    history = re.findall(r"^E-(\d+)_(\d+)\t", out, re.M)
    assert {step for _, step in history} == {"0", "1", "2", "3"}
    assert len(history) == 40 * 4


def test_interactive_raw_input_with_empty_and_overlong_lines(databin, difformer_checkpoint, multi30k_bpe):
    lines = (multi30k_bpe / "test.de").read_text().splitlines()[:3]
    overlong = " ".join(["hund"] * 300)
    stdin = "\n".join([lines[0], "", overlong, lines[1]]) + "\n"
    proc = run_cli(
        "fairseq-interactive", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--path", difformer_checkpoint, "--cpu", "--source-lang", "de", "--target-lang", "en",
        "--buffer-size", "4", "--batch-size", "4", "--max-source-positions", "128",
        "--decoding-steps", "4", input=stdin,
    )
    assert len(re.findall(r"^H-\d+\t", proc.stdout, re.M)) == 4
    assert "truncated to --max-source-positions 128" in proc.stderr


def test_interactive_raw_text_with_moses_and_subword_nmt(databin, difformer_checkpoint, multi30k_bpe):
    """Raw cased sentences in: S- is the source lowercased, Moses-tokenised and BPE'd as the
    training data; H- the hypothesis in BPE tokens; D- the same with BPE removed and
    detokenised; one of each per input line."""
    raw = ["Ein Hund rennt über die Wiese.", "Zwei Männer stehen am Herd, ein Kind schaut zu.",
           "Eine Frau liest ein Buch."]
    proc = run_cli(
        "fairseq-interactive", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--path", difformer_checkpoint, "--cpu", "--source-lang", "de", "--target-lang", "en",
        "--tokenizer", "moses_lowercase", "--moses-no-dash-splits", "--bpe", "subword_nmt",
        "--bpe-codes", multi30k_bpe / "codes", "--decoding-steps", "3", "--buffer-size", "3",
        "--batch-size", "2", input="\n".join(raw) + "\n",
    )
    source = dict(re.findall(r"^S-(\d+)\t(.*)$", proc.stdout, re.M))
    hypothesis = dict(re.findall(r"^H-(\d+)\t\S+\t(.*)$", proc.stdout, re.M))
    detokenised = dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", proc.stdout, re.M))
    assert sorted(source) == sorted(hypothesis) == sorted(detokenised) == ["0", "1", "2"]
    german = MosesTokenizer("de")
    for i, sentence in enumerate(raw):
        assert "<unk>" not in source[str(i)]
        assert source[str(i)].replace("@@ ", "") == german.tokenize(sentence, return_str=True).lower()
        words = (hypothesis[str(i)] + " ").replace("@@ ", "").split()
        assert detokenised[str(i)] == MosesDetokenizer("en").detokenize(words) and "@@" not in detokenised[str(i)]


def test_interactive_subword_nmt_without_codes_is_explained(databin, difformer_checkpoint):
    proc = run_cli(
        "fairseq-interactive", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--path", difformer_checkpoint, "--cpu", "--source-lang", "de", "--target-lang", "en",
        "--tokenizer", "moses", "--bpe", "subword_nmt", input="Ein Hund.\n", check=False,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "error: --bpe subword_nmt needs --bpe-codes CODES" in proc.stderr


def event_scalars(folder):
    """{tag: [(step, value), …]} of the scalars in the TensorBoard event files of ``folder``.

    Event files are TFRecord files: per record a little-endian uint64 length, its CRC (4 bytes),
    the serialised ``Event`` protocol buffer and its CRC (4 bytes)."""
    try:
        from tensorboardX.proto.event_pb2 import Event
    except ImportError:
        from tensorboard.compat.proto.event_pb2 import Event
    scalars = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        data, pos = open(path, "rb").read(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.mark.skipif(
    progress_bar.SummaryWriter is None,
    reason="fairseq's --tensorboard-logdir needs tensorboardX (pip install tensorboardX) or tensorboard; "
           "neither is installed",
)
def test_tensorboard_logdir_records_the_criterion_terms(difformer_checkpoint):
    """The fixture trains 4 updates with --tensorboard-logdir: fairseq writes train_inner (every
    update), train (the epoch) and valid, each with the criterion's terms."""
    logdir = difformer_checkpoint.parent / "tensorboard"
    splits = {split: event_scalars(logdir / split) for split in ("train_inner", "train", "valid")}
    for split, scalars in splits.items():
        for term in ("loss", "nll_loss", "mse", "anchor", "length", "ppl"):
            assert term in scalars and all(math.isfinite(v) for _, v in scalars[term]), (split, term)
    per_update = splits["train_inner"]
    assert [step for step, _ in per_update["loss"]] == [1, 2, 3, 4]
    # loss = mse + anchor + 0.1 · length (the criterion's defaults), each logged rounded to 3 places.
    for (_, loss), (_, mse), (_, anchor), (_, length) in zip(
            *(per_update[term] for term in ("loss", "mse", "anchor", "length"))):
        assert loss == pytest.approx(mse + anchor + 0.1 * length, abs=0.01)
    assert "lr" in per_update and "gnorm" in per_update


@pytest.mark.parametrize("tool", ["fairseq-train", "fairseq-generate"])
def test_a_missing_or_wrong_data_bin_is_one_line(tmp_path, tool, difformer_checkpoint):
    extra = (["--arch", "difformer_small", "--criterion", "difformer", "--max-tokens", "1024",
              "--save-dir", tmp_path / "ckpt"]
             if tool == "fairseq-train" else ["--path", difformer_checkpoint])
    missing = run_in_process(tool, tmp_path / "no-such-bin", "--user-dir", USER_DIR, "--task", "difformer",
                             "--cpu", *extra)
    assert missing.returncode != 0
    assert missing.stderr.startswith(f"{tool}: error: data-bin {tmp_path / 'no-such-bin'} not found"), missing.stderr
    (tmp_path / "text").mkdir()
    wrong = run_in_process(tool, tmp_path / "text", "--user-dir", USER_DIR, "--task", "difformer", "--cpu", *extra)
    assert wrong.returncode != 0
    assert wrong.stderr.startswith(f"{tool}: error: {tmp_path / 'text'} holds no dict.*.txt"), wrong.stderr


def test_a_split_the_data_bin_lacks_names_the_commands_flag(databin, tmp_path):
    proc = train_difformer(databin, tmp_path, 1, "--valid-subset", "valid2", in_process=True)
    assert proc.stderr.startswith(f"fairseq-train: error: --valid-subset valid2: the data-bin {databin} holds no "
                                  f"valid2 split of de-en; its splits are test, train, valid"), proc.stderr[-3000:]
    proc = train_difformer(databin, tmp_path, 1, "--train-subset", "train2", in_process=True)
    assert proc.stderr.startswith(f"fairseq-train: error: --train-subset train2: "), proc.stderr[-3000:]


def test_reranker_dictionary_mismatch_is_explained(databin, difformer_checkpoint, other_dict_reranker):
    proc = generate(databin, f"{difformer_checkpoint}:{other_dict_reranker}", "--ppl-mbr", check=False)
    assert proc.returncode != 0
    assert "reranker (second --path) checkpoint was trained with a dictionary of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_checkpoint_on_another_dictionary_is_explained(databin, other_dict_reranker, difformer_checkpoint):
    proc = run_cli(
        "fairseq-generate", other_dict_reranker.parent.parent / "bin", "--user-dir", USER_DIR,
        "--task", "difformer", "--path", difformer_checkpoint, "--gen-subset", "train", "--cpu", check=False,
    )
    assert proc.returncode != 0
    assert "Difformer model checkpoint was trained with a dictionary of" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_non_difformer_first_checkpoint_is_explained(databin, difformer_checkpoint, reranker_checkpoint):
    proc = generate(databin, f"{reranker_checkpoint}:{difformer_checkpoint}", check=False)
    assert proc.returncode != 0
    assert "not a Difformer model" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--decoding-steps", "5", "--decoding-early-stopping", "5"], "--decoding-early-stopping (5)"),
    (["--length-beam-size", "0"], "--length-beam-size and --noise-beam-size must be ≥ 1"),
    (["--decoding-steps", "0"], "--decoding-steps must be between 1"),
    (["--decoding-rescaling-factor", "0.5"], "--decoding-rescaling-factor must be ≥ 1"),
    (["--ppl-mbr"], "--ppl-mbr reranks with an autoregressive Transformer"),
])
def test_bad_decoding_options_are_explained(databin, difformer_checkpoint, flags, message):
    proc = generate(databin, difformer_checkpoint, *flags, in_process=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith("fairseq-generate: error: ") and message in proc.stderr, proc.stderr[-3000:]


def test_a_bad_option_is_one_line_from_the_real_commands(databin, difformer_checkpoint, tmp_path):
    """The error hook in real processes: one line, no traceback (the tests above check the
    messages in-process)."""
    proc = generate(databin, difformer_checkpoint, "--decoding-steps", "0", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("fairseq-generate: error: --decoding-steps must be")
    proc = train_difformer(databin, tmp_path, 1, "--rescaling-factor", "0.5", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("fairseq-train: error: --rescaling-factor must be ≥ 1")


@pytest.mark.parametrize("flags, message", [
    (["--rescaling-factor", "0.5"], "--rescaling-factor must be ≥ 1"),
    (["--diffusion-steps", "0"], "--diffusion-steps must be at least 1"),
    (["--fp16"], "--fp16 needs a CUDA GPU, and this run is on the CPU (--cpu): drop --fp16"),
    (["--bf16"], "--bf16 needs a CUDA GPU"),
    (["--amp"], "--amp needs a CUDA GPU"),
    (["--no-scale-embedding"], "--no-scale-embedding is not supported"),
])
def test_bad_training_options_are_explained(databin, tmp_path, flags, message):
    proc = train_difformer(databin, tmp_path, 1, *flags, in_process=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith("fairseq-train: error: ") and message in proc.stderr, proc.stderr[-3000:]


def test_shared_embeddings_need_a_joined_dictionary(databin_separate_dicts, tmp_path):
    proc = train_difformer(databin_separate_dicts, tmp_path, 1, in_process=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith("fairseq-train: error: --share-all-embeddings needs one joined dictionary")
    assert "--joined-dictionary" in proc.stderr


def test_two_worker_data_parallel_training_with_eval_bleu(databin, tmp_path):
    """fairseq's own data-parallel path (gloo, one process per rank, as on CPU machines)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = []
    for rank in (0, 1):
        args = [shutil.which("fairseq-train"), str(databin), "--user-dir", USER_DIR, "--task", "difformer",
                "--criterion", "difformer", *TINY_ARCH, *TRAIN_COMMON, "--max-update", "3",
                "--save-dir", str(tmp_path), "--eval-bleu", "--eval-bleu-remove-bpe",
                "--eval-bleu-args", '{"decoding_steps": 3}', "--max-valid-steps", "2",
                "--distributed-backend", "gloo", "--distributed-world-size", "2",
                "--distributed-rank", str(rank), "--distributed-init-method", f"tcp://127.0.0.1:{port}",
                "--distributed-no-spawn", "--device-id", "0", "--ddp-backend", "legacy_ddp"]
        ranks.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, "PYTHONWARNINGS": "ignore"}))
    logs = [p.communicate(timeout=300)[0] for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert re.search(r"valid on 'valid' subset \|.* bleu [\d.]+", logs[0])
    assert "distributed init (rank 0)" in logs[0] and "distributed init (rank 1)" in logs[1]
    assert (tmp_path / "checkpoint_last.pt").exists()


@pytest.fixture(scope="module")
def sets_of_3_and_461(databin, multi30k_bpe, tmp_path_factory):
    """Data-bins whose test sets hold 3 and 461 sentences (not multiples of 8), same dictionary."""
    from conftest import MULTI30K, preprocess

    bins = {}
    for n in (3, 461):
        work = tmp_path_factory.mktemp(f"test{n}")
        for lang in ("de", "en"):
            lines = (MULTI30K / f"test_2016_flickr.{lang}").read_text(encoding="utf-8").splitlines()[:n]
            (work / f"raw.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
            with open(work / f"test.{lang}", "w") as out:
                subprocess.run(["subword-nmt", "apply-bpe", "-c", multi30k_bpe / "codes"],
                               stdin=open(work / f"raw.{lang}"), stdout=out, check=True)
        bins[n] = preprocess(work, {"test": work / "test"}, "de", "en",
                             extra=["--srcdict", databin / "dict.de.txt"])
    return bins


@pytest.mark.parametrize("batching", [["--batch-size", "64"], ["--batch-size", "100"], ["--max-tokens", "4096"]])
def test_every_test_sentence_is_decoded(sets_of_3_and_461, difformer_checkpoint, batching):
    """fairseq 0.12.3 drops the last n mod 8 sentences of a split (--required-batch-size-multiple
    8, the default) and fails on fewer than 8; --task difformer decodes them all."""
    for n, databin in sets_of_3_and_461.items():
        out = run_cli("fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer",
                      "--path", difformer_checkpoint, "--gen-subset", "test", "--cpu",
                      "--decoding-steps", "2", *batching).stdout
        assert sorted(hypotheses(out)) == list(range(n)), n


def test_prefix_and_constraints_are_refused(databin, difformer_checkpoint, multi30k_bpe):
    """fairseq's own NAT generator refuses them too: a forced prefix or constraint would be ignored."""
    proc = generate(databin, difformer_checkpoint, "--prefix-size", "1", check=False)
    line = (multi30k_bpe / "test.de").read_text().splitlines()[0]
    interactive = run_cli(
        "fairseq-interactive", databin, "--user-dir", USER_DIR, "--task", "difformer",
        "--path", difformer_checkpoint, "--cpu", "--source-lang", "de", "--target-lang", "en",
        "--constraints", input=f"{line}\tmann\n", check=False,
    )
    for p in (proc, interactive):
        assert p.returncode != 0
        assert "supports neither --prefix-size nor --constraints" in p.stderr and "Traceback" not in p.stderr
