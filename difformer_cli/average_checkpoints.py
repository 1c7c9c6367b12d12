"""``difformer-average-checkpoints``: average the weights of several fairseq checkpoints.

Picks checkpoints from a fairseq save dir (the N latest, ``--num-last``, or the N best by the
validation metric fairseq recorded, ``--num-best``) or takes the files given, and writes one
checkpoint whose floating-point parameters are their mean. Everything else (integer buffers,
cfg/args, extra_state) comes from the newest of them; the optimizer state is dropped. The result
loads like any checkpoint, e.g. with ``fairseq-generate --path``.
"""

import argparse
import os
import re
from pathlib import Path
from typing import NamedTuple, Optional

from difformer_core.errors import DifformerError

UPDATE_CHECKPOINT = re.compile(r"checkpoint_(\d+)_(\d+)\.pt")  # --save-interval-updates
EPOCH_CHECKPOINT = re.compile(r"checkpoint(\d+)\.pt")
KEEP_BEST_CHECKPOINT = re.compile(r"checkpoint\.best_.*\.pt")  # --keep-best-checkpoints
ALIASES = ("checkpoint_last.pt", "checkpoint_best.pt")  # copies of one of the above


def load_checkpoint(path):
    """A checkpoint's state dict, on CPU, exactly as fairseq saved it."""
    import torch

    from difformer_core.checkpoints import allow_fairseq_checkpoints, checkpoint_problem

    allow_fairseq_checkpoints()
    try:
        state = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise DifformerError(f"{path}: no such file") from None
    except Exception as exc:  # corrupt, truncated or not a torch file: say which file and how
        problem = checkpoint_problem(path) or f"{type(exc).__name__}: {exc}"
        raise DifformerError(f"checkpoint {path} does not load: {problem}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise DifformerError(f"{path} has no 'model' state dict: not a fairseq checkpoint")
    return state


def num_updates(state):
    """The update count fairseq recorded in the checkpoint, or None."""
    history = state.get("optimizer_history") or [{}]
    return history[-1].get("num_updates")


def checkpoint_option(state, name, default):
    """A ``--checkpoint`` option from the checkpoint's cfg (dict or DictConfig) or old ``args``."""
    cfg = state.get("cfg")
    if cfg is not None:
        section = cfg.get("checkpoint") or {}
        return section.get(name, default)
    return getattr(state.get("args"), name, default)


def validation_metric(state):
    """(value, name, maximize) of --best-checkpoint-metric for this checkpoint; value may be None."""
    value = (state.get("extra_state") or {}).get("val_loss")
    name = checkpoint_option(state, "best_checkpoint_metric", "loss")
    maximize = bool(checkpoint_option(state, "maximize_best_checkpoint_metric", False))
    return (None if value is None else float(value)), name, maximize


def last_checkpoints(directory, n):
    """The n latest checkpoints of a save dir, oldest first: by update count when fairseq wrote
    ``checkpoint_<epoch>_<updates>.pt`` files, else ``checkpoint<epoch>.pt`` by epoch."""
    by_updates = [(int(m.group(2)), p) for p in directory.iterdir()
                  if (m := UPDATE_CHECKPOINT.fullmatch(p.name))]
    by_epoch = [(int(m.group(1)), p) for p in directory.iterdir()
                if (m := EPOCH_CHECKPOINT.fullmatch(p.name))]
    found = sorted(by_updates or by_epoch)
    if not found:
        raise DifformerError(
            f"no checkpoints found in {directory}: --num-last needs checkpoint<epoch>.pt or "
            "checkpoint_<epoch>_<updates>.pt files (trained with --no-epoch-checkpoints?)"
        )
    if len(found) < n:
        kind = "update" if by_updates else "epoch"
        raise DifformerError(
            f"--num-last {n}: {directory} holds only {len(found)} {kind} checkpoint(s); "
            f"use --num-last {len(found)}"
        )
    return [path for _, path in found[-n:]]


def _candidate_rank(path):
    """Sort key putting named checkpoints before the last/best copies they duplicate; None for
    files that are no fairseq checkpoint (e.g. an earlier average)."""
    name = path.name
    for rank, pattern in enumerate((UPDATE_CHECKPOINT, EPOCH_CHECKPOINT, KEEP_BEST_CHECKPOINT)):
        if pattern.fullmatch(name):
            return rank, name
    return (3, name) if name in ALIASES else None


class Scored(NamedTuple):
    path: Path
    value: float
    updates: Optional[int]
    metric: str
    maximize: bool


def scored_checkpoints(directory):
    """The distinct checkpoints of a save dir that carry a validation metric, as :class:`Scored`,
    and the number of those that carry none.

    A checkpoint.best_*.pt, checkpoint_best.pt or checkpoint_last.pt with the update count of a
    checkpoint already seen is a copy of it and skipped."""
    candidates = sorted((p for p in directory.iterdir() if _candidate_rank(p)), key=_candidate_rank)
    if not candidates:
        raise DifformerError(f"no checkpoints found in {directory}")
    seen, scored, unscored = set(), [], 0
    for path in candidates:
        state = load_checkpoint(path)
        updates = num_updates(state)
        if _candidate_rank(path)[0] >= 2 and updates is not None and updates in seen:
            continue  # a copy of a checkpoint already scored
        seen.add(updates)
        value, metric, maximize = validation_metric(state)
        if value is None:
            unscored += 1
        else:
            scored.append(Scored(path, value, updates, metric, maximize))
    return scored, unscored


def best_checkpoints(directory, n):
    """The n best checkpoints of a save dir by their recorded validation metric, best first (on a
    tie the newer first), as (path, value) pairs, plus the metric's name."""
    scored, unscored = scored_checkpoints(directory)
    if not scored:
        raise DifformerError(
            f"--num-best: none of the {unscored} checkpoint(s) in {directory} carries a validation "
            "metric (trained with --disable-validation?); use --num-last instead"
        )
    mixed = next((s for s in scored if s.maximize != scored[0].maximize), None)
    if mixed:
        raise DifformerError(
            f"{scored[0].path} and {mixed.path} disagree on --maximize-best-checkpoint-metric: "
            "were they trained with different --best-checkpoint-metric?"
        )
    if len(scored) < n:
        without = f" ({unscored} more without one)" if unscored else ""
        raise DifformerError(
            f"--num-best {n}: {directory} holds only {len(scored)} checkpoint(s) with a validation "
            f"metric{without}; use --num-best {len(scored)}"
        )
    sign = -1 if scored[0].maximize else 1
    ranked = sorted(scored, key=lambda s: (sign * s.value, -(s.updates or 0)))
    return [(s.path, s.value) for s in ranked[:n]], scored[0].metric


def parameter_layout(model):
    """{name: (shape, is floating point)} of a model state dict, to compare checkpoints by."""
    return {key: (tuple(t.shape), t.is_floating_point()) for key, t in model.items()}


def check_compatible(reference, reference_path, model, path):
    """Raise naming the first parameter that differs in name, shape or float-ness, and both files."""
    layout = parameter_layout(model)
    for key, (shape, is_float) in reference.items():
        if key not in layout:
            raise DifformerError(f"{reference_path} has parameter {key!r} but {path} has not")
        if layout[key] != (shape, is_float):
            kinds = {True: "float", False: "non-float"}
            raise DifformerError(
                f"parameter {key!r} is {kinds[is_float]} {list(shape)} in {reference_path} but "
                f"{kinds[layout[key][1]]} {list(layout[key][0])} in {path}"
            )
    extra = next((key for key in layout if key not in reference), None)
    if extra is not None:
        raise DifformerError(f"{path} has parameter {extra!r} but {reference_path} has not")


def average_checkpoints(paths):
    """The state of the newest checkpoint (most updates; on a tie the later one listed) with the
    mean of all checkpoints' floating-point parameters and without optimizer state.

    Checkpoints are read one at a time; sums are kept in float64."""
    import torch

    sums, first, newest, newest_key = None, None, None, None
    for position, path in enumerate(paths):
        state = load_checkpoint(path)
        model = state["model"]
        if sums is None:
            first = (parameter_layout(model), path)
            sums = {k: v.to(torch.float64, copy=True) for k, v in model.items() if v.is_floating_point()}
        else:
            check_compatible(*first, model, path)
            for key, total in sums.items():
                total += model[key].to(torch.float64)
        key = (num_updates(state) or -1, position)
        if newest is None or key > newest_key:
            newest, newest_key = state, key
    model = newest["model"]  # updated in place: keeps its type and torch's version metadata
    for key, total in sums.items():
        model[key] = (total / len(paths)).to(model[key].dtype)
    newest.pop("last_optimizer_state", None)
    return newest


def save_atomic(state, output):
    """torch.save to a temporary file beside ``output``, then rename it over ``output``."""
    import torch

    tmp = output.with_name(output.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_parser():
    parser = argparse.ArgumentParser(
        prog="difformer-average-checkpoints",
        description="Average the parameters of several fairseq checkpoints into one (optimizer "
                    "state dropped; the rest taken from the newest checkpoint).",
    )
    parser.add_argument("--inputs", nargs="+", required=True, metavar="PATH",
                        help="a fairseq save dir (with --num-last or --num-best), or the checkpoint "
                             "files to average")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--num-last", type=int, metavar="N",
                      help="average the N latest checkpoints of the save dir: "
                           "checkpoint_<epoch>_<updates>.pt by update count if there are any "
                           "(--save-interval-updates), else checkpoint<epoch>.pt by epoch")
    pick.add_argument("--num-best", type=int, metavar="N",
                      help="average the N checkpoints with the best validation value of "
                           "--best-checkpoint-metric as recorded in each checkpoint (direction "
                           "from --maximize-best-checkpoint-metric), checkpoint.best_*.pt included")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="the averaged checkpoint (written to FILE.tmp, then renamed)")
    return parser


def select_checkpoints(args):
    """The checkpoint files to average, as (path, metric value or None) pairs, and the metric name."""
    inputs = [Path(p) for p in args.inputs]
    n = args.num_last or args.num_best
    if len(inputs) == 1 and inputs[0].is_dir():
        if n is None:
            raise DifformerError(f"--inputs {inputs[0]} is a directory: add --num-last N or --num-best N")
        if args.num_last:
            return [(p, None) for p in last_checkpoints(inputs[0], n)], None
        return best_checkpoints(inputs[0], n)
    if n is not None:
        raise DifformerError("--num-last/--num-best pick from a save dir: give --inputs DIR")
    for path in inputs:
        if path.is_dir():
            raise DifformerError(f"--inputs {path} is a directory: give one directory or only files")
        if not path.is_file():
            raise DifformerError(f"{path}: no such file")
    return [(p, None) for p in inputs], None


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("num_last", "num_best"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    output = Path(args.output)
    if not output.parent.is_dir():
        parser.error(f"--output {output}: folder {output.parent} does not exist")
    try:
        selected, metric = select_checkpoints(args)
        state = average_checkpoints([path for path, _ in selected])
    except DifformerError as exc:
        parser.error(str(exc))
    print(f"averaging {len(selected)} checkpoint(s):")
    for path, value in selected:
        print(f"  {path}" + (f"  ({metric} {value:g})" if value is not None else ""))
    try:
        save_atomic(state, output)
    except OSError as exc:
        parser.error(f"cannot write {output}: {exc.strerror or exc}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
