"""Which fairseq command this process runs: the plugin's tasks behave as that command needs
(a training guards its save dir; fairseq-interactive prepares raw text as the data was)."""

import sys


def running(module: str) -> bool:
    """Whether the process runs fairseq's ``module`` (e.g. ``fairseq_cli.train``): its console
    script, ``python -m``, or a program that imported it to call its ``main``."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    return module in sys.modules or getattr(main, "name", None) == module
