"""Let torch ≥ 2.6 load fairseq checkpoints with its default ``weights_only=True``.

fairseq checkpoints pickle a few plain objects beside the tensors: the training
``argparse.Namespace`` and numpy arrays and scalars in the metrics state (e.g. ``--eval-bleu``'s
n-gram counts). Rather than turning the weights-only check off for the whole process, exactly
these classes are added to torch's allow-list; every other global is still refused.
"""

import argparse

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
