"""Running an external command (fairseq-train, fairseq-generate, …) with its output in a log."""

import ctypes
import functools
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from difformer_core.errors import DifformerError

TAIL_LINES = 15


class CommandFailed(DifformerError):
    """A command exited with an error; the message ends with the last lines of its log."""

    def __init__(self, message, returncode=None, tail=""):
        super().__init__(message)
        self.returncode, self.tail = returncode, tail


#: prctl(2)'s option: the signal a process receives when its parent ends
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid=None):
    """Make this process end (SIGKILL) when its parent ends, however the parent ends: Linux's
    ``prctl(PR_SET_PDEATHSIG)``, run in a child (``preexec_fn``, a worker pool's initializer), so
    that a killed tool leaves no fairseq command running on after it. ``parent_pid``, the
    parent's id before the fork, closes the gap where the parent ended before the call. Elsewhere
    than on Linux nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def run_logged(
    cmd: Sequence,
    log: Path,
    *,
    stdout: Optional[Path] = None,
    on_line: Optional[Callable[[str], None]] = None,
    append: bool = False,
) -> Dict[str, float]:
    """Run ``cmd`` to completion with its output in the file ``log``.

    The log starts with the command line; stderr goes to it, and stdout too unless ``stdout``
    names a file of its own (e.g. fairseq-generate's translations). Each line written to the log
    is also passed to ``on_line`` (progress display). Returns ``wall_s``, the wall time, and
    ``peak_rss_mib``, the peak resident memory of the process from the kernel's accounting
    (``wait4``'s ``ru_maxrss``). A non-zero exit raises :class:`CommandFailed` with the log's tail.
    The command ends with this process (:func:`die_with_parent`).
    """
    cmd = [str(c) for c in cmd]
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    if stdout:
        Path(stdout).parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(log, "a" if append else "w", encoding="utf-8") as log_file, \
            open(stdout or os.devnull, "w", encoding="utf-8") as out:
        log_file.write(f"$ {shlex.join(cmd)}\n")
        log_file.flush()
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                cmd, stdout=out if stdout else subprocess.PIPE,
                stderr=subprocess.PIPE if stdout else subprocess.STDOUT,
                text=True, encoding="utf-8", errors="replace", env=env,
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        except FileNotFoundError:
            raise CommandFailed(f"{cmd[0]}: command not found (is fairseq installed?)") from None
        for line in proc.stderr if stdout else proc.stdout:
            log_file.write(line)
            if on_line is not None:
                on_line(line)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-TAIL_LINES:])
        raise CommandFailed(f"{cmd[0]} failed (exit {proc.returncode}); log {log}:\n{tail}", proc.returncode, tail)
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}
