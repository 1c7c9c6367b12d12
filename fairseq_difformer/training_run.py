"""A training run's save dir: one run at a time, checkpoints written whole or not at all, and a
resume only from a checkpoint that loads.

fairseq 0.12 writes a checkpoint to ``NAME.tmp`` and renames it (without fsync), then copies it
to its other names (``checkpoint_last.pt``, ``checkpoint_best.pt``, …) with ``shutil.copyfile``,
in place: a run killed during a copy leaves a truncated ``checkpoint_last.pt``, and the next
start, which resumes from it, fails. fairseq has no hook around these writes; the two functions
it writes them with, ``checkpoint_utils.torch_persistent_save`` and ``PathManager.copy``, are
wrapped here for the files of a guarded save dir (any other path goes to fairseq's own):

    the bytes go to NAME.XXXX.tmp in the same folder → flush, fsync → os.replace onto NAME
    → fsync of the folder

so that a name always holds a complete checkpoint, the old one or the new one.

:func:`guard_save_dir` runs when a plugin task builds the model of a ``fairseq-train`` run
(before fairseq loads ``--restore-file``). It takes an ``fcntl`` lock on ``SAVE_DIR/train.lock``
for the whole run (the OS releases it when the process ends, however it ends), removes
temporary files an interrupted write left, and checks the checkpoint the run will resume from:
one that does not load is set aside and the newest checkpoint of the folder that does load takes
its place, or the run stops with the command that starts it fresh.
"""

import contextlib
import logging
import os
import re
import secrets
import shutil

import torch
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

from difformer_core.checkpoints import checkpoint_problem, updates_of
from difformer_core.errors import DifformerError
from difformer_core.locks import lock_folder

from .entry_points import running

logger = logging.getLogger(__name__)

LOCK_NAME = "train.lock"
#: fairseq's ``NAME.pt.tmp`` and this module's ``NAME.pt.XXXX.tmp``
TEMPORARY = re.compile(r".+\.pt(\.[^./]+)?\.tmp$")
_guarded_dirs = {}  # absolute save dir -> its lock (held until the process ends)
_fairseq_save = checkpoint_utils.torch_persistent_save
_fairseq_copy = PathManager.copy


def is_training_run(args) -> bool:
    """Whether ``args`` are those of a fairseq-train run (fairseq-train, fairseq-hydra-train or
    ``fairseq_cli.train.main``) that saves checkpoints, on its first worker."""
    if not running("fairseq_cli.train"):
        return False
    if getattr(args, "no_save", False):
        return False
    if not getattr(args, "save_dir", None):
        return False
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_rank() != 0)


def guard_save_dir(args):
    """Lock ``args.save_dir`` for this process, remove stale temporary files, make the
    checkpoint the run resumes from one that loads, and route the run's checkpoint writes
    through :func:`atomic_file`. Once per save dir and process. Returns the checkpoint the run
    resumes from (None for a fresh start)."""
    save_dir = os.path.abspath(args.save_dir)
    if save_dir in _guarded_dirs:
        return None
    os.makedirs(save_dir, exist_ok=True)
    _guarded_dirs[save_dir] = lock_save_dir(save_dir)
    removed = remove_stale_temporaries(save_dir)
    resume = ensure_loadable_restore_file(args, save_dir, removed)
    checkpoint_utils.torch_persistent_save = atomic_persistent_save
    PathManager.copy = staticmethod(atomic_copy)
    if resume is not None:
        stop_if_complete(args, resume)
    return resume


def stop_if_complete(args, resume):
    """A run whose checkpoint is at --max-update already ends here, with nothing changed (fairseq
    would train one more update and overwrite its checkpoints: it tests the limit after a step)."""
    max_update = getattr(args, "max_update", 0) or 0
    resets = ("reset_optimizer", "reset_meters", "reset_dataloader", "reset_lr_scheduler")
    if max_update <= 0 or any(getattr(args, name, False) for name in resets):
        return
    updates = updates_of(resume)
    if updates >= max_update:
        logger.info(f"{resume} is at update {updates}, --max-update {max_update}: the training is complete")
        raise SystemExit(0)


def lock_save_dir(save_dir):
    """The lock on SAVE_DIR/train.lock (:func:`difformer_core.locks.lock_folder`); a second run
    fails at once naming the folder and the process that holds it."""
    return lock_folder(os.path.join(save_dir, LOCK_NAME), f"--save-dir {save_dir}", "training",
                       "wait for it to end, or give this run another --save-dir")


def remove_stale_temporaries(save_dir):
    """Remove the temporary checkpoint files an interrupted write left (the lock says no one
    writes them now); their names."""
    removed = [name for name in sorted(os.listdir(save_dir)) if TEMPORARY.match(name)]
    for name in removed:
        os.remove(os.path.join(save_dir, name))
        logger.warning(f"removed {os.path.join(save_dir, name)}, left by an interrupted checkpoint write")
    return removed


def ensure_loadable_restore_file(args, save_dir, removed=()):
    """The checkpoint fairseq-train will resume from loads, or is replaced by the newest one of
    the folder that does (saying which), or the run stops with the command that starts fresh.

    A ``checkpoint_last.pt`` that is missing while an interrupted write of it was ``removed`` is
    an unloadable one too: the run was killed while writing its first one, and fairseq would
    start again from update 0 over the checkpoints already written.

    Returns the checkpoint the run resumes from, None for a fresh start."""
    suffix = getattr(args, "checkpoint_suffix", "") or ""
    restore = getattr(args, "restore_file", "checkpoint_last.pt") or "checkpoint_last.pt"
    if restore != "checkpoint_last.pt":
        path = restore.replace(".pt", suffix + ".pt")
        problem = os.path.isfile(path) and checkpoint_problem(path)
        if problem:
            raise DifformerError(f"--restore-file {path} does not load: {problem}; give a checkpoint that does")
        return path if os.path.isfile(path) else None
    last = os.path.join(save_dir, f"checkpoint_last{suffix}.pt")
    if os.path.isfile(last):
        problem = checkpoint_problem(last)
    else:
        interrupted = any(name.startswith(os.path.basename(last) + ".") for name in removed)
        problem = interrupted and "its first write was interrupted"
    if not problem:
        return last if os.path.isfile(last) else None
    candidates = []
    for name in os.listdir(save_dir):
        path = os.path.join(save_dir, name)
        if name.startswith("checkpoint") and name.endswith(suffix + ".pt") and path != last:
            if checkpoint_problem(path) is None:
                candidates.append((updates_of(path), os.path.getmtime(path), path))
    if not candidates and not os.path.isfile(last):
        return None  # nothing was saved yet: fairseq starts afresh, and loses nothing
    if not candidates:
        raise DifformerError(
            f"{last} does not load ({problem}) and no other checkpoint in {save_dir} does: to start "
            f"this training fresh, move it away (mv {last} {last}.unloadable) and run the same command"
        )
    updates, _, newest = max(candidates)
    kept = ""
    if os.path.isfile(last):  # copied, not moved: killed at any moment, last is the old or the new
        shutil.copyfile(last, last + ".unloadable")
        kept = f": kept as {last}.unloadable"
    with atomic_file(last) as out, open(newest, "rb") as source:
        shutil.copyfileobj(source, out, 1 << 20)
    logger.warning(
        f"{last} does not load ({problem}){kept}; resuming from {newest} "
        f"(update {updates}), the newest checkpoint in {save_dir} that loads"
    )
    return last


def _guarded(path):
    return isinstance(path, str) and os.path.dirname(os.path.abspath(path)) in _guarded_dirs


@contextlib.contextmanager
def atomic_file(path):
    """A binary file to write ``path``'s new content to: a temporary file beside it
    (``NAME.PID-XXXXXXXX.tmp``, made with the mode open() gives a new file), flushed, fsynced and
    ``os.replace``d onto ``path`` when the block ends without an error (removed otherwise)."""
    folder = os.path.dirname(os.path.abspath(path))
    while True:
        tmp = os.path.join(folder, f"{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def atomic_persistent_save(obj, filename, async_write: bool = False):
    """fairseq's ``checkpoint_utils.torch_persistent_save``, atomic for a guarded save dir."""
    if async_write or not _guarded(filename):
        return _fairseq_save(obj, filename, async_write)
    with atomic_file(filename) as out:
        torch.save(obj, out)


def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    """fairseq's ``PathManager.copy``, atomic for a guarded save dir."""
    if not _guarded(dst_path):
        return _fairseq_copy(src_path, dst_path, overwrite)
    if os.path.exists(dst_path) and not overwrite:
        return False
    with atomic_file(dst_path) as out, open(src_path, "rb") as source:
        shutil.copyfileobj(source, out, 1 << 20)
    return True
