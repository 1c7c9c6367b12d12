"""The Difformer on ONNX Runtime (fairseq_difformer/engine/): the exported graphs decode the words
the eager model decodes, int8 keeps its BLEU, and the serving path (EngineTranslator,
difformer-translate, the hub's engine) with its errors."""

import os

import pytest
import torch
from conftest import run_cli
from sacrebleu.metrics import BLEU

pytest.importorskip("onnxruntime")

import fairseq_difformer  # noqa: F401,E402
from difformer_core.checkpoints import allow_fairseq_checkpoints  # noqa: E402
from difformer_core.decoding import DecodingConfig  # noqa: E402
from difformer_core.errors import DifformerError  # noqa: E402
from fairseq import checkpoint_utils  # noqa: E402
from fairseq_difformer.engine import serving  # noqa: E402
from fairseq_difformer.engine.export import export, is_current  # noqa: E402
from fairseq_difformer.engine.runtime import EngineModel  # noqa: E402
from fairseq_difformer.generator import DifformerGenerator  # noqa: E402


def load(checkpoint, databin):
    allow_fairseq_checkpoints()
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides={"data": str(databin)})
    task.load_dataset("test")
    return models[0].eval(), task


def batches_of(task, size):
    """The test split in fairseq's batches of ``size`` sentences (the last one shorter)."""
    dataset = task.dataset("test")
    return list(task.get_batch_iterator(dataset, max_sentences=size).next_epoch_itr(shuffle=False))


def decode_both(model, engine, task, config, batch_size):
    """Every test batch decoded by the eager model and by the engine from the same seed:
    [(eager hypotheses, engine hypotheses)] per sentence, all candidates each."""
    eager = DifformerGenerator(model, task.target_dictionary, config)
    on_engine = DifformerGenerator(engine, task.target_dictionary, config)
    pairs = []
    for number, sample in enumerate(batches_of(task, batch_size)):
        torch.manual_seed(number)
        expected = eager.generate([model], sample)
        torch.manual_seed(number)
        pairs += zip(expected, on_engine.generate([engine], sample))
    return pairs


@pytest.fixture(scope="module")
def tiny(difformer_checkpoint, databin, tmp_path_factory):
    model, task = load(difformer_checkpoint, databin)
    folder = export(model, tmp_path_factory.mktemp("engine") / "tiny.onnx", int8=True,
                    checkpoint=difformer_checkpoint, databin=databin, languages=("de", "en"))
    return model, task, folder


@pytest.mark.parametrize("length_beam, noise_beam", [(1, 1), (3, 2)])
def test_float32_engine_decodes_the_eager_models_words(tiny, length_beam, noise_beam):
    model, task, folder = tiny
    engine = EngineModel(folder, precision="float32")
    config = DecodingConfig(steps=5, early_stopping=1, length_offset=2, precision="model",
                            length_beam=length_beam, noise_beam=noise_beam)
    pairs = decode_both(model, engine, task, config, batch_size=13)
    assert len(pairs) == len(task.dataset("test"))
    for expected, got in pairs:
        assert [h["tokens"].tolist() for h in got] == [h["tokens"].tolist() for h in expected]
        for a, b in zip(expected, got):
            assert torch.allclose(a["positional_scores"], b["positional_scores"], atol=1e-4)


def test_int8_engine_keeps_the_eager_int8_bleu(learned_synthetic, synthetic_databin, tmp_path):
    model, task = load(learned_synthetic, synthetic_databin)
    folder = export(model, tmp_path / "engine", int8=True, checkpoint=learned_synthetic)
    engine = EngineModel(folder, precision="int8")
    config = DecodingConfig(steps=5, early_stopping=1, length_offset=2, precision="int8")
    pairs = decode_both(model, engine, task, config, batch_size=100)
    # fairseq's batches are in length order: the references follow each sample's ids.
    ids = [int(i) for sample in batches_of(task, 100) for i in sample["id"]]
    references = [task.target_dictionary.string(task.dataset("test")[i]["target"]) for i in ids]

    def bleu(index):
        hyps = [task.target_dictionary.string(pair[index][0]["tokens"]) for pair in pairs]
        return BLEU(tokenize="none").corpus_score(hyps, [references]).score

    eager_bleu, engine_bleu = bleu(0), bleu(1)
    print(f"int8 BLEU: eager {eager_bleu:.2f}, engine {engine_bleu:.2f}")
    assert eager_bleu > 50
    assert abs(engine_bleu - eager_bleu) <= 0.1


def test_engine_folder_is_exported_again_when_the_checkpoint_changes(difformer_checkpoint, databin, tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(difformer_checkpoint.read_bytes())
    folder = serving.build_engine_folder(checkpoint, databin)
    assert folder == tmp_path / "model.pt.onnx" and is_current(folder, checkpoint)
    first = (folder / "engine.json").stat().st_mtime_ns
    assert serving.build_engine_folder(checkpoint, databin) == folder
    assert (folder / "engine.json").stat().st_mtime_ns == first  # reused
    os.utime(checkpoint, ns=(first + 10 ** 9, first + 10 ** 9))
    assert not is_current(folder, checkpoint)
    serving.build_engine_folder(checkpoint, databin)
    assert is_current(folder, checkpoint)


def test_translator_keeps_input_order_and_decodes_every_sentence(tiny, databin, multi30k_bpe, difformer_checkpoint):
    model, task, folder = tiny
    translator = serving.EngineTranslator.load(difformer_checkpoint, databin, engine_folder=folder,
                                               options={"length_beam_size": 2})
    lines = (multi30k_bpe / "test.de").read_text().splitlines()[:25]
    together = translator.translate(lines, batch_size=7, input_format="bpe", output_format="bpe")
    assert len(together) == 25
    # A batch decodes under its own seed: alone, the first batch's sentences decode the same.
    first_batch = sorted(range(25), key=lambda i: (len(translator.text.encode(lines[i], "bpe")), i))[:7]
    alone = translator.translate([lines[i] for i in first_batch], batch_size=7, input_format="bpe",
                                 output_format="bpe")
    assert alone == [together[i] for i in first_batch]
    # Each batch draws from its own generator: batches decoded at once on threads give the same words.
    assert translator.translate(lines, batch_size=7, input_format="bpe", output_format="bpe", streams=3) == together
    with pytest.raises(DifformerError, match="records no preprocessing"):
        translator.translate(["Ein Hund."], input_format="raw")
    with pytest.raises(DifformerError, match="unknown decoding option decoding_stepz"):
        serving.default_config(decoding_stepz=3)


def test_difformer_translate_file_to_file(tiny, databin, multi30k_bpe, difformer_checkpoint, tmp_path):
    _, _, folder = tiny
    checkpoint = tmp_path / "model.pt"  # its own engine folder, exported by the command
    checkpoint.write_bytes(difformer_checkpoint.read_bytes())
    source = tmp_path / "in.bpe"
    source.write_text("\n".join((multi30k_bpe / "test.de").read_text().splitlines()[:12]) + "\n")
    out = tmp_path / "out.txt"
    proc = run_cli("difformer-translate", checkpoint, "--data-bin", databin, "--input", source, "--output", out,
                   "--input-format", "bpe", "--batch-size", "5", "--decoding-steps", "4")
    assert len(out.read_text().splitlines()) == 12
    assert "12 sentences in" in proc.stderr and (tmp_path / "model.pt.onnx" / "engine.json").exists()


def test_difformer_translate_errors_are_one_line(databin, difformer_checkpoint, tmp_path, capsys):
    from difformer_cli import translate

    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ein Hund\nüber\n".encode("latin-1"))
    for argv, message in [
        (["--input", str(tmp_path / "nope.txt")], "--input"),
        (["--input", str(bad), "--input-format", "bpe"], "line 2, column 1: byte 0xfc"),
        (["--ppl-mbr"], "give it with --reranker"),
        (["--decoding-steps", "0"], "--decoding-steps must be between 1"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            translate.main([str(difformer_checkpoint), "--data-bin", str(databin), *argv])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_hub_translates_on_the_engine(difformer_checkpoint, databin, multi30k_bpe):
    from fairseq_difformer import DifformerModel

    hub = DifformerModel.from_pretrained(str(difformer_checkpoint.parent), checkpoint_file=difformer_checkpoint.name,
                                         data_name_or_path=str(databin), bpe_codes=str(multi30k_bpe / "codes"),
                                         engine="onnxruntime")
    assert isinstance(hub.engine, EngineModel) and hub.engine.engine_precision == "int8"
    outputs = hub.translate(["Ein Hund rennt über die Wiese.", "Zwei Männer."], length_beam_size=3, noise_beam_size=2)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    with pytest.raises(DifformerError, match="engine='tensorrt'"):
        DifformerModel.from_pretrained(str(difformer_checkpoint.parent), checkpoint_file=difformer_checkpoint.name,
                                       data_name_or_path=str(databin), engine="tensorrt")
