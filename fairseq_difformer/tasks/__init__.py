from . import difformer_task  # noqa: F401
