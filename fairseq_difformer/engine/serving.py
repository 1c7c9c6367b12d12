"""Serving a Difformer on ONNX Runtime: raw text in, detokenised text out, with no fairseq data
pipeline (datasets, batch iterators, collaters) on the way.

    translator = EngineTranslator.load("checkpoints/checkpoint_best.pt", "data-bin")
    translator.translate(["Ein Hund rennt über die Wiese."])      # ['a dog is running …']

Per sentence: the data-bin's recorded preprocessing (``preprocessing.json``: Moses tokenisation,
lowercasing, subword-nmt BPE), the dictionary's ids with </s>; then batches of sentences of similar
length, each left-padded as fairseq pads sources and decoded by the eager generator's loop over the
engine's graphs (:class:`~fairseq_difformer.engine.runtime.EngineModel`); the selected candidate's
words, BPE removed and detokenised. Each batch is decoded under its own seed (``seed`` + the batch's
place in the length order), so a sentence's translation depends on its batch, not on what else runs.

The engine folder is exported from the checkpoint on first use (``<checkpoint>.onnx/``, beside it)
and again whenever the checkpoint changes.
"""

import logging
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from difformer_core.checkpoints import allow_fairseq_checkpoints, checkpoint_problem
from difformer_core.decoding import DECODING_OPTIONS, DecodingConfig, DecodingOptions, decoding_config
from difformer_core.errors import DifformerError

from .. import preprocessing
from .export import default_folder, export, is_current, require_onnx
from .runtime import EngineModel

logger = logging.getLogger(__name__)


def build_engine_folder(checkpoint, databin, folder=None, int8=True, model=None, languages=None):
    """The engine folder of ``checkpoint``: reused when it was exported from the checkpoint as it
    is now, else exported from ``model`` (its loaded Difformer, with the data-bin's ``languages``)
    or from the checkpoint loaded with fairseq."""
    folder = Path(folder) if folder else default_folder(checkpoint)
    if is_current(folder, checkpoint):
        return folder
    require_onnx()
    if model is not None:
        logger.info(f"exporting {checkpoint} to the ONNX Runtime engine folder {folder}")
        return export(model, folder, int8=int8, checkpoint=checkpoint, databin=databin, languages=languages)
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise DifformerError(f"checkpoint {checkpoint} does not load: {problem}")
    from fairseq import checkpoint_utils

    allow_fairseq_checkpoints()
    logger.info(f"exporting {checkpoint} to the ONNX Runtime engine folder {folder}")
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides={"data": str(databin)})
    if not hasattr(models[0], "round_to_words"):  # the decoding interface of a Difformer model
        raise DifformerError(f"{checkpoint} holds a {type(models[0]).__name__}, not a Difformer model")
    export(models[0], folder, int8=int8, checkpoint=checkpoint, databin=databin,
           languages=(task.cfg.source_lang, task.cfg.target_lang))
    return folder


class TextPipeline:
    """Raw text ↔ dictionary ids as the data-bin's ``preprocessing.json`` records (fairseq's
    tokenizer and BPE classes, the data-bin's dictionaries)."""

    def __init__(self, databin, languages):
        from fairseq.data import Dictionary, encoders

        from .. import tokenizers  # noqa: F401  (registers moses_lowercase)

        databin = Path(databin)
        source_lang, target_lang = languages
        self.src_dict = Dictionary.load(str(databin / f"dict.{source_lang}.txt"))
        self.tgt_dict = Dictionary.load(str(databin / f"dict.{target_lang}.txt"))
        record = preprocessing.read_record(str(databin))
        #: where the recorded preprocessing is (None: the data-bin records none)
        self.record_path = record["path"] if record else None
        self.tokenizer = self.bpe = None
        if record and record.get("tokenizer"):
            self.tokenizer = encoders.build_tokenizer(Namespace(
                tokenizer=record["tokenizer"], source_lang=source_lang, target_lang=target_lang,
                **(record.get("tokenizer_args") or {})))
        if record and record.get("bpe"):
            self.bpe = encoders.build_bpe(Namespace(bpe=record["bpe"], bpe_codes=record.get("bpe_codes")))
        self.databin = databin

    def encode(self, sentence: str, input_format="raw") -> torch.Tensor:
        """The source ids of a sentence (with </s>): tokenised and BPE'd first unless ``bpe``."""
        if input_format == "raw":
            if self.record_path is None:
                raise DifformerError(
                    f"{self.databin} records no preprocessing (no {preprocessing.RECORD_FILE}), so raw text cannot "
                    f"be tokenised as the training data was: prepare the data with difformer-prepare, or give "
                    f"text in the data-bin's form (--input-format bpe)")
            sentence = sentence.strip()
            if self.tokenizer is not None:
                sentence = self.tokenizer.encode(sentence)
            if self.bpe is not None:
                sentence = self.bpe.encode(sentence)
        return self.src_dict.encode_line(sentence, add_if_not_exist=False, append_eos=True).long()

    def decode(self, tokens: torch.Tensor, output_format="raw") -> str:
        """Words of target ids: BPE removed and detokenised (``raw``), or the BPE'd tokens (``bpe``)."""
        if output_format == "bpe":
            return self.tgt_dict.string(tokens)
        if self.record_path is None:
            return self.tgt_dict.string(tokens)
        text = self.tgt_dict.string(tokens, "@@ " if self.bpe is not None else None)
        return self.tokenizer.decode(text) if self.tokenizer is not None else text


class EngineTranslator:
    """A Difformer on ONNX Runtime with its text pipeline and decoding configuration."""

    def __init__(self, engine: EngineModel, text: TextPipeline, config: DecodingConfig, reranker=None, seed=1):
        from ..generator import DifformerGenerator

        self.engine, self.text, self.config, self.seed = engine, text, config, seed
        model, files = reranker if reranker is not None else (None, None)
        self.generator = DifformerGenerator(engine, text.tgt_dict, config, reranker=model, reranker_files=files)

    @classmethod
    def load(cls, checkpoint, databin, precision="int8", threads=1, options=None, selection="logprob",
             reranker=None, seed=1, engine_folder=None):
        """Export (if needed) and load ``checkpoint``'s engine with the data-bin it was trained on.
        ``options``: decoding options (DecodingOptions fields) over the defaults; ``selection``
        as the generator takes it; ``reranker``: (AR model, its files) from :func:`load_reranker`."""
        config = default_config(selection, **(options or {}))
        folder = build_engine_folder(checkpoint, databin, engine_folder, int8=precision == "int8")
        engine = EngineModel(folder, precision=precision, threads=threads)
        text = TextPipeline(databin, engine.manifest["languages"])
        return cls(engine, text, config, reranker=reranker, seed=seed)

    def translate(self, sentences, batch_size=100, input_format="raw", output_format="raw", streams=1):
        """Translations of ``sentences`` (a list of str), in input order."""
        sources = [self.text.encode(s, input_format) for s in sentences]
        outputs = self.translate_ids(sources, batch_size, streams)
        return [self.text.decode(tokens, output_format) for tokens in outputs]

    def translate_ids(self, sources, batch_size=100, streams=1):
        """The selected candidate's ids (without </s>) for each source (ids ending in </s>), in input
        order, ``streams`` batches at a time (:func:`translate_ids`)."""
        return translate_ids(self.generator, self.engine, sources, self.text.src_dict.pad(),
                             self.text.tgt_dict.eos(), batch_size, self.seed, streams)


def translate_ids(generator, engine, sources, pad, eos, batch_size=100, seed=1, streams=1):
    """Each source (ids ending in </s>) decoded by ``generator`` over ``engine``: the selected
    candidate's ids without </s>, in input order. Sources are batched by length; batch i (in
    length order) draws its noise from its own generator seeded with seed + i, so ``streams``
    threads can decode batches at once (ONNX Runtime runs concurrent calls of one session, each
    on its calling thread) with the outputs of one stream."""
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), i))
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]

    def decode(number):
        rng = torch.Generator().manual_seed(seed + number)
        return generator.generate([engine], source_batch([sources[i] for i in batches[number]], pad), rng=rng)

    if streams > 1:
        with ThreadPoolExecutor(streams) as pool:
            decoded = list(pool.map(decode, range(len(batches))))
    else:
        decoded = [decode(number) for number in range(len(batches))]
    outputs = [None] * len(sources)
    for batch, hypos in zip(batches, decoded):
        for i, candidates in zip(batch, hypos):
            tokens = candidates[0]["tokens"]
            outputs[i] = tokens[:-1] if len(tokens) and tokens[-1] == eos else tokens
    return outputs


def source_batch(sources, pad):
    """fairseq's ``net_input`` of a batch: the sources left-padded (as LanguagePairDataset pads them)."""
    width = max(len(s) for s in sources)
    src_tokens = torch.full((len(sources), width), pad, dtype=torch.long)
    for row, tokens in enumerate(sources):
        src_tokens[row, width - len(tokens):] = tokens
    return {"net_input": {"src_tokens": src_tokens, "src_lengths": torch.tensor([len(s) for s in sources])}}


def decoding_options_of(values):
    """The decoding options among ``values`` (e.g. a command line's), those of the engine's own
    precision left out."""
    return {name: values[name] for name in DECODING_OPTIONS if name in values and name != "decoding_precision"}


def default_config(selection="logprob", **options) -> DecodingConfig:
    """The decoding configuration of the task's decoding options (:class:`DecodingOptions`: the
    default decoding, the model's steps (a step-distilled student's own, else 5 with the last
    skipped), one candidate), ``options`` over them."""
    unknown = set(options) - set(DECODING_OPTIONS)
    if unknown:
        raise DifformerError(f"unknown decoding option {sorted(unknown)[0]}; the options are {', '.join(DECODING_OPTIONS)}")
    values = {**vars(DecodingOptions()), **options}
    return decoding_config(values.__getitem__, selection)


def selection_of(options):
    """How the generator picks a candidate, from the decoding options: --bleu-mbr, --ppl-mbr (an AR
    reranker), else the candidates' own mean log-probability."""
    if options.get("ppl_mbr") and options.get("bleu_mbr"):
        raise DifformerError("--ppl-mbr and --bleu-mbr are two ways to pick a hypothesis: use one")
    return "bleu_mbr" if options.get("bleu_mbr") else "reranker" if options.get("ppl_mbr") else "logprob"


def load_reranker(checkpoint, databin):
    """The AR reranker of --ppl-mbr: ``checkpoint`` (an AR Transformer trained on ``databin``),
    loaded with fairseq, and where it came from (selection.RerankerFiles), as the generator takes
    them; the generator runs it on the engine --reranker-engine names."""
    if checkpoint is None:
        raise DifformerError("--ppl-mbr picks the candidate an AR Transformer finds most likely: give it with "
                             "--reranker AR.pt (trained on the same data-bin)")
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise DifformerError(f"reranker checkpoint {checkpoint} does not load: {problem}")
    from fairseq import checkpoint_utils

    from ..selection import RerankerFiles

    allow_fairseq_checkpoints()
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides={"data": str(databin)})
    files = RerankerFiles(str(checkpoint), str(databin), (task.cfg.source_lang, task.cfg.target_lang))
    return models[0].eval(), files
