from . import difformer  # noqa: F401
