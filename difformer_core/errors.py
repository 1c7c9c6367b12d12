"""User-facing errors: one clear line (flag, file, fix) instead of a traceback."""

import sys

#: functions (exception, traceback) -> a one-line explanation or None, for errors raised inside
#: other libraries that the user can fix (e.g. a truncated checkpoint fairseq fails to read)
EXPLAINERS = []


class DifformerError(ValueError):
    """Bad input or a bad combination of options, explained in the user's terms."""


def _print_difformer_errors(previous_hook):
    def hook(exc_type, exc, tb):
        message = str(exc) if issubclass(exc_type, DifformerError) else explain(exc, tb)
        if message is not None:
            print(f"{sys.argv[0].split('/')[-1]}: error: {message}", file=sys.stderr)
        else:
            previous_hook(exc_type, exc, tb)

    hook.difformer = True
    return hook


def explain(exc, tb):
    """The first registered explanation of ``exc``, or None."""
    for explainer in EXPLAINERS:
        message = explainer(exc, tb)
        if message is not None:
            return message
    return None


def register_explainer(explainer):
    if explainer not in EXPLAINERS:
        EXPLAINERS.append(explainer)


def install_excepthook():
    """Make an uncaught :class:`DifformerError`, or an error a registered explainer knows, print
    its one-line message only; other errors keep their traceback."""
    if not getattr(sys.excepthook, "difformer", False):
        sys.excepthook = _print_difformer_errors(sys.excepthook)
