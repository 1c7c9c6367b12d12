"""User-facing errors: one clear line (flag, file, fix) instead of a traceback."""

import sys


class DifformerError(ValueError):
    """Bad input or a bad combination of options, explained in the user's terms."""


def _print_difformer_errors(previous_hook):
    def hook(exc_type, exc, tb):
        if issubclass(exc_type, DifformerError):
            print(f"{sys.argv[0].split('/')[-1]}: error: {exc}", file=sys.stderr)
        else:
            previous_hook(exc_type, exc, tb)

    hook.difformer = True
    return hook


def install_excepthook():
    """Make an uncaught :class:`DifformerError` print its message only; others are untouched."""
    if not getattr(sys.excepthook, "difformer", False):
        sys.excepthook = _print_difformer_errors(sys.excepthook)
