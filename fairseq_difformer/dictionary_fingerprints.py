"""Which dictionaries a checkpoint was trained on: a fingerprint recorded in every checkpoint the
plugin's trainings write, and checked wherever a checkpoint meets a data-bin (fairseq-generate,
fairseq-interactive, the hub, a resumed training, the reranker after ``:`` in ``--path``).

    fingerprint = SHA-256 of the dictionary's symbols in order, one per line (fairseq's specials
    and fairseq-preprocess's madeupword padding included), in hex

The model's args carry ``dictionary_fingerprints = {"source" | "target": {"file", "types",
"sha256"}}``. A checkpoint without them (older ones; an AR model of ``--task translation``) is
compared through the dictionaries of the data-bin it records, when that is still there; else a
warning says that only the sizes are compared. Dictionaries of other sizes are left to the
weights' check, which names both sizes.
"""

import hashlib
import logging
import os

from fairseq.data import Dictionary
from fairseq.models import ARCH_MODEL_NAME_REGISTRY
from omegaconf import DictConfig, open_dict

from difformer_core.checkpoints import mapped_state
from difformer_core.errors import DifformerError

from .models.ar_init import ar_dictionary_paths

logger = logging.getLogger(__name__)

RECORD = "dictionary_fingerprints"
SIDES = ("source", "target")


def fingerprint(dictionary: Dictionary) -> str:
    return hashlib.sha256("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()


def describe(dictionary: Dictionary, path) -> dict:
    return {"file": os.path.abspath(path) if path else None, "types": len(dictionary), "sha256": fingerprint(dictionary)}


def record(args, task):
    """Write the task's dictionaries' fingerprints into the model args (saved in every checkpoint)."""
    dictionaries = (task.source_dictionary, task.target_dictionary)
    value = {side: describe(d, f) for side, d, f in zip(SIDES, dictionaries, task.dictionary_files())}
    if isinstance(args, DictConfig):
        with open_dict(args):
            args[RECORD] = value
    else:
        setattr(args, RECORD, value)


def recorded(args, task):
    """The fingerprints ``args`` record, else those of the dictionary files of the data-bin they
    record (None for a side whose file is not here)."""
    value = getattr(args, RECORD, None)
    if value:
        return {side: value.get(side) for side in SIDES}, None
    data, paths = ar_dictionary_paths(args, (task.cfg.source_lang, task.cfg.target_lang))
    if os.path.isfile(os.path.join(data, "dict.txt")) and not any(p and os.path.isfile(p) for p in paths):
        paths = [os.path.join(data, "dict.txt")] * 2  # a monolingual data-bin (--task difformer_lm)
    found = {side: describe(Dictionary.load(p), p) if p and os.path.isfile(p) else None for side, p in zip(SIDES, paths)}
    return found, data


def check(args, task, role):
    """The dictionaries ``args`` (a checkpoint's model args) were trained on are the task's, token
    for token; else one line naming both files."""
    theirs, data = recorded(args, task)
    for side, ours, our_file in zip(SIDES, (task.source_dictionary, task.target_dictionary), task.dictionary_files()):
        entry = theirs.get(side)
        if entry is None:
            logger.warning(
                f"the {role} records no dictionary fingerprint and its data-bin ({data or 'not recorded'}) "
                f"is not here: only the {side} dictionary's size is compared, not its tokens"
            )
            continue
        if entry["types"] != len(ours) or entry["sha256"] == fingerprint(ours):
            continue  # another size: the weights' check names both sizes
        raise DifformerError(
            f"the {role} was trained on the {side} dictionary {entry['file']} (fingerprint "
            f"{entry['sha256'][:12]}), and {our_file} has the same {len(ours)} types but other tokens "
            f"(fingerprint {fingerprint(ours)[:12]}), e.g. other BPE codes: decode with the data-bin the "
            f"model was trained on"
        )


def check_resumed(path, task):
    """The checkpoint a training resumes from was trained on the task's dictionaries."""
    state = mapped_state(path)
    args = (state.get("cfg") or {}).get("model") or state.get("args")
    if args is not None:
        check(args, task, f"checkpoint {path}")


def role_of(args):
    """How the messages name a checkpoint loaded through the task: by its architecture."""
    arch = getattr(args, "arch", None) or getattr(args, "_name", None)
    return "Difformer model" if ARCH_MODEL_NAME_REGISTRY.get(arch, "").startswith("difformer") \
        else "reranker (second --path)"
