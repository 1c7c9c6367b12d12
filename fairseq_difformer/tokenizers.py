"""The ``moses_lowercase`` tokenizer (``--tokenizer moses_lowercase``): Moses tokenisation, then
lowercasing, for models trained on lowercased text (``difformer-prepare --lowercase``, or a
dataset released lowercased such as Multi30k).

fairseq's ``moses`` tokenizer keeps the case, so a cased sentence would reach such a model as
unknown words. Detokenisation is fairseq's Moses detokeniser: the output stays lowercase.
"""

from fairseq.data.encoders import register_tokenizer
from fairseq.data.encoders.moses_tokenizer import MosesTokenizer, MosesTokenizerConfig


@register_tokenizer("moses_lowercase", dataclass=MosesTokenizerConfig)
class MosesLowercaseTokenizer(MosesTokenizer):
    def encode(self, x: str) -> str:
        """Moses tokens of ``x``, lowercased (tokenised first, as ``difformer-prepare --lowercase``)."""
        return super().encode(x).lower()
