"""The project's console scripts (see setup.py) and the plain-Python pieces they share.

This package stands beside the fairseq plugin ``fairseq_difformer`` so that a console script
starts without running the plugin's registration, which imports torch and fairseq: each script
parses its arguments first and imports what it needs afterwards (``--help`` answers at once)."""

import importlib.util
import os


def user_dir() -> str:
    """The folder of the installed ``fairseq_difformer`` plugin, the value for ``--user-dir``,
    found without importing (and so registering) it."""
    spec = importlib.util.find_spec("fairseq_difformer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the fairseq_difformer package is not installed: pip install -e <repository>")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def print_user_dir():
    """``difformer-user-dir``: the path to pass to ``--user-dir`` for the installed package."""
    print(user_dir())
