from . import difformer_loss  # noqa: F401
