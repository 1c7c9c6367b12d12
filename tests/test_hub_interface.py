"""DifformerModel.from_pretrained(...): raw text in, detokenised text out, from Python."""

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from fairseq import utils
from sacremoses import MosesDetokenizer

from fairseq_difformer import DifformerModel
from difformer_core.decoding import DEFAULT_STEPS
from difformer_core.errors import DifformerError

RAW = "Ein Hund rennt über die Wiese."


def load(difformer_checkpoint, databin, **kwargs):
    # The fixture data are Multi30k's lowercased Moses tokens (dashes not split, HTML-escaped).
    options = dict(checkpoint_file=difformer_checkpoint.name, data_name_or_path=str(databin),
                   tokenizer="moses_lowercase", moses_no_dash_splits=True)
    return DifformerModel.from_pretrained(difformer_checkpoint.parent, **{**options, **kwargs})


@pytest.fixture(scope="module")
def hub(difformer_checkpoint, databin, multi30k_bpe):
    return load(difformer_checkpoint, databin, bpe_codes=str(multi30k_bpe / "codes"))


def spy(monkeypatch, obj, name):
    """Record what ``obj.name`` returns, call by call."""
    calls, original = [], getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs, original(*args, **kwargs)))
        return calls[-1][2]

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def test_raw_text_is_tokenised_lowercased_and_segmented_as_the_training_data(hub):
    tokens = hub.encode(RAW)
    assert hub.src_dict.unk() not in tokens.tolist()
    assert hub.src_dict.string(tokens, "subword_nmt") == "ein hund rennt über die wiese ."
    assert tokens[-1] == hub.src_dict.eos()
    assert "am 3. mai" in hub.tokenize("Er kam am 3. Mai.")  # German rules: "3." is an ordinal


def test_translate_returns_the_selected_candidate_detokenised(hub):
    torch.manual_seed(3)
    text = hub.translate(RAW, length_beam_size=2, noise_beam_size=2, decoding_steps=4)
    torch.manual_seed(3)
    candidates = hub.generate(hub.encode(RAW), length_beam_size=2, noise_beam_size=2, decoding_steps=4)
    words = hub.tgt_dict.string(candidates[0]["tokens"], "subword_nmt").split()
    assert isinstance(text, str) and "@@" not in text
    assert text == MosesDetokenizer("en").detokenize(words)


def test_decode_removes_bpe_and_detokenises(hub, multi30k_bpe):
    line = next(s for s in (multi30k_bpe / "train.en").read_text().splitlines()
                if "@@" in s and " , " in s and s.endswith(" ."))
    text = hub.decode(hub.tgt_dict.encode_line(line, add_if_not_exist=False))
    assert text == MosesDetokenizer("en").detokenize(line.replace("@@ ", "").split())
    assert "@@" not in text and " ," not in text and text.endswith(".") and not text.endswith(" .")


def test_decoding_options_reach_the_generator(hub, monkeypatch):
    built = spy(monkeypatch, hub.task, "build_generator")
    hub.translate(RAW)
    hub.translate(RAW, length_beam_size=3, noise_beam_size=2, decoding_steps=6, decoding_early_stopping=2,
                  clamping=True, decoding_sampler="ddim", decoding_eta=0.5, decoding_precision="bf16")
    default, chosen = (generator.config for _, _, generator in built)
    assert (default.steps, default.noise_beam, default.length_beam, default.sampler, default.precision) == (
        DEFAULT_STEPS, 1, 1, "ddpm", "auto")
    assert (chosen.steps, chosen.early_stopping, chosen.length_beam, chosen.noise_beam, chosen.clamping,
            chosen.sampler, chosen.eta, chosen.precision) == (6, 2, 3, 2, True, "ddim", 0.5, "bf16")

    candidates = hub.generate(hub.encode(RAW), length_beam_size=3, noise_beam_size=2, decoding_steps=6,
                              decoding_early_stopping=2)
    assert len(candidates) == 6 and {c["steps"] for c in candidates} == {4}


def test_a_batch_gives_one_output_per_sentence_in_input_order(hub, monkeypatch):
    sentences = ["Zwei Männer stehen am Herd und bereiten Essen zu, während ein Hund im Garten spielt.",
                 "Ein Hund.", RAW, "", "Eine Frau in einem blauen Hemd steht auf einer Leiter."]
    monkeypatch.setitem(hub.cfg.dataset, "batch_size", 2)  # several batches, each sorted by length
    steps = spy(monkeypatch, hub.task, "inference_step")
    outputs = hub.translate(sentences, decoding_steps=2)

    decoded = {}
    for (_, _, sample), _, hypos in steps:
        for src, candidates in zip(sample["net_input"]["src_tokens"], hypos):
            decoded[tuple(utils.strip_pad(src, hub.src_dict.pad()).tolist())] = hub.decode(candidates[0]["tokens"])
    assert len(steps) == 3 and len(outputs) == len(sentences)
    assert outputs == [decoded[tuple(hub.encode(s).tolist())] for s in sentences]


@pytest.mark.parametrize("options, message", [
    ({"noise_beam": 2}, "unknown decoding option noise_beam=2; the options are decoding_steps"),
    ({"beam": 5}, "no beam search: it decodes length_beam_size × noise_beam_size"),
    ({"decoding_steps": "10"}, "decoding_steps='10' must be an integer"),
    ({"clamping": 1}, "clamping=1 must be True or False"),
    ({"decoding_steps": 0}, "--decoding-steps must be between 1"),
    ({"decoding_steps": 4, "decoding_early_stopping": 4}, "--decoding-early-stopping (4) must be in [0, --decoding-steps)"),
    ({"decoding_noise_schedule": "edm"}, "decoding_noise_schedule='edm': choose one of sqrt, linear, cosine"),
    ({"decoding_sampler": "euler"}, "decoding_sampler='euler': choose one of ddpm, ddim, dpm-solver++"),
    ({"decoding_precision": "fp16"}, "decoding_precision='fp16': choose one of auto, model, bf16, int8"),
    ({"decoding_eta": 0.5}, "--decoding-eta is an option of --decoding-sampler ddim, not of ddpm"),
    ({"decoding_sampler": "ddim", "decoding_eta": -1.0}, "--decoding-eta must be in [0, 1] (got -1.0)"),
    ({"ppl_mbr": True}, "from_pretrained(..., reranker=PATH)"),
])
def test_bad_decoding_options_are_explained_in_one_line(hub, options, message):
    with pytest.raises(DifformerError) as error:
        hub.translate(RAW, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("sentences, message", [
    (b"Ein Hund rennt.", "got bytes (decode bytes first"),
    (None, "got NoneType"),
    (["Ein Hund rennt.", 3], "item 1 is int 3"),
    ([b"Ein Hund rennt."], "item 0 is bytes"),
])
def test_translate_takes_str_or_a_list_of_str_only(hub, sentences, message):
    """Bytes would be iterated one translation per byte, None fail deep inside: one line each."""
    for method in (hub.translate, hub.sample):
        with pytest.raises(DifformerError) as error:
            method(sentences)
        assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(hub.translate(("Ein Hund rennt.",)), list)  # a tuple is a list of sentences


def test_score_is_refused(hub):
    with pytest.raises(DifformerError, match="does not score given target sentences"):
        hub.score(RAW)


def test_bad_from_pretrained_arguments_are_explained(difformer_checkpoint, databin, multi30k_bpe):
    cases = [
        (dict(checkpoint_file="missing.pt"), "missing.pt not found; "),
        (dict(data_name_or_path=str(multi30k_bpe)), "is not a fairseq data-bin (no dict.*.txt)"),
        (dict(bpe_codes=str(multi30k_bpe / "missing-codes")), "missing-codes not found"),
        (dict(tokenizer="mosses"), "tokenizer='mosses' is not registered; choose one of"),
        (dict(reranker=str(multi30k_bpe / "missing.pt")), "reranker checkpoint "),
    ]
    for kwargs, message in cases:
        with pytest.raises(DifformerError, match=re.escape(message)):
            load(difformer_checkpoint, databin, **kwargs)
    with pytest.raises(DifformerError, match="from_pretrained takes the folder holding the checkpoint"):
        DifformerModel.from_pretrained(str(difformer_checkpoint), data_name_or_path=str(databin))


def test_bpe_codes_are_found_beside_the_data_bin_and_a_reranker_picks(
        difformer_checkpoint, databin, reranker_checkpoint, tmp_path, monkeypatch):
    """No bpe_codes: the `codes` of the data-bin's parent folder (difformer-prepare's layout) are
    used. A reranker checkpoint selects by the AR model, also for a model trained with
    --eval-bleu; from_pretrained's decoding_steps is the default of every call."""
    state = torch.load(difformer_checkpoint)
    state["cfg"]["task"]["eval_bleu"] = True
    torch.save(state, tmp_path / "checkpoint_best.pt")
    hub = DifformerModel.from_pretrained(tmp_path, data_name_or_path=str(databin), tokenizer="moses_lowercase",
                                         reranker=str(reranker_checkpoint), decoding_steps=3)
    assert os.path.samefile(hub.cfg.bpe.bpe_codes, databin.parent / "codes")
    assert [type(m).__name__ for m in hub.models] == ["DifformerModel", "TransformerModel"]
    built = spy(monkeypatch, hub.task, "build_generator")
    candidates = hub.generate(hub.encode(RAW), length_beam_size=2, noise_beam_size=2)
    assert built[0][2].config.selection == "reranker"
    assert {c["steps"] for c in candidates} == {3}
    selection = [float(c["selection_score"]) for c in candidates]
    assert selection == sorted(selection, reverse=True)
    assert selection != [float(c["score"]) for c in candidates]


def test_importing_the_model_class_registers_the_plugin_and_errors_print_one_line(difformer_checkpoint, databin):
    """A fresh interpreter with neither --user-dir nor `import fairseq_difformer`: the import of
    the model class is enough to load the checkpoint; an uncaught DifformerError prints one line."""
    folder, data = str(difformer_checkpoint.parent), str(databin)
    script = (
        "from fairseq_difformer.models import DifformerModel\n"
        f"hub = DifformerModel.from_pretrained({folder!r}, checkpoint_file={difformer_checkpoint.name!r}, "
        f"data_name_or_path={data!r}, tokenizer='moses_lowercase')\n"
        f"print('OUTPUT', repr(hub.translate({RAW!r}, decoding_steps=2)))\n"
        f"DifformerModel.from_pretrained({folder!r}, checkpoint_file='missing.pt', data_name_or_path={data!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"})
    assert "OUTPUT '" in proc.stdout, proc.stderr[-3000:]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("-c: error: checkpoint ")
    assert "missing.pt not found" in proc.stderr
