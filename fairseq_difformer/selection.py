"""Choosing one hypothesis among the L × N candidates decoded for each source sentence.

Each selector maps candidates (K per source, flattened source-major) to a score per candidate;
the generator keeps the highest. Scores are higher-is-better. The AR reranker runs on fairseq
(:class:`ARReranker`) or on CTranslate2 (:class:`CTranslate2Reranker`), as
``--reranker-engine`` picks in :func:`build_reranker`.
"""

import argparse
import dataclasses
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import torch
from fairseq.models.nat import FairseqNATModel
from sacrebleu.metrics import BLEU

from difformer_core.errors import DifformerError

from . import ctranslate2_ar
from .length_groups import length_groups
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

    def __init__(self, model, tgt_dict, checkpoint=None):
        check_reranker_model(model, checkpoint)
        self.model = model
        self.int8_model = QuantizedCopy()  # --decoding-precision int8
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()
        self.vocab_size = len(tgt_dict)

    @torch.no_grad()
    def score(self, src_tokens, src_lengths, tokens, candidates_per_source, int8=False):
        """tokens: (B·K) × T right-padded candidates ending in eos → (B·K) mean log-probs.

        The sources are encoded once. The candidates are teacher-forced in groups of similar
        length (:func:`~fairseq_difformer.length_groups.length_groups`), and only their real tokens go
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


def check_reranker_model(model, checkpoint=None):
    """The reranker is an autoregressive fairseq Transformer (encoder-decoder) with a full output
    layer; else one line naming its file (``checkpoint``, where the loader says) and what to give
    instead. A Difformer has an encoder and an output layer too, but no decoder that scores a
    given sentence token by token."""
    if isinstance(model, FairseqNATModel) or not hasattr(model, "encoder") \
            or not hasattr(model.decoder, "output_layer"):
        arch = getattr(getattr(model, "args", None), "arch", None)
        which = f"{checkpoint} (second --path)" if checkpoint else "(second --path checkpoint)"
        raise DifformerError(
            f"the reranker {which} is a {type(model).__name__}{f' (--arch {arch})' if arch else ''}, "
            f"not an autoregressive Transformer: --ppl-mbr reranks with an autoregressive fairseq "
            f"Transformer (encoder-decoder; fairseq-train --task translation --arch transformer*, e.g. the "
            f"distillation teacher) trained on the Difformer model's dictionary"
        )
    if getattr(model.decoder, "adaptive_softmax", None) is not None:
        raise DifformerError(
            "the reranker (second --path checkpoint) was trained with --adaptive-softmax-cutoff; "
            "rerank with a Transformer that has a full output layer"
        )


@dataclass
class RerankerFiles:
    """Where the loaded AR reranker comes from: its checkpoint file (None where the loader does
    not say, as in the hub), the data-bin holding its dictionaries, its (source, target) languages."""

    checkpoint: Optional[str]
    databin: str
    languages: Tuple[str, str]


#: loaded model → (its temporary folder, the files saved there): a reranker without a checkpoint
#: file is saved and converted once, though the hub builds a generator for each call
SAVED_RERANKERS = weakref.WeakKeyDictionary()


class CTranslate2Reranker:
    """(b) "PPL-MBR" as :class:`ARReranker` scores it, score = (1/|y|) Σ_i log p_AR(y_i | y_<i, x)
    over the candidate's tokens and its </s>, with the AR Transformer on CTranslate2
    (:mod:`~fairseq_difformer.ctranslate2_ar`).

    The checkpoint is converted once per quantization, cached beside it: float32, or int8 where
    the decoding is int8. A reranker whose file the loader does not name (the hub's) is saved
    with its dictionary to a temporary folder, once per loaded model, and converted from there."""

    def __init__(self, model, tgt_dict, files: Optional[RerankerFiles] = None, threads=None):
        check_reranker_model(model, files.checkpoint if files is not None else None)
        ctranslate2_ar.import_ctranslate2("--reranker-engine ctranslate2")
        if files is None or files.checkpoint is None:
            if model not in SAVED_RERANKERS:
                folder = tempfile.TemporaryDirectory(prefix="difformer-reranker-")
                SAVED_RERANKERS[model] = (folder, save_loaded(model, tgt_dict, Path(folder.name)))
            files = SAVED_RERANKERS[model][1]
        self.files, self.threads = files, threads
        self.vocabulary = ctranslate2_ar.vocabulary(tgt_dict)
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()
        self.translators = {}

    def translator(self, quantization):
        """The translator of the checkpoint converted as ``quantization``, made at first use."""
        if quantization not in self.translators:
            folder = ctranslate2_ar.convert(self.files.checkpoint, self.files.databin, quantization,
                                            *self.files.languages)
            self.translators[quantization] = ctranslate2_ar.translator(folder, inter_threads=self.threads)
        return self.translators[quantization]

    def strings(self, row):
        """A row of token ids → its token strings without padding and without a final </s>, and
        whether it ended in </s> (CTranslate2 appends </s> to every source and target)."""
        ids = row[row.ne(self.pad)].tolist()
        ended = bool(ids) and ids[-1] == self.eos
        return [self.vocabulary[i] for i in ids[: len(ids) - ended]], ended

    @torch.no_grad()
    def score(self, src_tokens, src_lengths, tokens, candidates_per_source, int8=False):
        """tokens: (B·K) × T right-padded candidates ending in eos → (B·K) mean log-probs
        (float32, on the tokens' device), as :meth:`ARReranker.score`; CTranslate2 batches them
        by length itself."""
        sources = [self.strings(row)[0] for row in src_tokens]
        candidates, ended = zip(*(self.strings(row) for row in tokens))
        log_probs = ctranslate2_ar.score(self.translator("int8" if int8 else "float32"),
                                         [sources[i // candidates_per_source] for i in range(len(tokens))],
                                         list(candidates))
        # CTranslate2 scores the </s> it appends, which a candidate without one does not have.
        kept = [lp if eos else lp[:-1] for lp, eos in zip(log_probs, ended)]
        return torch.tensor([sum(lp) / max(len(lp), 1) for lp in kept], dtype=torch.float32,
                            device=tokens.device)


def save_loaded(model, dictionary, folder: Path) -> RerankerFiles:
    """The loaded fairseq Transformer written to ``folder`` as FairseqConverter reads it: a
    checkpoint of its flat args (:func:`flat_args`) and float32 weights, and its (joined)
    dictionary as the source and target dictionary of a data-bin."""
    # A translation task over this folder's dictionaries, whatever task the model was loaded by.
    args = argparse.Namespace(**{**flat_args(model), "arch": "transformer", "task": "translation",
                                 "data": str(folder)})
    checkpoint = folder / "reranker.pt"
    weights = {name: value.float() for name, value in model.state_dict().items()}
    torch.save({"args": args, "cfg": None, "model": weights}, checkpoint)
    for lang in ("src", "tgt"):
        dictionary.save(str(folder / f"dict.{lang}.txt"))
    return RerankerFiles(str(checkpoint), str(folder), ("src", "tgt"))


def flat_args(model) -> dict:
    """The Transformer's options as fairseq's legacy args name them (encoder_embed_dim, …): its
    ``args`` as they are where they are a Namespace; a ``TransformerConfig`` (fairseq 0.12) with
    the fields of its encoder / decoder / quant_noise parts prefixed, as its from_namespace reads them."""
    config = getattr(model, "args", None)
    if isinstance(config, argparse.Namespace):
        return vars(config)
    if not dataclasses.is_dataclass(config):
        raise DifformerError(
            "--reranker-engine ctranslate2 converts the reranker's checkpoint, and this reranker has "
            "neither a file nor fairseq args to convert: pass it as --path difformer.pt:transformer.pt"
        )
    flat = {}
    for option in dataclasses.fields(config):
        value = getattr(config, option.name)
        if dataclasses.is_dataclass(value):
            flat.update({f"{option.name}_{part.name}": getattr(value, part.name) for part in dataclasses.fields(value)})
        elif option.name != "_name":
            flat[option.name] = value
    return flat


def build_reranker(engine, model, tgt_dict, files: Optional[RerankerFiles] = None):
    """The AR reranker ``--reranker-engine`` names, over the loaded reranker ``model``: fairseq's
    (:class:`ARReranker`) or CTranslate2's (:class:`CTranslate2Reranker`, converted from
    ``files`` where given)."""
    if engine == "ctranslate2":
        return CTranslate2Reranker(model, tgt_dict, files)
    return ARReranker(model, tgt_dict, files.checkpoint if files is not None else None)


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
