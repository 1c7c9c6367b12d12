"""The preprocessing a model's training text went through, as ``difformer-prepare`` records it
in ``DATA-BIN/preprocessing.json``, used by default where raw text meets the model:
``DifformerModel.from_pretrained`` and ``fairseq-interactive``.

    {"tokenizer": "moses_lowercase", "tokenizer_args": {"moses_no_dash_splits": true},
     "lowercase": true, "bpe": "subword_nmt", "bpe_codes": "../codes"}

``bpe_codes`` is relative to the data-bin. Options given explicitly (``--tokenizer``,
``--bpe``, ``--moses-no-dash-splits``; ``tokenizer=``, ``bpe=`` …) win; one that differs from the
record is a warning naming both, since the model then reads text prepared otherwise than its
training data.
"""

import json
import logging
import os
from argparse import Namespace

from omegaconf import DictConfig

from difformer_core.errors import DifformerError

logger = logging.getLogger(__name__)

RECORD_FILE = "preprocessing.json"


def read_record(data_dir):
    """The data-bin's record, or None when it has none (fairseq-preprocess output)."""
    path = os.path.join(data_dir, RECORD_FILE)
    if not os.path.isfile(path):
        return None
    try:
        record = json.loads(open(path, encoding="utf-8").read())
    except ValueError as error:
        raise DifformerError(f"{path} is not JSON ({error}): rewrite it with difformer-prepare, or remove it") from None
    if not isinstance(record, dict):
        raise DifformerError(f"{path} holds no JSON object: rewrite it with difformer-prepare, or remove it")
    record["path"] = path
    codes = record.get("bpe_codes")
    if codes:
        record["bpe_codes"] = os.path.normpath(os.path.join(data_dir, codes))
    return record


def copy_record(source_databin, dest_databin, written_by, published_at=None) -> bool:
    """DEST_DATABIN/preprocessing.json: SOURCE_DATABIN's record, for a data-bin made from it (the
    same raw-text preparation), with ``bpe_codes`` relative to ``published_at``, the folder
    DEST_DATABIN is renamed to once built (default DEST_DATABIN itself). False, and nothing
    written, when SOURCE_DATABIN has no record."""
    record = read_record(source_databin)
    if record is None:
        return False
    record.pop("path")
    if record.get("bpe_codes"):
        record["bpe_codes"] = os.path.relpath(record["bpe_codes"], os.path.abspath(published_at or dest_databin))
    record["written_by"] = written_by
    record["made_from"] = os.path.abspath(source_databin)
    with open(os.path.join(dest_databin, RECORD_FILE), "w", encoding="utf-8") as out:
        out.write(json.dumps(record, indent=2) + "\n")
    return True


def _value(args, name):
    if args is None:
        return None
    if isinstance(args, DictConfig):
        return args.get(name, None)
    return getattr(args, name, None)


def _name(args, kind):
    return _value(args, "_name") or _value(args, kind)


def warn_if_different(kind, given, record, given_options=()):
    """A warning naming the given choice and the recorded one, when they differ; ``given_options``
    are (name, value) of the recorded tokenizer options as given."""
    recorded = record.get(kind)
    if given != recorded:
        logger.warning(f"{kind} {given} is used, and {record['path']} records {recorded}: the model reads "
                       f"text prepared otherwise than its training data")
        return
    for name, value in given_options:
        if value is not None and value != record["tokenizer_args"][name]:
            logger.warning(f"{name}={value} is used, and {record['path']} records {name}="
                           f"{record['tokenizer_args'][name]}")


def interactive_tokenizer(args, record, langs):
    """fairseq-interactive's tokenizer configuration: the one given, else the recorded one."""
    if record is None:
        return args
    name = _name(args, "tokenizer")
    if name is not None:
        warn_if_different("tokenizer", name, record,
                          [(k, _value(args, k)) for k in record.get("tokenizer_args") or {}])
        return args
    if not record.get("tokenizer"):
        return args
    logger.info(f"tokenizer {record['tokenizer']} {record.get('tokenizer_args') or {}}, as {record['path']} records")
    return Namespace(tokenizer=record["tokenizer"], source_lang=langs[0], target_lang=langs[1],
                     **(record.get("tokenizer_args") or {}))


def interactive_bpe(args, record):
    """fairseq-interactive's BPE configuration: the one given, else the recorded one."""
    if record is None:
        return args
    name = _name(args, "bpe")
    if name is not None:
        warn_if_different("bpe", name, record)
        return args
    if not record.get("bpe"):
        return args
    logger.info(f"bpe {record['bpe']} with codes {record.get('bpe_codes')}, as {record['path']} records")
    return Namespace(bpe=record["bpe"], bpe_codes=record.get("bpe_codes"))
