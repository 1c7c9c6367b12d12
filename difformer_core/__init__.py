"""The parts of fairseq-difformer that need no fairseq: the embedding-diffusion math
(``diffusion``), the decoding options (``decoding``), the one-line errors (``errors``), ROUGE
(``rouge``) and the torch allow-list for loading fairseq checkpoints (``checkpoints``).

The fairseq plugin ``fairseq_difformer`` and the console scripts ``difformer_cli`` build on this
package; it imports neither, nor fairseq."""
