"""One line for errors fairseq raises from deep inside that the user can fix (the explainers
:func:`difformer_core.errors.install_excepthook` consults):

- a checkpoint fairseq cannot read, in every fairseq tool that loads one from ``--path``
  (``fairseq-generate``, ``fairseq-interactive``, ``fairseq-validate``, a reranker after the ``:``
  of ``--path``): the file, and what is wrong with it, instead of torch's unpickling traceback
  from inside fairseq's ``checkpoint_utils``;
- ``fairseq-train`` without a batch size: fairseq's bare ``AssertionError``.

The traceback says where the error was raised (which fairseq function), never what it was given:
the files are the command's ``--path`` (:func:`command_line_paths`), the one place fairseq takes
them from. A checkpoint fairseq loads from elsewhere is checked where that happens (the training
run's --restore-file and --finetune-from-model in :mod:`.training_run`, --init-from-ar in
:mod:`.models.ar_init`, the hub in :mod:`.models.hub_interface`).
"""

import argparse
import os
import sys
import traceback

from fairseq import utils

from difformer_core.checkpoints import checkpoint_problem

_CHECKPOINT_UTILS = os.path.join("fairseq", "checkpoint_utils.py")
_TRAIN = os.path.join("fairseq_cli", "train.py")
_ADVICE = "copy it again, or give another checkpoint of the training (checkpoint_best.pt, checkpoint_last.pt, …)"


def command_line_paths(argv=None):
    """The checkpoint files of the command's ``--path`` (``A.pt[:B.pt…]``, as fairseq splits it)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--path")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return utils.split_paths(known.path) if known.path else []


def explain_unreadable_checkpoint(exc, tb):
    """The message for ``exc`` raised while fairseq read the files of ``--path`` (in
    ``load_checkpoint_to_cpu``, or ``load_model_ensemble_and_task``'s "Model file not found"),
    naming the first of them that does not load and why; else None."""
    loaders = {frame.f_code.co_name for frame, _ in traceback.walk_tb(tb)
               if frame.f_code.co_filename.endswith(_CHECKPOINT_UTILS)}
    reading = "load_checkpoint_to_cpu" in loaders
    not_found = ("load_model_ensemble_and_task" in loaders and isinstance(exc, OSError)
                 and str(exc).startswith("Model file not found"))
    paths = command_line_paths() if reading or not_found else []
    for path in paths:
        problem = checkpoint_problem(path)
        if problem == "no such file":
            return f"checkpoint {path} not found (--path)"
        if problem is not None:
            return f"checkpoint {path} does not load: {problem}; {_ADVICE}"
    if not (reading and paths):
        return None
    # Every file is a readable fairseq checkpoint: what fairseq needs from one is missing.
    what = f"checkpoint {paths[0]}" if len(paths) == 1 else f"one of the checkpoints {':'.join(paths)} (--path)"
    return (f"{what} does not load: its content is not what fairseq expects "
            f"({type(exc).__name__}: {str(exc)[:120]}); {_ADVICE}")


def explain_missing_batch_size(exc, tb):
    """fairseq-train's assertion that --max-tokens or --batch-size is given."""
    if isinstance(exc, AssertionError) and "Must specify batch size" in str(exc):
        if any(frame.f_code.co_filename.endswith(_TRAIN) for frame, _ in traceback.walk_tb(tb)):
            return ("give a batch size: --max-tokens N (tokens per batch, e.g. 4096 on a GPU, 1024 on a "
                    "CPU) or --batch-size N (sentences per batch)")
    return None
