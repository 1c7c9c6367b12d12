"""The AR Transformer on CTranslate2: a fairseq translation checkpoint converted once (cached
beside it), then translating with beam search (distillation) and scoring given targets token by
token (reranking).

CTranslate2 runs the same network as fairseq (``ctranslate2.converters.FairseqConverter``): the
source gets </s> appended, the decoder starts from </s>, and scores are natural-log
probabilities. Its vocabulary is the data-bin's dictionary in the dictionary's order, with
``<pad>`` named ``<blank>``; ``<s>``, ``</s>``, ``<unk>`` and fairseq-preprocess's madeupwordNNNN
fillers keep their names. Tokens travel as these strings (:func:`vocabulary`), so an id maps to
a string and back unchanged.

ctranslate2 is optional (``pip install 'fairseq-difformer[ctranslate2]'``) and imported only
where a function needs it.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from fairseq.data import data_utils

from difformer_core.checkpoints import allow_fairseq_checkpoints, mapped_state
from difformer_core.errors import DifformerError
from difformer_core.locks import remove_dead_temporaries, temporary_beside

INSTALL = "pip install 'fairseq-difformer[ctranslate2]' (or ctranslate2)"

#: the weight types a model is converted to (``--ct2-quantization``), each run as that compute type
QUANTIZATIONS = {
    "int8": "int8 weights and matrix products, float32 elsewhere (CTranslate2's int8_float32)",
    "float32": "the fairseq model's own float32 weights and products",
}

#: the file of a converted model's folder that records what it was converted from
SOURCE_RECORD = "converted_from.json"

#: sentences per CTranslate2 batch (translation and scoring)
BATCH_SIZE = 64


def import_ctranslate2(needed_for="the AR model on CTranslate2"):
    """The ctranslate2 module, or a :class:`DifformerError` saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise DifformerError(f"{needed_for} needs CTranslate2: {INSTALL}") from None
    return ctranslate2


def installed() -> bool:
    """Whether ctranslate2 imports."""
    try:
        import_ctranslate2()
    except DifformerError:
        return False
    return True


def vocabulary(dictionary):
    """The token strings of a CTranslate2 model converted with ``dictionary``, by id: its symbols,
    ``<pad>`` as ``<blank>`` (FairseqConverter's name for it)."""
    return ["<blank>" if i == dictionary.pad() else symbol for i, symbol in enumerate(dictionary.symbols)]


def model_dir(checkpoint, quantization) -> Path:
    """Where the CTranslate2 model of ``checkpoint`` is kept: ``<stem>.ct2-<quantization>/``
    beside it (``checkpoint_best.pt`` → ``checkpoint_best.ct2-int8/``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.ct2-{quantization}")


def source_record(checkpoint, databin, quantization, source_lang, target_lang) -> dict:
    """What a converted model is made from: the checkpoint file (path, size, modification time),
    the dictionaries' contents (SHA-256), the quantization and the CTranslate2 version."""
    stat = Path(checkpoint).stat()
    dictionaries = hashlib.sha256()
    for lang in (source_lang, target_lang):
        dictionaries.update((Path(databin) / f"dict.{lang}.txt").read_bytes())
    return {
        "checkpoint": str(Path(checkpoint).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "dictionaries_sha256": dictionaries.hexdigest(), "quantization": quantization,
        "ctranslate2": import_ctranslate2().__version__,
    }


def recorded_source(folder: Path):
    """The record of a converted model's folder, or None (no folder, or an unreadable record)."""
    try:
        return json.loads((folder / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return None


def convert(checkpoint, databin, quantization="int8", source_lang=None, target_lang=None) -> Path:
    """The CTranslate2 model of the fairseq translation ``checkpoint`` (a Transformer trained on
    ``databin``'s dictionaries), quantized as ``quantization`` (a key of :data:`QUANTIZATIONS`).

    Converted by ``ctranslate2.converters.FairseqConverter`` into :func:`model_dir`, and reused
    while the checkpoint's size and modification time, the dictionaries and the CTranslate2
    version are the recorded ones. A conversion goes into a temporary folder renamed into place,
    so no reader sees a half-written model. source_lang / target_lang default to the
    checkpoint's own, else to those of the data-bin's file names."""
    ctranslate2 = import_ctranslate2(f"converting {checkpoint} for CTranslate2")
    if quantization not in QUANTIZATIONS:
        raise DifformerError(f"--ct2-quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    checkpoint, databin = Path(checkpoint), Path(databin)
    if not checkpoint.is_file():
        raise DifformerError(f"checkpoint {checkpoint} not found")
    source_lang, target_lang = languages(checkpoint, databin, source_lang, target_lang)
    for lang in (source_lang, target_lang):
        if not (databin / f"dict.{lang}.txt").is_file():
            raise DifformerError(f"{databin}/dict.{lang}.txt not found: give the data-bin {checkpoint} was trained on")
    folder = model_dir(checkpoint, quantization)
    wanted = source_record(checkpoint, databin, quantization, source_lang, target_lang)
    if recorded_source(folder) == wanted:
        return folder
    if not os.access(folder.parent, os.W_OK):
        raise DifformerError(
            f"the CTranslate2 model of {checkpoint} is kept beside it, and {folder.parent} is not writable: "
            f"copy the checkpoint to a writable folder"
        )
    remove_dead_temporaries(folder)
    staging = temporary_beside(folder)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        allow_fairseq_checkpoints()  # the converter reads the checkpoint with torch's weights_only load
        converter = ctranslate2.converters.FairseqConverter(
            str(checkpoint), str(databin), source_lang=source_lang, target_lang=target_lang)
        try:
            # The converter builds a fairseq model, whose initialisation would draw from the
            # random generator the decoding's noise comes from.
            with torch.random.fork_rng(devices=[]):
                converter.convert(str(staging), quantization=quantization, force=True)
        except (ValueError, NotImplementedError) as exc:  # the converter's "option X is not supported"
            raise DifformerError(
                f"{checkpoint} does not convert to CTranslate2 ({' '.join(str(exc).split())}): "
                f"use the fairseq engine (difformer-distill --engine fairseq, --reranker-engine fairseq)"
            ) from None
        (staging / SOURCE_RECORD).write_text(json.dumps(wanted, indent=1))
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def languages(checkpoint: Path, databin: Path, source_lang, target_lang):
    """The given languages, else those the checkpoint's training configuration records, else
    those of the data-bin's file names (as fairseq's translation task infers them)."""
    if source_lang and target_lang:
        return source_lang, target_lang
    state = mapped_state(checkpoint)
    args = state.get("args") or (state.get("cfg") or {}).get("task") or {}
    get = args.get if isinstance(args, dict) else lambda name: getattr(args, name, None)
    source_lang, target_lang = source_lang or get("source_lang"), target_lang or get("target_lang")
    if not (source_lang and target_lang):
        source_lang, target_lang = data_utils.infer_language_pair(str(databin))
    if not (source_lang and target_lang):
        raise DifformerError(f"neither {checkpoint} nor {databin} names the language pair: pass --source-lang "
                             f"and --target-lang")
    return source_lang, target_lang


def replace_folder(staging: Path, folder: Path):
    """Put ``staging`` at ``folder`` by renames; an older ``folder`` is moved aside first and
    removed. Where another process put its own conversion there in between, that one stays."""
    if folder.exists():
        aside = temporary_beside(folder, "-old")
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        try:
            folder.rename(aside / folder.name)
        except FileNotFoundError:
            pass
        shutil.rmtree(aside, ignore_errors=True)
    try:
        staging.rename(folder)
    except OSError:  # a concurrent conversion finished first: the same model
        if not folder.is_dir():
            raise


def compute_types():
    """The compute types CTranslate2 runs on this CPU (e.g. float32, int8, int8_float32)."""
    return set(import_ctranslate2().get_supported_compute_types("cpu"))


def translator(folder, inter_threads=None, intra_threads=1):
    """A ``ctranslate2.Translator`` on the CPU for the converted model in ``folder``, computing in
    the type it was converted to.

    inter_threads: batches translated at once, each by its own model replica (default: one per
    CPU core this process may use); intra_threads: the threads of one batch, 1 by default: for
    small models CTranslate2's documentation advises one thread per batch and the parallelism
    across batches."""
    ctranslate2 = import_ctranslate2()
    record = recorded_source(Path(folder))
    if record is None:
        raise DifformerError(f"{folder} is not a CTranslate2 model made by convert() (no {SOURCE_RECORD})")
    compute_type = record["quantization"]
    if compute_type not in compute_types():
        raise DifformerError(
            f"CTranslate2 runs {', '.join(sorted(compute_types()))} on this CPU, not "
            f"{record['quantization']}: choose another --ct2-quantization"
        )
    torch_threads = torch.get_num_threads()
    translator = ctranslate2.Translator(str(folder), device="cpu", compute_type=compute_type,
                                        inter_threads=inter_threads or len(os.sched_getaffinity(0)),
                                        intra_threads=intra_threads)
    # Making it sets the calling thread's OpenMP thread count to intra_threads, which PyTorch's
    # operations in this thread would use from then on (the Difformer's decoding, with a reranker).
    torch.set_num_threads(torch_threads)
    return translator


def length_limit(source_length, max_len_a, max_len_b):
    """The most tokens a translation of a source of ``source_length`` tokens may have, as
    fairseq-generate's ``--max-len-a/b``: int(a · (|x| + 1) + b), |x| + 1 counting the source's
    </s> as fairseq's source length does; at least 1."""
    return max(1, int(max_len_a * (source_length + 1) + max_len_b))


def batches_by_limit(token_lists, max_len_a, max_len_b, max_batch_size):
    """The sentence indices in batches of at most ``max_batch_size``, each batch of one length
    limit (:func:`length_limit`): sorted by length, so a batch pads little. Yields (indices, limit)."""
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
    batch, limit = [], None
    for i in order:
        sentence_limit = length_limit(len(token_lists[i]), max_len_a, max_len_b)
        if batch and (sentence_limit != limit or len(batch) == max_batch_size):
            yield batch, limit
            batch = []
        batch.append(i)
        limit = sentence_limit
    if batch:
        yield batch, limit


def translate(translator, token_lists, beam=5, max_len_a=1.2, max_len_b=10, max_batch_size=BATCH_SIZE):
    """The best beam-search translation of each source, in input order: BPE token strings in
    (without </s>), BPE token strings out (without </s>).

    Each translation has at most :func:`length_limit` tokens; ``<blank>`` (fairseq's pad, which
    fairseq's beam search never picks) is never chosen. All batches are queued at once
    (asynchronous), so each of the translator's ``inter_threads`` replicas always has one. A
    source with no token is translated as nothing (CTranslate2 returns an empty translation)."""
    pending = []
    for indices, limit in batches_by_limit(token_lists, max_len_a, max_len_b, max_batch_size):
        results = translator.translate_batch(
            [token_lists[i] for i in indices], beam_size=beam, num_hypotheses=1, max_decoding_length=limit,
            suppress_sequences=[["<blank>"]], asynchronous=True)
        pending.append((indices, results))
    translations = [None] * len(token_lists)
    for indices, results in pending:
        for i, result in zip(indices, results):
            translations[i] = result.result().hypotheses[0]
    return translations


def score(translator, source_token_lists, target_token_lists, max_batch_size=BATCH_SIZE):
    """log p(y_i | y_<i, x) of each given target token and of the </s> that ends it, per target,
    in input order (``Translator.score_batch``). Sources and targets are BPE token strings
    without </s>; the batches are sorted by length and run on the translator's replicas at once."""
    results = translator.score_batch(source_token_lists, target_token_lists, max_batch_size=max_batch_size)
    return [result.log_probs for result in results]
