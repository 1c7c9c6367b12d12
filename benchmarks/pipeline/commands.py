"""What every step shares: the repository, the plugin's folder, log lines, and commands as text."""

import shlex
import sys
import time
from pathlib import Path

from difformer_cli import user_dir

REPO = Path(__file__).resolve().parents[2]
USER_DIR = user_dir()
#: the module each console script runs: on a GPU machine (no console scripts) they run as modules
TOOL_MODULES = {"fairseq-train": "fairseq_cli.train", "fairseq-generate": "fairseq_cli.generate",
                "difformer-score": "difformer_cli.score", "difformer-distill": "difformer_cli.distill"}


def say(message):
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)


def shell(cmd) -> str:
    """``cmd`` as one shell line, paths inside the repository relative to it (the results file's
    form of a command: a resumed run compares commands by this text)."""
    return " ".join(shlex.quote(str(c)).replace(str(REPO) + "/", "") for c in cmd)


def tool(name, device):
    """A console script, or on a GPU machine the ``python -m`` command of the module it runs."""
    return [name] if device == "cpu" else [sys.executable, "-m", TOOL_MODULES[name]]
