"""``DifformerModel.from_pretrained``: a trained Difformer as a Python object that translates raw
text, as fairseq's ``TransformerModel.from_pretrained`` does::

    from fairseq_difformer import DifformerModel
    model = DifformerModel.from_pretrained("checkpoints", data_name_or_path="data-bin",
                                           bpe_codes="data/codes")
    model.translate("Ein Hund rennt über die Wiese.", length_beam_size=3, noise_beam_size=2)

Loading, tokenisation, BPE, batching and putting the outputs back in input order are fairseq's
(``hub_utils.from_pretrained``, ``GeneratorHubInterface``). What differs is decoding: there is no
beam search (the candidates are length_beam_size × noise_beam_size), and the options are the
task's decoding options.
"""

import contextlib
import glob
import logging
from argparse import Namespace
import os
import tarfile
import warnings

import torch
from fairseq import hub_utils
from fairseq.data.encoders import BPE_REGISTRY, TOKENIZER_REGISTRY
from fairseq.models import ARCH_MODEL_NAME_REGISTRY, ARCH_MODEL_REGISTRY
from fairseq.models.nat import FairseqNATModel
from fairseq.models.transformer import TransformerModel
from omegaconf import open_dict

from difformer_core.checkpoints import checkpoint_problem, mapped_state
from difformer_core.decoding import DECODING_OPTIONS, check_option_value
from difformer_core.errors import DifformerError
from difformer_core.text import undecodable

from .. import preprocessing

logger = logging.getLogger(__name__)

# Keyword arguments of translate / sample / generate: the task's decoding options and the
# generation flag build_generator reads.
GENERATION_OPTIONS = DECODING_OPTIONS + ("retain_iter_history",)

# Code files fairseq's from_pretrained takes from the model folder itself (as bpe_codes).
FAIRSEQ_CODE_FILES = ("code", "bpecodes")

# fairseq's loggers that speak on every generate() call (its batching: "creating new batches for
# epoch 1", "reuse_dataloader = True", ...), and the warning torch's DataLoader gives for fairseq's
# pin_memory=True on a machine without an accelerator.
BATCHING_LOGGERS = ("fairseq.tasks.fairseq_task", "fairseq.data.iterators")
PIN_MEMORY_WARNING = "'pin_memory' argument is set as true but no accelerator is found"


class DifformerHubInterface(hub_utils.GeneratorHubInterface):
    """fairseq's generator hub interface, decoding with the Difformer task's options.

    ``translate`` / ``sample`` take a sentence (or a list) of raw text and return the selected
    candidate, BPE removed and detokenised (or a list, in input order). ``generate`` takes
    token tensors (``encode``) and returns fairseq's hypothesis dicts: all L × N candidates of
    each sentence, the selected one first. Decoding options are keyword arguments
    (``GENERATION_OPTIONS``); those not given take the task's values (the checkpoint's, or
    ``from_pretrained``'s overrides).
    """

    #: the ONNX Runtime engine (engine/runtime.py EngineModel) translate / sample decode on, if any
    engine = None

    def translate(self, sentences, verbose=False, **options):
        return self.sample(sentences, verbose=verbose, **options)

    def sample(self, sentences, verbose=False, **options):
        check_sentences(sentences)
        if isinstance(sentences, str):
            return self.sample([sentences], verbose=verbose, **options)[0]
        if self.engine is not None:
            return [self.decode(tokens) for tokens in self._engine_ids([self.encode(s) for s in sentences], options)]
        candidates = self.generate([self.encode(s) for s in sentences], verbose=verbose, **options)
        return [self.decode(hypos[0]["tokens"]) for hypos in candidates]

    def _engine_ids(self, sources, options):
        """The selected ids of each source, decoded on the engine with the task's decoding options
        and ``options`` over them, batched by length without fairseq's data pipeline
        (engine/serving.py ``translate_ids``)."""
        from ..engine.serving import translate_ids

        check_decoding_options(options)
        generator = self.task.build_generator(self.models, Namespace(**options))
        batch_size = self.cfg.dataset.batch_size or 100
        return translate_ids(generator, self.engine, sources, self.src_dict.pad(), self.tgt_dict.eos(),
                             batch_size, self.cfg.common.seed)

    def generate(self, tokenized_sentences, verbose=False, skip_invalid_size_inputs=False,
                 inference_step_args=None, **options):
        check_decoding_options(options)
        if torch.is_tensor(tokenized_sentences) and tokenized_sentences.dim() == 1:
            return self.generate(tokenized_sentences.unsqueeze(0), verbose, skip_invalid_size_inputs,
                                 inference_step_args, **options)[0]
        # fairseq's beam width; the task's build_generator replaces it by L × N.
        with quiet_batching(verbose):
            return super().generate(
                tokenized_sentences, beam=1, verbose=verbose, skip_invalid_size_inputs=skip_invalid_size_inputs,
                inference_step_args=inference_step_args, **options,
            )

    def score(self, sentences, **kwargs):
        raise DifformerError(
            "a Difformer model does not score given target sentences (fairseq's score() forces a "
            "target through an autoregressive decoder): use generate() for the candidates' scores, "
            "or an AR Transformer for likelihoods"
        )


@contextlib.contextmanager
def quiet_batching(verbose=False):
    """A library call is quiet unless asked: fairseq's batching loggers (``BATCHING_LOGGERS``) are
    raised to WARNING and torch's pin_memory warning is ignored for the duration of the block,
    then restored; with ``verbose`` nothing changes."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in BATCHING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PIN_MEMORY_WARNING, category=UserWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def check_sentences(sentences):
    """``translate`` / ``sample`` take a sentence or a list (or tuple) of sentences, each a ``str``;
    anything else (bytes, None, a number, a list holding one) is one line naming what came."""
    if isinstance(sentences, str):
        return check_decodable([sentences])
    if isinstance(sentences, (list, tuple)):
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise DifformerError(
                    f"translate() and sample() take sentences as str; item {i} is {type(sentence).__name__} {sentence!r:.60}"
                    + (" (decode bytes first, e.g. text.decode('utf-8'))" if isinstance(sentence, bytes) else "")
                )
        return check_decodable(sentences)
    raise DifformerError(
        f"translate() and sample() take a sentence (str) or a list of sentences, got {type(sentences).__name__}"
        + (" (decode bytes first, e.g. text.decode('utf-8'))" if isinstance(sentences, bytes) else "")
    )


def check_decodable(sentences):
    """No sentence holds bytes that were not UTF-8 (see :mod:`difformer_core.text`)."""
    for number, sentence in enumerate(sentences, 1):
        found = undecodable(sentence)
        if found is not None:
            raise DifformerError(
                f"sentence {number}, column {found[0]}: {found[1]}; read the text as UTF-8 (or convert it, "
                f"e.g. iconv -f latin1 -t utf-8)"
            )


def check_decoding_options(options):
    """Raise :class:`DifformerError` for a keyword that is not a decoding option, or whose value
    has the wrong type; the ranges are checked where the generator is built."""
    for name, value in options.items():
        if name == "beam":
            raise DifformerError(
                "Difformer has no beam search: it decodes length_beam_size × noise_beam_size "
                "candidates per sentence (e.g. length_beam_size=3, noise_beam_size=2)"
            )
        if name not in GENERATION_OPTIONS:
            raise DifformerError(
                f"unknown decoding option {name}={value!r}; the options are {', '.join(GENERATION_OPTIONS)}"
            )
        if name in DECODING_OPTIONS:
            check_option_value(name, value)
        elif not isinstance(value, bool):  # retain_iter_history
            raise DifformerError(f"decoding option {name}={value!r} must be True or False")


RECORDED = "recorded"  # from_pretrained's default: the preprocessing the data-bin records


def from_pretrained(model_name_or_path, checkpoint_file="checkpoint_best.pt", data_name_or_path=".",
                    tokenizer=RECORDED, bpe=RECORDED, bpe_codes=None, reranker=None,
                    archive_map=None, engine=None, engine_threads=1, **kwargs):
    """Load a Difformer checkpoint with its task and return a :class:`DifformerHubInterface`.

    model_name_or_path: the folder holding ``checkpoint_file`` (or an archive or URL fairseq can
    fetch). data_name_or_path: the data-bin the model was trained on (its ``dict.*.txt``); a
    path starting with '.' is inside the model folder, as in fairseq. tokenizer / bpe: fairseq's
    names (``moses``, ``moses_lowercase`` for lowercased training data, ``subword_nmt``, ...; None
    for none). bpe_codes: the subword-nmt codes of the training data; by default the ``codes``
    file of the model folder, of the data-bin, or of the folder above it (difformer-prepare's
    DESTDIR). reranker: an AR fairseq Transformer trained on the same data-bin that picks the
    candidate (PPL-MBR; as ``--path difformer.pt:transformer.pt``), or True for the AR model the
    Difformer was initialised from (its recorded ``--init-from-ar``). Other keyword arguments
    override the checkpoint's configuration as in fairseq, e.g. ``moses_no_dash_splits=True``,
    ``max_tokens=4096`` or a default decoding option (``decoding_steps=10``). engine:
    ``"onnxruntime"`` decodes ``translate`` / ``sample`` on ONNX Runtime (fairseq_difformer/engine:
    the checkpoint exported to ``<checkpoint>.onnx/`` beside it on first use; int8 graphs unless
    ``decoding_precision="model"``), with ``engine_threads`` intra-op threads; None: PyTorch.
    """
    if engine not in (None, "onnxruntime"):
        raise DifformerError(f"engine={engine!r}: choose 'onnxruntime', or None for PyTorch")
    check_decoding_options({k: v for k, v in kwargs.items() if k in GENERATION_OPTIONS})
    model_dir, data = str(model_name_or_path), str(data_name_or_path)
    record = None
    if os.path.isdir(model_dir):
        for name in checkpoint_file.split(os.pathsep):
            check_checkpoint(model_dir, name)
        first = os.path.join(model_dir, checkpoint_file.split(os.pathsep)[0])
        check_difformer_checkpoint(first, *recorded_model(mapped_state(first)))
        data_dir = os.path.join(model_dir, data) if data.startswith(".") else data
        check_databin(data_dir)
        record = preprocessing.read_record(data_dir)
    tokenizer, bpe = recorded_or_given(tokenizer, bpe, bpe_codes, record, kwargs)
    check_registered("tokenizer", tokenizer, TOKENIZER_REGISTRY)
    check_registered("bpe", bpe, BPE_REGISTRY)
    if os.path.isdir(model_dir):
        if bpe == "subword_nmt":
            recorded_codes = record.get("bpe_codes") if record and bpe_codes is None else None
            bpe_codes = recorded_codes if recorded_codes and os.path.isfile(recorded_codes) else \
                find_bpe_codes(bpe_codes, model_dir, data_dir)
    elif not (archive_map and model_dir in archive_map) and "://" not in model_dir:
        check_archive(model_dir)
    if reranker is True:
        reranker = recorded_ar_model(model_dir, checkpoint_file)
    if reranker is not None:
        if not os.path.isfile(reranker):
            raise DifformerError(f"reranker checkpoint {reranker} not found")
        check_loadable(reranker, "reranker checkpoint")
        check_reranker_checkpoint(reranker, *recorded_model(mapped_state(reranker)))
        checkpoint_file += os.pathsep + os.path.abspath(reranker)

    # Validation-time decoding (--eval-bleu / --eval-rouge) is for training: it would build a
    # generator for each loaded model, the reranker included.
    overrides = {**kwargs, "eval_bleu": False, "eval_rouge": False}
    for name, value in (("tokenizer", tokenizer), ("bpe", bpe), ("bpe_codes", bpe_codes)):
        if value is not None:
            overrides[name] = str(value)
    loaded = hub_utils.from_pretrained(
        model_dir, checkpoint_file, data, archive_map=archive_map, **overrides
    )
    cfg, task = loaded["args"], loaded["task"]
    if not os.path.isdir(model_dir):  # an archive or URL: checked once fairseq has fetched it
        check_difformer_checkpoint(model_dir, *recorded_model({"cfg": cfg}))
    if cfg.tokenizer is not None and "source_lang" in cfg.tokenizer:
        # fairseq's Moses configuration defaults to English; tokenise in the model's languages.
        with open_dict(cfg):
            cfg.tokenizer.source_lang = task.cfg.source_lang
            cfg.tokenizer.target_lang = task.cfg.target_lang
    hub = DifformerHubInterface(cfg, task, loaded["models"])
    if engine is not None:
        hub.engine = load_engine(os.path.join(model_dir, checkpoint_file.split(os.pathsep)[0]), hub, engine_threads)
    return hub


def load_engine(checkpoint, hub, threads):
    """The ONNX Runtime engine of the hub's Difformer (exported beside ``checkpoint`` if needed), in
    int8 unless the task decodes in the model's own precision."""
    from ..engine.runtime import EngineModel
    from ..engine.serving import build_engine_folder

    precision = str(hub.task.cfg.decoding_precision)
    if precision == "bf16":
        raise DifformerError("the ONNX Runtime engine runs int8 or float32 graphs: decoding_precision='int8' "
                             "(or 'auto') or 'model', or engine=None for bf16")
    task = hub.task
    folder = build_engine_folder(checkpoint, task.cfg.data, model=hub.models[0],
                                 languages=(task.cfg.source_lang, task.cfg.target_lang))
    return EngineModel(folder, precision="float32" if precision == "model" else "int8", threads=threads)


def recorded_or_given(tokenizer, bpe, bpe_codes, record, kwargs):
    """from_pretrained's tokenizer and bpe: the given ones (a warning where they differ from the
    record), else the recorded ones, whose tokenizer options join ``kwargs`` unless given there;
    without a record, moses and subword_nmt."""
    if tokenizer == RECORDED:
        tokenizer = record.get("tokenizer") if record else "moses"
        if record:
            for name, value in (record.get("tokenizer_args") or {}).items():
                kwargs.setdefault(name, value)
    elif record:
        preprocessing.warn_if_different("tokenizer", tokenizer, record,
                                        [(k, kwargs.get(k)) for k in record.get("tokenizer_args") or {}])
    if bpe == RECORDED:
        bpe = record.get("bpe") if record else "subword_nmt"
    elif record:
        preprocessing.warn_if_different("bpe", bpe, record)
    if record and bpe_codes is not None and record.get("bpe_codes") and \
            os.path.abspath(bpe_codes) != os.path.abspath(record["bpe_codes"]):
        logger.warning(f"bpe_codes {bpe_codes} is used, and {record['path']} records {record['bpe_codes']}")
    return tokenizer, bpe


def recorded_ar_model(model_dir, checkpoint_file):
    """The ``--init-from-ar`` checkpoint recorded in the model's training configuration."""
    path = os.path.join(model_dir, checkpoint_file.split(os.pathsep)[0])
    if not os.path.isfile(path):
        raise DifformerError(f"reranker=True reads the AR model from the checkpoint, and {path} is not a file")
    model_cfg = torch.load(path, map_location="cpu").get("cfg", {}).get("model")
    recorded = getattr(model_cfg, "init_from_ar", None)
    if not recorded:
        raise DifformerError(
            f"{path} was not trained with --init-from-ar, so it records no AR model: pass reranker=PATH "
            f"(an AR Transformer trained on the same data-bin)"
        )
    return recorded


def recorded_model(state):
    """(arch, task) that a checkpoint's ``state`` records: fairseq 0.12's ``cfg``, or the ``args``
    of older checkpoints."""
    cfg = state.get("cfg")
    model = cfg.get("model") if cfg else state.get("args")
    task = cfg.get("task") if cfg else state.get("args")

    def recorded(options, *names):
        for name in names:
            value = options.get(name) if hasattr(options, "get") else getattr(options, name, None)
            if value:
                return str(value)
        return None

    return recorded(model, "arch", "_name"), recorded(task, "_name", "task")


def is_ar_transformer(arch):
    """Whether ``arch`` is an autoregressive fairseq Transformer (encoder-decoder)."""
    model = ARCH_MODEL_REGISTRY.get(arch)
    return model is not None and issubclass(model, TransformerModel) and not issubclass(model, FairseqNATModel)


def check_difformer_checkpoint(path, arch, task):
    """The checkpoint holds a Difformer model; another fairseq model (e.g. the AR Transformer of
    --task translation, which the hub would otherwise load and translate with) is one line naming
    what it holds and what loads it."""
    if arch not in ARCH_MODEL_NAME_REGISTRY or ARCH_MODEL_NAME_REGISTRY[arch] == "difformer":
        return  # a Difformer, or nothing fairseq knows: fairseq's loading says what is wrong
    holds = f"{path} is not a Difformer model: it holds a fairseq --arch {arch} model of --task {task}"
    if is_ar_transformer(arch):
        raise DifformerError(
            f"{holds} (an autoregressive Transformer): load it with fairseq's TransformerModel.from_pretrained, "
            f"or start a Difformer from it with fairseq-train --task difformer --init-from-ar {path}"
        )
    raise DifformerError(f"{holds}; DifformerModel.from_pretrained loads checkpoints of fairseq-train "
                         f"--task difformer --arch difformer*")


def check_reranker_checkpoint(path, arch, task):
    """The reranker checkpoint holds an autoregressive Transformer, which scores a candidate token
    by token; a Difformer (or another model) is one line naming the file."""
    if arch in ARCH_MODEL_REGISTRY and not is_ar_transformer(arch):
        raise DifformerError(
            f"reranker={path} holds a fairseq --arch {arch} model of --task {task}, not an autoregressive "
            f"Transformer: the reranker must be an autoregressive fairseq Transformer (encoder-decoder; "
            f"fairseq-train --task translation --arch transformer*) trained on the Difformer model's dictionary"
        )


def check_registered(kind, name, registry):
    if name is not None and name not in registry:
        raise DifformerError(f"{kind}={name!r} is not registered; choose one of {', '.join(sorted(registry))} or None")


def check_checkpoint(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.pt")))
        raise DifformerError(
            f"checkpoint {path} not found"
            + (f"; {folder} holds {', '.join(found)} (checkpoint_file=...)" if found else "")
        )
    check_loadable(path)


def check_loadable(path, role="checkpoint"):
    problem = checkpoint_problem(path)
    if problem is not None:
        raise DifformerError(f"{role} {path} does not load: {problem}")


def check_databin(data_dir):
    if not glob.glob(os.path.join(data_dir, "dict.*.txt")):
        raise DifformerError(
            f"{data_dir} is not a fairseq data-bin (no dict.*.txt): pass the data-bin the model was "
            f"trained on as data_name_or_path=..."
        )


def check_archive(model_dir):
    """A local model path that is no folder must be a model archive; the usual mistake is the
    checkpoint's own path."""
    if not os.path.exists(model_dir):
        raise DifformerError(f"model folder {model_dir} not found")
    if not tarfile.is_tarfile(model_dir):
        folder, name = os.path.split(model_dir)
        raise DifformerError(
            f"{model_dir} is a file: from_pretrained takes the folder holding the checkpoint, "
            f"from_pretrained({folder or '.'!r}, checkpoint_file={name!r}, ...)"
        )


def find_bpe_codes(bpe_codes, model_dir, data_dir):
    """The subword-nmt code file: the one given, else the first ``codes`` file found in the model
    folder, the data-bin or the folder above it (where difformer-prepare writes it)."""
    if bpe_codes is not None:
        if not os.path.isfile(bpe_codes):
            raise DifformerError(f"bpe_codes {bpe_codes} not found")
        return str(bpe_codes)
    candidates = [os.path.join(model_dir, name) for name in FAIRSEQ_CODE_FILES + ("codes",)]
    candidates += [os.path.join(data_dir, "codes"), os.path.join(data_dir, os.pardir, "codes")]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise DifformerError(
        "bpe='subword_nmt' needs bpe_codes=PATH, the subword-nmt codes the training data was "
        "segmented with (difformer-prepare writes DESTDIR/codes); bpe=None if the input is already BPE'd"
    )
