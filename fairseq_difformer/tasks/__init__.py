from . import difformer_lm_task, difformer_task  # noqa: F401
