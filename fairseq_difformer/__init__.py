"""fairseq-difformer: Difformer text diffusion as a fairseq plugin.

Importing the package (``--user-dir``, or ``import fairseq_difformer``) registers the task,
model, architectures and criterion named ``difformer*`` and the ``moses_lowercase`` tokenizer, and
lets torch load fairseq checkpoints. ``DifformerModel.from_pretrained`` loads a trained model for
translating raw text from Python.
"""

from difformer_core.checkpoints import allow_fairseq_checkpoints
from difformer_core.errors import install_excepthook, register_explainer

from .fairseq_errors import explain_missing_batch_size, explain_unreadable_checkpoint

allow_fairseq_checkpoints()
install_excepthook()
register_explainer(explain_unreadable_checkpoint)
register_explainer(explain_missing_batch_size)

from . import criterions, models, tasks, tokenizers  # noqa: E402,F401  (registration)
from .models import DifformerModel  # noqa: E402,F401

__version__ = "0.1.0"
