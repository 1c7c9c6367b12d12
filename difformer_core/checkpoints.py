"""Let torch ≥ 2.6 load fairseq checkpoints with its default ``weights_only=True``.

fairseq checkpoints pickle a few plain objects beside the tensors: the training
``argparse.Namespace`` and numpy arrays and scalars in the metrics state (e.g. ``--eval-bleu``'s
n-gram counts). Rather than turning the weights-only check off for the whole process, exactly
these classes are added to torch's allow-list; every other global is still refused.

:func:`checkpoint_problem` says why a file does not load as a checkpoint, in a phrase that an
error line can carry with the file's name.
"""

import argparse
import os
import zipfile

import numpy as np
import torch

_numpy_core = getattr(np, "_core", None) or np.core  # numpy ≥ 2 renamed numpy.core


def fairseq_checkpoint_globals():
    """The globals found in fairseq 0.12 checkpoints, under both numpy 1 and numpy 2 names."""
    allowed = [argparse.Namespace, np.ndarray, np.dtype]
    for name in ("_reconstruct", "scalar"):
        fn = getattr(_numpy_core.multiarray, name)
        allowed += [(fn, f"numpy.core.multiarray.{name}"), (fn, f"numpy._core.multiarray.{name}")]
    # numpy ≥ 1.25 pickles a dtype through its class, e.g. numpy.dtypes.Float64DType.
    allowed += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)]
    return allowed


def allow_fairseq_checkpoints():
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # older torch loads everything unchecked anyway
        add_safe_globals(fairseq_checkpoint_globals())


def checkpoint_problem(path):
    """Why ``path`` does not load as a checkpoint (a short phrase), or None when it does.

    torch writes checkpoints as zip files: a truncated one starts as a zip and has no end (its
    central directory), and every member's CRC-32 is checked (``ZipFile.testzip``); then the
    pickle is read (tensors mapped, not read) with the checks fairseq's loading makes."""
    if not os.path.isfile(path):
        return "no such file"
    allow_fairseq_checkpoints()
    size = os.path.getsize(path)
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        starts_as_zip = f.read(4) == b"PK\x03\x04"
    is_zip = zipfile.is_zipfile(path)
    if starts_as_zip and not is_zip:
        return f"it is truncated ({size} bytes: a torch zip archive without its end)"
    try:
        if is_zip:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"its member {bad} fails its CRC check"
            state = torch.load(path, map_location="cpu", mmap=True)
        else:  # torch's legacy format has no zip container to check
            state = torch.load(path, map_location="cpu")
    except Exception as exc:  # not torch, unpicklable: all say the file is unusable
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "no detail"
        return f"it is not a torch checkpoint ({type(exc).__name__}: {detail})"
    if not isinstance(state, dict) or "model" not in state:
        return "it holds no model weights (not a fairseq checkpoint)"
    return None


def mapped_state(path):
    """A loadable checkpoint's state, its tensors memory-mapped rather than read (zip format)."""
    allow_fairseq_checkpoints()
    return torch.load(path, map_location="cpu", mmap=zipfile.is_zipfile(path))


def updates_of(path):
    """The number of updates a loadable fairseq checkpoint was saved at (0 when not recorded)."""
    state = mapped_state(path)
    history = state.get("optimizer_history") or [{}]
    return int(history[-1].get("num_updates", 0))
