"""Choosing one hypothesis among the L × N candidates decoded for each source sentence.

Each selector maps candidates (K per source, flattened source-major) to a score per candidate;
the generator keeps the highest. Scores are higher-is-better.
"""

import torch
from sacrebleu.metrics import BLEU

from difformer_core.errors import DifformerError

from .batching import length_groups
from .quantization import QuantizedCopy
from .vocabulary_scores import word_log_probs


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
        if getattr(model.decoder, "adaptive_softmax", None) is not None:
            raise DifformerError(
                "the reranker (second --path checkpoint) was trained with --adaptive-softmax-cutoff; "
                "rerank with a Transformer that has a full output layer"
            )
        self.model = model
        self.int8_model = QuantizedCopy()  # --decoding-precision int8
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()
        self.vocab_size = len(tgt_dict)

    @torch.no_grad()
    def score(self, src_tokens, src_lengths, tokens, candidates_per_source, int8=False):
        """tokens: (B·K) × T right-padded candidates ending in eos → (B·K) mean log-probs.

        The sources are encoded once. The candidates are teacher-forced in groups of similar
        length (:func:`~fairseq_difformer.batching.length_groups`), and only their real tokens go
        through the output layer, a block of positions at a time: log p(y_i) = y_i's logit −
        logsumexp of the logits (:func:`~fairseq_difformer.vocabulary_scores.word_log_probs`).
        With ``int8`` the reranker's feed-forward layers run as dynamic int8 layers
        (:mod:`~fairseq_difformer.quantization`)."""
        model = self.int8_model(self.model) if int8 else self.model
        encoder_out = model.encoder(src_tokens, src_lengths=src_lengths)
        source_of = torch.arange(src_tokens.size(0), device=tokens.device).repeat_interleave(
            candidates_per_source
        )
        lengths = tokens.ne(self.pad).sum(1)
        scores = torch.zeros(tokens.size(0), device=tokens.device)
        for rows in length_groups(lengths):
            group = tokens[rows, : int(lengths[rows].max())]
            prev_output_tokens = torch.cat([group.new_full((len(rows), 1), self.eos), group[:, :-1]], 1)
            features, _ = model.decoder(
                prev_output_tokens,
                encoder_out=model.encoder.reorder_encoder_out(encoder_out, source_of[rows]),
                features_only=True,
            )
            real = group.ne(self.pad)
            token_lprobs = word_log_probs(model.decoder.output_layer, features[real], group[real],
                                          self.vocab_size)
            sums = scores.new_zeros(len(rows)).index_add_(0, real.nonzero()[:, 0], token_lprobs)
            scores[rows] = sums / real.sum(1)
        return scores


def candidate_strings(tokens, lengths, tgt_dict):
    """The words of each candidate as BLEU-MBR compares them: the dictionary's string of its first
    ℓ tokens (</s> dropped), subword-nmt's "@@ " removed, <unk> as one word that matches itself.

    This is the text the original Difformer generator scores (``bleu_rerank``): BPE-free words, so
    that two segmentations of the same word agree."""
    return [
        tgt_dict.string(row[:n], "@@ ", unk_string="UNKNOWNTOKENINHYP")
        for row, n in zip(tokens, lengths.tolist())
    ]


def bleu_mbr(candidates, candidates_per_source):
    """(c) BLEU-MBR, as the original Difformer code computes it: within each source's K candidates,

        score_i = 1/(K − 1) · Σ_{j≠i} sentence-BLEU(hypothesis c_j, reference c_i),

    i.e. how well candidate i, taken as the reference, explains the others. Sentence BLEU is
    sacrebleu's (13a tokenisation, exp smoothing, effective order); it is not symmetric, because
    the brevity penalty compares the hypothesis with the reference length. An empty candidate
    scores −inf: it is never chosen over a non-empty one (the original leaves it its
    log-probability, below every BLEU).

    candidates: list of strings (see :func:`candidate_strings`), source-major, K per source.
    """
    bleu = BLEU(effective_order=True)
    k = candidates_per_source
    scores = []
    for start in range(0, len(candidates), k):
        group = candidates[start:start + k]
        for i, reference in enumerate(group):
            if not reference:
                scores.append(float("-inf"))
                continue
            others = [hyp for j, hyp in enumerate(group) if j != i]
            total = sum(bleu.sentence_score(hyp, [reference]).score for hyp in others)
            scores.append(total / max(len(others), 1))
    return torch.tensor(scores, dtype=torch.float64)
