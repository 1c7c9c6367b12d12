"""The project's console scripts (see setup.py): data preparation, distillation, checkpoint
averaging, scoring, checkpoint conversion and the quickstart."""

import os


def print_user_dir():
    """``difformer-user-dir``: the path to pass to ``--user-dir`` for the installed package."""
    print(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
