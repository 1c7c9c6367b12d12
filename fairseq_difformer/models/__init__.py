from . import difformer, transformer_base  # noqa: F401
