"""Let torch ≥ 2.6 load fairseq checkpoints with its default ``weights_only=True``.

fairseq checkpoints pickle a few plain Python objects beside the tensors (the training
``argparse.Namespace``, config enums, numpy scalars in the metrics state). Rather than turning
the weights-only check off for the whole process, the exact classes fairseq writes are added to
torch's allow-list; every other class is still refused.
"""

import argparse
import collections

import numpy as np
import torch


def fairseq_checkpoint_globals():
    """The non-tensor classes found in fairseq 0.12 training checkpoints."""
    return [
        argparse.Namespace,
        collections.defaultdict,
        np.dtype,
        type(np.dtype(np.float64)),
        np.core.multiarray.scalar if hasattr(np, "core") else np._core.multiarray.scalar,
    ]


def allow_fairseq_checkpoints():
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 loads fairseq checkpoints as it is
        add_safe_globals(fairseq_checkpoint_globals())
