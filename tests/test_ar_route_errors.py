"""Where the AR route meets fairseq's own code: an --input file fairseq-interactive reads, an AR
checkpoint given where a Difformer goes (and a Difformer where the AR reranker goes), fairseq-generate's
splits, positions and --beam, and the hub's logging. Each is one line or a correct result."""

import io
import logging
import re
import sys
import warnings

import pytest
import torch
from conftest import USER_DIR, run_cli
from fairseq import options
from fairseq.data import data_utils

from difformer_core.errors import DifformerError
from fairseq_difformer import DifformerModel


def fairseq_generate(databin, path, *flags, argv0="pytest"):
    """fairseq-generate's main in this process (its output in the captured stdout)."""
    from fairseq_cli import generate

    args = [str(databin), "--task", "difformer", "--path", str(path), "--gen-subset", "valid", "--cpu",
            "--batch-size", "64", "--decoding-steps", "2", *map(str, flags)]
    sys_argv = sys.argv
    sys.argv = [argv0, *args]
    try:
        return generate.main(options.parse_args_and_arch(options.get_generation_parser(), args))
    finally:
        sys.argv = sys_argv


def test_an_input_file_is_read_as_stdin_is(databin, difformer_checkpoint, tmp_path, monkeypatch):
    """fairseq reads --input FILE as strict UTF-8 (a UnicodeDecodeError traceback), a missing file
    is a FileNotFoundError traceback, and a byte-order mark makes the first word <unk>."""
    common = [databin, "--user-dir", USER_DIR, "--task", "difformer", "--cpu", "--path", difformer_checkpoint,
              "--buffer-size", "1", "--decoding-steps", "2"]
    text = tmp_path / "input.de"
    text.write_bytes(b"\xef\xbb\xbfein mann .\n" + "ein m\xe4dchen .".encode("latin-1") + b"\n")
    proc = run_cli("fairseq-interactive", *common, "--input", text, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(r"^S-0\tein mann \.$", proc.stdout, re.M), proc.stdout[-2000:]  # translated, no <unk>
    assert proc.stderr.strip().splitlines()[-1] == (
        "fairseq-interactive: error: input line 2, column 6: byte 0xe4, which is not UTF-8; convert the input "
        "to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    proc = run_cli("fairseq-interactive", *common, "--input", tmp_path / "missing.de", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"fairseq-interactive: error: --input {tmp_path / 'missing.de'} cannot be read (no such file): give a "
        f"text file of source sentences, one per line, or --input - to read them from stdin")
    # stdin: the same decoding, its BOM dropped too.
    from fairseq_difformer import interactive_input

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbf a b \nc \xe4\n")))
    assert list(interactive_input.buffered_read("-", 1)) == [["a b"], ["c \udce4"]]


def test_from_pretrained_refuses_an_ar_transformer(reranker_checkpoint, databin):
    """An AR checkpoint was loaded and translated with, as if it were a Difformer."""
    with pytest.raises(DifformerError) as error:
        DifformerModel.from_pretrained(reranker_checkpoint.parent, checkpoint_file=reranker_checkpoint.name,
                                       data_name_or_path=str(databin), bpe=None)
    assert str(error.value) == (
        f"{reranker_checkpoint} is not a Difformer model: it holds a fairseq --arch transformer model of --task "
        f"translation (an autoregressive Transformer): load it with fairseq's TransformerModel.from_pretrained, "
        f"or start a Difformer from it with fairseq-train --task difformer --init-from-ar {reranker_checkpoint}")


def test_a_difformer_as_the_reranker_is_refused(databin, difformer_checkpoint, capsys):
    """It ended in ``TypeError: DifformerDecoder.forward() got an unexpected keyword argument
    'features_only'`` once the first batch was decoded."""
    with pytest.raises(DifformerError) as error:
        fairseq_generate(databin, f"{difformer_checkpoint}:{difformer_checkpoint}", "--ppl-mbr")
    assert str(error.value) == (
        f"the reranker {difformer_checkpoint} (second --path) is a DifformerModel (--arch difformer_small), not an "
        f"autoregressive Transformer: --ppl-mbr reranks with an autoregressive fairseq Transformer "
        f"(encoder-decoder; fairseq-train --task translation --arch transformer*, e.g. the distillation teacher) "
        f"trained on the Difformer model's dictionary")
    with pytest.raises(DifformerError) as error:
        DifformerModel.from_pretrained(difformer_checkpoint.parent, checkpoint_file=difformer_checkpoint.name,
                                       data_name_or_path=str(databin), bpe=None, reranker=str(difformer_checkpoint))
    assert str(error.value).startswith(
        f"reranker={difformer_checkpoint} holds a fairseq --arch difformer_small model of --task difformer, not an "
        f"autoregressive Transformer: the reranker must be an autoregressive fairseq Transformer")


@pytest.fixture(scope="module")
def short_positions_checkpoint(difformer_checkpoint, tmp_path_factory):
    """The Difformer checkpoint as trained with --max-source-positions 12 (learned positions)."""
    state = torch.load(difformer_checkpoint, map_location="cpu")
    state["cfg"]["model"].max_source_positions = 12
    weight = state["model"]["encoder.embed_positions.weight"]
    state["model"]["encoder.embed_positions.weight"] = weight[: 12 + 2]  # padding_idx 1, positions from 2
    path = tmp_path_factory.mktemp("short_positions") / "checkpoint.pt"
    torch.save(state, path)
    return path


def test_a_split_the_data_bin_does_not_hold_is_one_line(databin, difformer_checkpoint):
    """fairseq: ``FileNotFoundError: Dataset not found: nosuch (DATA-BIN)``."""
    with pytest.raises(DifformerError) as error:
        fairseq_generate(databin, difformer_checkpoint, "--gen-subset", "nosuch")
    assert str(error.value) == (
        f"--gen-subset nosuch: the data-bin {databin} holds no nosuch split of de-en; its splits are test, train, "
        f"valid")


def test_sentences_longer_than_the_models_positions_are_one_line_with_the_fixes(
        databin, short_positions_checkpoint, capsys):
    """fairseq: ``Exception: Size of sample #3 is invalid (=(…)) since max_positions=(…)``; the fix
    the line names decodes every sentence."""
    sources = data_utils.load_indexed_dataset(str(databin / "valid.de-en.de"), None)
    sizes = sources.sizes.copy()  # a view of the memory map, which closes with the dataset
    assert (sizes > 12).sum() > 1
    with pytest.raises(DifformerError) as error:
        fairseq_generate(databin, short_positions_checkpoint)
    assert str(error.value) == (
        f"{(sizes > 12).sum()} valid sentences are longer than the model's positions (at most 12 source tokens and "
        f"1024 target tokens): the longest has {sizes.max()} source tokens (sentence {sizes.argmax()}); skip them "
        f"with --skip-invalid-size-inputs-valid-test, or cut the sources to fit with --truncate-source "
        f"--max-source-positions 12")
    capsys.readouterr()
    fairseq_generate(databin, short_positions_checkpoint, "--truncate-source", "--max-source-positions", "12")
    assert len(re.findall(r"^H-\d+\t", capsys.readouterr().out, re.M)) == len(sizes)


def test_beam_is_refused_with_what_difformer_decodes_instead(databin, difformer_checkpoint):
    """fairseq-generate --beam was accepted and ignored; its default (5) is told from a given
    --beam 5 on fairseq's own command line."""
    for flags, argv0 in ((["--beam", "4"], "pytest"), (["--beam", "5"], "fairseq-generate")):
        with pytest.raises(DifformerError) as error:
            fairseq_generate(databin, difformer_checkpoint, *flags, argv0=argv0)
        assert str(error.value) == (
            "--beam: Difformer has no beam search; it decodes --length-beam-size L × --noise-beam-size N "
            "candidates per sentence (e.g. --length-beam-size 3 --noise-beam-size 2) and keeps the most probable, "
            "or with --ppl-mbr the one an AR reranker prefers (--path difformer.pt:transformer.pt): drop --beam")


def test_the_hub_translates_quietly_unless_verbose(databin, difformer_checkpoint, caplog):
    """Each translate() logged fairseq's batching (``creating new batches for epoch 1``, …) and
    torch's pin_memory warning."""
    hub = DifformerModel.from_pretrained(difformer_checkpoint.parent, checkpoint_file=difformer_checkpoint.name,
                                         data_name_or_path=str(databin), bpe=None, tokenizer=None)
    task_logger = logging.getLogger("fairseq.tasks.fairseq_task")
    level = task_logger.level
    caplog.set_level(logging.INFO)
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hub.translate(["ein mann .", "ein hund ."], decoding_steps=2)
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("fairseq.")]
    assert not [str(w.message) for w in caught if "pin_memory" in str(w.message)]
    assert task_logger.level == level
    hub.translate("ein mann .", decoding_steps=2, verbose=True)
    assert "creating new batches for epoch 1" in caplog.text
