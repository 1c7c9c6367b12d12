from . import difformer, difformer_fusion, transformer_base  # noqa: F401  (registration)
from .difformer import DifformerModel  # noqa: F401
