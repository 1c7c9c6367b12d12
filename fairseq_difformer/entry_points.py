"""Which fairseq command this process runs: the plugin's tasks behave as that command needs
(a training guards its save dir; fairseq-interactive prepares raw text as the data was)."""

import sys


def running(module: str) -> bool:
    """Whether this call happens inside fairseq's command ``module`` (e.g. ``fairseq_cli.train``):
    run as ``python -m module`` (the main module), or through a function of that module on the
    call stack (its console script, fairseq-hydra-train, a program that calls its ``main``).
    Importing the module is not running it: a test or a notebook may import several."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(main, "name", None) == module:
        return True
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == module:
            return True
        frame = frame.f_back
    return False
