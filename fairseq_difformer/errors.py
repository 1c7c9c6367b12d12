"""User-facing errors: one clear line (flag, file, fix) instead of a traceback.

Defined in :mod:`difformer_cli.errors`, where the console scripts reach them without importing
fairseq; this is their name inside the plugin."""

from difformer_cli.errors import DifformerError, install_excepthook  # noqa: F401
