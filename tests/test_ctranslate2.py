"""The AR Transformer's roles on CTranslate2 (fairseq_difformer/ctranslate2_ar.py): its scores
against fairseq's token by token, its translations against fairseq-generate's, difformer-distill
--engine ctranslate2 against the fairseq engine, the CTranslate2 reranker against fairseq's, and
the one-line errors without CTranslate2."""

import json
import os
import re
import shutil
import sys
from argparse import Namespace

import pytest
import torch
from conftest import USER_DIR, preprocess, run_cli
from fairseq.data import Dictionary, data_utils
from fairseq.models.transformer import TransformerModel, base_architecture
from test_cli import candidates_by_sentence
from test_distill import sentences
from test_model import DICT, batch
from test_selection import right_padded

import fairseq_difformer  # noqa: F401  (lets torch.load read fairseq checkpoints)
from difformer_cli import distill as distill_cli
from difformer_core.errors import DifformerError
from fairseq_difformer import ctranslate2_ar, preprocessing
from fairseq_difformer.selection import ARReranker, CTranslate2Reranker, build_reranker

SMALL_TRAIN = 203  # 25 · 8 + 3: fairseq-generate would drop the last 3 without --required-batch-size-multiple 1


@pytest.fixture
def ct2():
    return pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def small_databin(multi30k_bpe, databin, tmp_path_factory):
    """The first 203 training pairs and the validation set, binarised with ``databin``'s dictionary
    (so that the conftest's reranker, trained on ``databin``, is their teacher)."""
    work = tmp_path_factory.mktemp("small")
    for lang in ("de", "en"):
        lines = (multi30k_bpe / f"train.{lang}").read_text(encoding="utf-8").splitlines()[:SMALL_TRAIN]
        (work / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    small = preprocess(work, {"train": work / "train", "valid": multi30k_bpe / "valid"}, "de", "en",
                       extra=["--srcdict", databin / "dict.de.txt"])
    shutil.copyfile(multi30k_bpe / "codes", work / "codes")
    (small / "preprocessing.json").write_text(json.dumps(
        {"tokenizer": "moses", "tokenizer_args": {}, "lowercase": False, "bpe": "subword_nmt", "bpe_codes": "../codes"}))
    return small


def split_strings(databin, split, lang, dictionary):
    """The sentences of a binarised split as CTranslate2 token strings, without </s>."""
    vocabulary = ctranslate2_ar.vocabulary(dictionary)
    dataset = data_utils.load_indexed_dataset(str(databin / f"{split}.de-en.{lang}"), dictionary)
    return [[vocabulary[i] for i in dataset[k].tolist()[:-1]] for k in range(len(dataset))]


def test_float32_scores_equal_fairseqs_token_by_token(ct2, databin, reranker_checkpoint):
    """log p(y_i | y_<i, x) of every reference token and its </s> on the 60 validation pairs:
    CTranslate2 in float32 against the fairseq model teacher-forced (log_softmax of its output)."""
    from fairseq import checkpoint_utils

    dictionary = Dictionary.load(str(databin / "dict.en.txt"))
    sources, targets = (split_strings(databin, "valid", lang, dictionary) for lang in ("de", "en"))
    translator = ctranslate2_ar.translator(ctranslate2_ar.convert(reranker_checkpoint, databin, "float32"))
    scores = ctranslate2_ar.score(translator, sources, targets)

    models, _ = checkpoint_utils.load_model_ensemble([str(reranker_checkpoint)])
    model = models[0].eval()
    worst = 0.0
    for source, target, ct2_scores in zip(sources, targets, scores):
        src = torch.tensor([[dictionary.index(t) for t in source] + [dictionary.eos()]])
        tgt = torch.tensor([[dictionary.index(t) for t in target] + [dictionary.eos()]])
        prev = torch.cat([tgt.new_full((1, 1), dictionary.eos()), tgt[:, :-1]], 1)
        with torch.no_grad():
            logits, _ = model(src, torch.tensor([src.size(1)]), prev)
        fairseq_scores = torch.log_softmax(logits.float(), -1).gather(-1, tgt[..., None])[0, :, 0]
        assert len(ct2_scores) == tgt.size(1)  # one per token, </s> included
        worst = max(worst, float((fairseq_scores - torch.tensor(ct2_scores)).abs().max()))
    assert worst < 1e-4, worst


def test_conversion_is_cached_beside_the_checkpoint_and_redone_when_it_changes(ct2, databin, reranker_checkpoint,
                                                                              tmp_path):
    checkpoint = tmp_path / "teacher.pt"
    shutil.copy2(reranker_checkpoint, checkpoint)
    folder = ctranslate2_ar.convert(checkpoint, databin, "int8")
    assert folder == tmp_path / "teacher.ct2-int8" and (folder / "model.bin").is_file()
    assert json.loads((folder / "converted_from.json").read_text())["size"] == checkpoint.stat().st_size
    written = (folder / "model.bin").stat().st_mtime_ns
    assert ctranslate2_ar.convert(checkpoint, databin, "int8") == folder
    assert (folder / "model.bin").stat().st_mtime_ns == written  # reused
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 10 ** 9))
    ctranslate2_ar.convert(checkpoint, databin, "int8")
    assert (folder / "model.bin").stat().st_mtime_ns != written  # the checkpoint changed: converted again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.ct2-int8", "teacher.pt"]  # no staging left
    assert ctranslate2_ar.translator(folder).compute_type == "int8_float32"
    with pytest.raises(DifformerError, match="--ct2-quantization 'int4' is not one of int8, float32"):
        ctranslate2_ar.convert(checkpoint, databin, "int4")


def test_greedy_translations_equal_fairseq_generates(ct2, databin, reranker_checkpoint):
    """Beam 1 in float32 on the test set, each sentence limited to 1.2 · (|x| + 1) + 10 tokens:
    fairseq-generate at batch 1 (so that each sentence gets its own limit, as here) prints the same
    words. The teacher of 3 updates repeats one word, so most translations end at the limit."""
    dictionary = Dictionary.load(str(databin / "dict.en.txt"))
    sources = split_strings(databin, "test", "de", dictionary)
    translator = ctranslate2_ar.translator(ctranslate2_ar.convert(reranker_checkpoint, databin, "float32"))
    ours = ctranslate2_ar.translate(translator, sources, beam=1, max_len_a=1.2, max_len_b=10, max_batch_size=8)
    out = run_cli("fairseq-generate", databin, "--user-dir", USER_DIR, "--path", reranker_checkpoint,
                  "--gen-subset", "test", "--beam", "1", "--max-len-a", "1.2", "--max-len-b", "10",
                  "--batch-size", "1", "--required-batch-size-multiple", "1", "--cpu").stdout
    theirs = {int(i): text for i, text in re.findall(r"^H-(\d+)\t\S+\t(.*)$", out, re.M)}
    assert [" ".join(tokens) for tokens in ours] == [theirs[i] for i in range(len(sources))]
    limits = [ctranslate2_ar.length_limit(len(source), 1.2, 10) for source in sources]
    assert all(len(t) <= limit for t, limit in zip(ours, limits)) and any(len(t) == limit for t, limit in zip(ours, limits))


def test_distill_keeps_every_pair_in_order_and_both_engines_agree(ct2, small_databin, reranker_checkpoint, tmp_path):
    """203 pairs (not a multiple of 8), greedy in float32: each engine's data-bin holds every source
    in its place with DATABIN's dictionary, and the two engines' translations are the same.
    (--max-len-a 0: fairseq-generate limits each batch by its longest source, CTranslate2 each
    sentence by its own; with a = 0 both limits are b.)"""
    common = ["--teacher", reranker_checkpoint, "--beam", "1", "--max-len-a", "0", "--max-len-b", "8", "--cpu"]
    runs = {}
    for engine in ("ctranslate2", "fairseq"):
        proc = run_cli("difformer-distill", small_databin, "--destdir", tmp_path / engine, "--engine", engine,
                       "--ct2-quantization", "float32", *common)
        assert re.search(rf"translated {SMALL_TRAIN} sentences in [\d.]+ s \([\d.]+ sentences/s, {engine}", proc.stdout)
        kd = tmp_path / engine / "bin"
        assert (kd / "dict.en.txt").read_bytes() == (small_databin / "dict.en.txt").read_bytes()
        # raw text given the distilled data-bin is prepared as the original's was
        record, original = preprocessing.read_record(kd), preprocessing.read_record(small_databin)
        assert record["bpe_codes"] == original["bpe_codes"] == str(small_databin.parent / "codes")
        assert {k: record[k] for k in ("tokenizer", "lowercase", "bpe")} == {"tokenizer": "moses", "lowercase": False,
                                                                            "bpe": "subword_nmt"}
        assert sentences(kd, "train", "de") == sentences(small_databin, "train", "de")
        runs[engine] = sentences(kd, "train", "en")
        assert len(runs[engine]) == SMALL_TRAIN
        manifest = json.loads((tmp_path / engine / "manifest.json").read_text())
        assert (manifest["engine"], manifest["ct2_quantization"]) == (engine, "float32" if engine == "ctranslate2" else None)
    assert runs["ctranslate2"] == runs["fairseq"]

    # A rerun asking for the other engine is another distillation; auto keeps the one there.
    other = run_cli("difformer-distill", small_databin, "--destdir", tmp_path / "fairseq", "--engine", "ctranslate2",
                    *common, check=False)
    assert other.returncode == 2 and "engine: fairseq" in other.stderr and "engine: ctranslate2" in other.stderr
    kept = run_cli("difformer-distill", small_databin, "--destdir", tmp_path / "fairseq", *common)
    assert "keeping the distillation made with fairseq" in kept.stdout and "already distilled" in kept.stdout


def test_ppl_mbr_on_ctranslate2_picks_fairseqs_candidates(ct2, databin, difformer_checkpoint, reranker_checkpoint):
    """fairseq-generate --ppl-mbr with 3 × 2 candidates in float32 (--decoding-precision model):
    the same candidates in the same order with either reranker engine; in int8 the CTranslate2
    reranker runs its int8 model (converted beside the checkpoint)."""
    runs = {}
    for engine, precision in (("fairseq", "model"), ("ctranslate2", "model"), ("ctranslate2", "int8")):
        out = run_cli("fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer",
                      "--path", f"{difformer_checkpoint}:{reranker_checkpoint}", "--gen-subset", "test",
                      "--batch-size", "16", "--cpu", "--seed", "1", "--nbest", "6", "--length-beam-size", "3",
                      "--noise-beam-size", "2", "--decoding-precision", precision, "--ppl-mbr",
                      "--reranker-engine", engine).stdout
        runs[engine, precision] = candidates_by_sentence(out)
    fairseq, ct2_float32 = runs["fairseq", "model"], runs["ctranslate2", "model"]
    assert sorted(fairseq) == list(range(40)) and ct2_float32 == fairseq
    assert (reranker_checkpoint.parent / f"{reranker_checkpoint.stem}.ct2-float32").is_dir()
    assert (reranker_checkpoint.parent / f"{reranker_checkpoint.stem}.ct2-int8").is_dir()
    assert sorted(runs["ctranslate2", "int8"]) == list(range(40))


def loaded_ar_model():
    """A small fairseq Transformer on the test dictionary, with the args a checkpoint would give it."""
    args = Namespace(arch="transformer", encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=1,
                     decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                     share_all_embeddings=True, dropout=0.0, max_source_positions=64, max_target_positions=64)
    base_architecture(args)
    torch.manual_seed(1)
    return TransformerModel.build_model(args, Namespace(source_dictionary=DICT, target_dictionary=DICT)).eval()


def test_ctranslate2_reranker_scores_as_the_fairseq_reranker(ct2):
    """The mean log-probability over each candidate's tokens and </s>, of a model that has no
    checkpoint file (as the hub's reranker): saved with its dictionary and converted; float32
    equals fairseq's, int8 is close. A candidate without </s> is scored without it."""
    model = loaded_ar_model()
    src_tokens, src_lengths, _ = batch()
    eos = DICT.eos()
    candidates = right_padded([[11, 12, eos], [11, 12, 13, 14, eos], [15, eos],
                               [16, 17, 18, eos], [19, eos], [20, 21, 22]])
    fairseq = ARReranker(model, DICT).score(src_tokens, src_lengths, candidates, 3)
    reranker = build_reranker("ctranslate2", model, DICT)
    assert isinstance(reranker, CTranslate2Reranker)
    torch.testing.assert_close(reranker.score(src_tokens, src_lengths, candidates, 3), fairseq, atol=1e-5, rtol=0)
    int8 = reranker.score(src_tokens, src_lengths, candidates, 3, int8=True)
    assert int8.dtype == torch.float32 and (int8 - fairseq).abs().max() < 0.1
    assert set(reranker.translators) == {"float32", "int8"}


def test_without_ctranslate2_each_role_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 raises ImportError
    install = "needs CTranslate2: pip install 'fairseq-difformer[ctranslate2]' (or ctranslate2)"
    assert not ctranslate2_ar.installed()
    with pytest.raises(DifformerError, match=re.escape(f"--reranker-engine ctranslate2 {install}")):
        build_reranker("ctranslate2", loaded_ar_model(), DICT)
    with pytest.raises(DifformerError, match=re.escape(install)):
        ctranslate2_ar.convert("teacher.pt", "data-bin")

    assert distill_cli.resolve_engine("auto", cpu=True) == "fairseq"
    assert "engine: fairseq (--engine auto); CTranslate2 translates faster: pip install" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        distill_cli.resolve_engine("ctranslate2", cpu=True)
    assert capsys.readouterr().err.strip() == f"difformer-distill: error: --engine ctranslate2 {install}"


def test_distill_names_the_quantizations_the_module_converts():
    assert distill_cli.CT2_QUANTIZATIONS == tuple(ctranslate2_ar.QUANTIZATIONS)
