"""One line for errors fairseq raises from deep inside that the user can fix (the explainers
:func:`difformer_core.errors.install_excepthook` consults):

- a checkpoint fairseq cannot read, in every tool that loads one through fairseq
  (``fairseq-generate``, ``fairseq-interactive``, ``fairseq-validate``, a reranker after the
  ``:`` of ``--path``, ``difformer-trajectory``): the file, and what is wrong with it, instead of
  torch's unpickling traceback from inside fairseq's ``checkpoint_utils``;
- ``fairseq-train`` without a batch size: fairseq's bare ``AssertionError``.
"""

import os
import traceback

from difformer_core.checkpoints import checkpoint_problem

_CHECKPOINT_UTILS = os.path.join("fairseq", "checkpoint_utils.py")
_TRAIN = os.path.join("fairseq_cli", "train.py")


def explain_unreadable_checkpoint(exc, tb):
    """The message for ``exc`` raised while fairseq loaded a checkpoint file, else None."""
    for frame, _ in traceback.walk_tb(tb):
        code = frame.f_code
        if not code.co_filename.endswith(_CHECKPOINT_UTILS):
            continue
        if code.co_name == "load_checkpoint_to_cpu":
            path = frame.f_locals.get("path")
            problem = checkpoint_problem(path) or (
                f"its content is not what fairseq expects ({type(exc).__name__}: {str(exc)[:120]})"
            )
            return (f"checkpoint {path} does not load: {problem}; copy it again, or give another "
                    f"checkpoint of the training (checkpoint_best.pt, checkpoint_last.pt, …)")
        if code.co_name == "load_model_ensemble_and_task" and isinstance(exc, OSError) \
                and str(exc).startswith("Model file not found"):
            return f"checkpoint {frame.f_locals.get('filename')} not found (--path)"
    return None


def explain_missing_batch_size(exc, tb):
    """fairseq-train's assertion that --max-tokens or --batch-size is given."""
    if isinstance(exc, AssertionError) and "Must specify batch size" in str(exc):
        if any(frame.f_code.co_filename.endswith(_TRAIN) for frame, _ in traceback.walk_tb(tb)):
            return ("give a batch size: --max-tokens N (tokens per batch, e.g. 4096 on a GPU, 1024 on a "
                    "CPU) or --batch-size N (sentences per batch)")
    return None
