"""Choosing one hypothesis among the L × N candidates decoded for each source sentence.

Each selector maps candidates (K per source, flattened source-major) to a score per candidate;
the generator keeps the highest. Scores are higher-is-better.
"""

import torch
from sacrebleu.metrics import BLEU

from .errors import DifformerError


def mean_log_prob(positional_scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(a) score = (1/|y|) Σ_i log p(y_i | ẑ0) over the candidate's non-pad positions."""
    return (positional_scores * mask).sum(-1) / mask.sum(-1)


class ARReranker:
    """(b) "PPL-MBR": score = (1/|y|) Σ_i log p_AR(y_i | y_<i, x) under a fairseq Transformer.

    The reranker must share the Difformer model's (joined) dictionary: candidates are passed as
    token ids, ending in </s>, exactly as the reranker was trained on them.
    """

    def __init__(self, model, tgt_dict):
        if not hasattr(model, "encoder") or not hasattr(model.decoder, "output_layer"):
            raise DifformerError(
                "the second --path checkpoint must be an autoregressive fairseq Transformer "
                "(--arch transformer*), e.g. the distillation teacher"
            )
        self.model = model
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()

    @torch.no_grad()
    def score(self, src_tokens, src_lengths, tokens, candidates_per_source):
        """tokens: (B·K) × T right-padded candidates ending in eos → (B·K) mean log-probs."""
        model = self.model
        encoder_out = model.encoder(src_tokens, src_lengths=src_lengths)
        order = torch.arange(src_tokens.size(0), device=tokens.device).repeat_interleave(
            candidates_per_source
        )
        encoder_out = model.encoder.reorder_encoder_out(encoder_out, order)
        prev_output_tokens = torch.cat([tokens.new_full((tokens.size(0), 1), self.eos), tokens[:, :-1]], 1)
        decoder_out = model.decoder(prev_output_tokens, encoder_out=encoder_out)
        lprobs = model.get_normalized_probs(decoder_out, log_probs=True)
        token_lprobs = lprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).float()
        mask = tokens.ne(self.pad).type_as(token_lprobs)
        return mean_log_prob(token_lprobs, mask)


def bleu_mbr(candidates, candidates_per_source):
    """(c) BLEU-MBR: score_i = mean_{j≠i} sentence-BLEU(c_i, c_j) within each source's candidates.

    candidates: list of token-id lists (without </s>), source-major, K per source.
    """
    bleu = BLEU(tokenize="none", effective_order=True)
    texts = [" ".join(map(str, c)) for c in candidates]
    scores = []
    k = candidates_per_source
    for start in range(0, len(texts), k):
        group = texts[start:start + k]
        for i, hyp in enumerate(group):
            others = [ref for j, ref in enumerate(group) if j != i]
            scores.append(
                sum(bleu.sentence_score(hyp, [ref]).score for ref in others) / max(len(others), 1)
            )
    return torch.tensor(scores)
