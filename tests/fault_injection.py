"""The reliability tests' fault: ``fairseq-train`` whose N-th checkpoint write is killed half-way.

    python tests/fault_injection.py N DATA-BIN [fairseq-train options]

runs fairseq-train with :func:`fairseq_difformer.training_run.atomic_file` wrapped: the N-th file
it writes (counting from 1) gets half of its first write's bytes, fsynced, then the process
SIGKILLs itself, as a power cut or an OOM kill in the middle of a checkpoint would leave it.
"""

import contextlib
import os
import signal
import sys

from fairseq_difformer import training_run


class KillHalfWay:
    """A file whose first write puts half its bytes on disk, then SIGKILLs the process."""

    def __init__(self, out):
        self.out = out

    def write(self, data):
        self.out.write(bytes(data[: len(data) // 2]))
        self.out.flush()
        os.fsync(self.out.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        return getattr(self.out, name)


def kill_at_write(n):
    """Wrap training_run.atomic_file so that its ``n``-th file is killed half-way."""
    atomic_file, writes = training_run.atomic_file, [0]

    @contextlib.contextmanager
    def counted(path):
        writes[0] += 1
        with atomic_file(path) as out:
            yield KillHalfWay(out) if writes[0] == n else out

    training_run.atomic_file = counted


if __name__ == "__main__":
    kill_at_write(int(sys.argv[1]))
    from fairseq_cli.train import cli_main

    sys.argv = ["fairseq-train", *sys.argv[2:]]
    cli_main()
