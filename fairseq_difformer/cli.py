"""Small command-line helpers."""

import os


def print_user_dir():
    """``difformer-user-dir``: the path to pass to ``--user-dir`` for the installed package."""
    import fairseq_difformer

    print(os.path.dirname(os.path.abspath(fairseq_difformer.__file__)))
