"""One process at a time in a folder: an exclusive ``flock`` on a lock file that holds the owner's
process id. The operating system releases the lock when the process ends, however it ends (kill
-9 included), so a lock is never left held, and a second process is refused at once with the
folder and the owner's process id. A lock released by its owner removes its file.

Temporary folders and files are named after the process that writes them (``NAME.tmp-PID``):
:func:`owner_is_dead` tells whether that process is gone, so that only what a dead process left is
removed, never the work of one that still runs.
"""

import contextlib
import fcntl
import os
import re
import shutil
from pathlib import Path
from typing import IO, List

from .errors import DifformerError

_OWNER = re.compile(r"\.tmp-(\d+)(?:-old)?$")


class FolderLock:
    """An exclusive lock held on a lock file (see :func:`lock_folder`). As a context manager, or
    with :meth:`release`, it ends by removing the lock file and closing it; a process that ends
    without releasing it (killed) leaves the file, which the next lock takes over."""

    def __init__(self, path: Path, file: IO):
        self.path, self.file = path, file

    def release(self):
        if self.file.closed:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # before the lock ends: a waiting process then finds a new file
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def lock_folder(lock_path, what: str, holder: str, advice: str) -> FolderLock:
    """An exclusive ``flock`` on ``lock_path`` (created if needed), with this process's id written
    in it, held until :meth:`FolderLock.release` or the end of the process. If another process
    holds it, a :class:`DifformerError` says ``{what} is in use by another {holder} (process P,
    holding LOCK_PATH): {advice}``. A lock file removed by its releasing owner between this
    process's open and lock is opened again, so two processes never hold two files of one path."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        lock = open(lock_path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            lock.close()
            raise DifformerError(f"{what} is in use by another {holder} (process {owner}, holding {lock_path}): "
                                 f"{advice}") from None
        try:
            current = os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        lock.close()
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return FolderLock(lock_path, lock)


def process_is_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists (signal 0 probes it without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def owner_is_dead(path) -> bool:
    """Whether the process named in a temporary name ``….tmp-PID`` (or ``….tmp-PID-old``) has
    ended; a name without a process id has no owner to wait for."""
    match = _OWNER.search(Path(path).name)
    if match is None:
        return True
    pid = int(match.group(1))
    return pid != os.getpid() and not process_is_alive(pid)


def temporary_beside(path, suffix: str = "") -> Path:
    """``.NAME.tmp-PID`` beside ``path`` (``.NAME.tmp-PID-old`` with ``suffix="-old"``): where
    this process writes what it renames to ``path`` when finished, named so that
    :func:`remove_dead_temporaries` can tell whether its writer still runs."""
    path = Path(path)
    return path.parent / f".{path.name}.tmp-{os.getpid()}{suffix}"


def remove_dead_temporaries(path) -> List[Path]:
    """Remove the temporaries of ``path`` (:func:`temporary_beside`) whose process has ended,
    left by interrupted runs; those of a live process stay. Returns the removed ones."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        if owner_is_dead(stale):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            removed.append(stale)
    return removed
