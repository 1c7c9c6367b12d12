"""Choosing one of the L × N candidates: the AR reranker's scores against teacher forcing done
here, BLEU-MBR against hand-counted sentence BLEU in the original code's orientation, and the
generator putting each selector's choice first."""

import math
from argparse import Namespace

import pytest
import sacrebleu
import torch
from fairseq.data import Dictionary
from fairseq.models.transformer import TransformerModel, base_architecture
from test_model import DICT, batch, build

import fairseq_difformer  # noqa: F401
import fairseq_difformer.selection as selection_module
from fairseq_difformer.length_groups import length_groups
from fairseq_difformer.generator import DecodingConfig, DifformerGenerator
from fairseq_difformer.selection import ARReranker, bleu_mbr, candidate_strings


def ar_model(seed=1):
    """A small fairseq Transformer on the test dictionary (random weights: any model will do)."""
    args = Namespace(
        encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=1, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, share_all_embeddings=True,
        dropout=0.0, max_source_positions=64, max_target_positions=64,
    )
    base_architecture(args)
    torch.manual_seed(seed)
    task = Namespace(source_dictionary=DICT, target_dictionary=DICT)
    return TransformerModel.build_model(args, task).eval()


def teacher_forced_mean_log_prob(model, source, candidate):
    """(1/|y|) Σ_i log p(y_i | y_<i, x) for one unpadded source and candidate (both ending in
    </s>): the decoder reads </s> y_1 … y_{n−1} and each output is scored on the next word."""
    eos = DICT.eos()
    src = torch.tensor([source])
    prev = torch.tensor([[eos] + candidate[:-1]])
    with torch.no_grad():
        logits, _ = model(src, torch.tensor([len(source)]), prev)
    lprobs = torch.log_softmax(logits[0].double(), dim=-1)
    return sum(float(lprobs[i, w]) for i, w in enumerate(candidate)) / len(candidate)


def decode(gen, model, lengths=(6, 4)):
    """All candidates of the two test sources, with lengths predicted as ``lengths`` (the
    untrained model would predict a single </s>)."""
    src_tokens, src_lengths, _ = batch()
    model.decoder.forward_length_prediction = lambda *args, **kwargs: torch.tensor(lengths)
    torch.manual_seed(0)
    return gen.generate([model], {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}})


def right_padded(rows):
    width = max(map(len, rows))
    return torch.tensor([row + [DICT.pad()] * (width - len(row)) for row in rows])


# ---------------------------------------------------------------- AR reranker (PPL-MBR)

def test_ar_reranker_scores_are_the_teacher_forced_mean_log_probabilities():
    model = ar_model()
    eos = DICT.eos()
    sources = [[5, 6, 7, 8, eos], [9, 10, eos]]
    src_tokens, src_lengths, _ = batch()  # the same sources, left-padded as fairseq batches them
    assert [row[row.ne(DICT.pad())].tolist() for row in src_tokens] == sources
    candidates = [  # three per source, of different lengths, right-padded
        [11, 12, eos], [11, 12, 13, 14, eos], [15, eos],
        [16, 17, 18, eos], [19, eos], [20, 21, eos],
    ]
    scores = ARReranker(model, DICT).score(src_tokens, src_lengths, right_padded(candidates), 3)
    expected = [teacher_forced_mean_log_prob(model, sources[i // 3], c) for i, c in enumerate(candidates)]
    assert scores.tolist() == pytest.approx(expected, abs=1e-5)
    assert len(set(round(s, 4) for s in expected)) == 6  # distinct: a mix-up would show


def test_ar_reranker_scores_do_not_depend_on_the_length_grouping(monkeypatch):
    """Each distinct candidate length teacher-forced in a call of its own, at its own width: the
    same scores as one call at the widest candidate's width."""
    model = ar_model()
    src_tokens, src_lengths, _ = batch()
    eos = DICT.eos()
    candidates = right_padded([[11, 12, eos], [11, 12, 13, 14, eos], [15, eos],
                               [16, 17, 18, eos], [19, eos], [20, 21, 22, 23, 24, 25, eos]])
    widths = []
    forward = model.decoder.forward
    model.decoder.forward = lambda prev, **kw: widths.append(prev.size(1)) or forward(prev, **kw)
    monkeypatch.setattr(selection_module, "length_groups", lambda lengths: [torch.arange(len(lengths))])
    one_call = ARReranker(model, DICT).score(src_tokens, src_lengths, candidates, 3)
    assert widths == [7]
    monkeypatch.setattr(selection_module, "length_groups", lambda lengths: length_groups(lengths, 0))
    widths.clear()
    grouped = ARReranker(model, DICT).score(src_tokens, src_lengths, candidates, 3)
    assert sorted(widths) == [2, 3, 4, 5, 7]
    torch.testing.assert_close(grouped, one_call)


def test_decoding_bf16_runs_the_rerankers_matrix_products_in_bfloat16():
    """With bf16 the generator runs the reranker's layers and output projection in bfloat16; the
    scores stay float32, near the float32 reranker's scores of the same candidates."""
    model, reranker = build(), ar_model()
    dtypes = set()
    for name in ("decoder.layers.0.fc1", "decoder.output_projection"):
        reranker.get_submodule(name).register_forward_hook(lambda m, i, output: dtypes.add(output.dtype))
    for bf16 in (False, True):
        dtypes.clear()
        config = DecodingConfig(steps=4, length_beam=3, noise_beam=2, selection="reranker",
                                precision="bf16" if bf16 else "model")
        hypos = decode(DifformerGenerator(model, DICT, config, reranker=reranker), model)
        assert dtypes == {torch.bfloat16 if bf16 else torch.float32}
        assert {h["selection_score"].dtype for hs in hypos for h in hs} == {torch.float32}

    src_tokens, src_lengths, _ = batch()
    candidates = right_padded([[11, 12, 2], [13, 2], [14, 15, 16, 2], [17, 2]])
    fp32 = ARReranker(reranker, DICT).score(src_tokens, src_lengths, candidates, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = ARReranker(reranker, DICT).score(src_tokens, src_lengths, candidates, 2)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, atol=0.05, rtol=0)


def test_generator_puts_the_rerankers_choice_first():
    model, reranker = build(), ar_model()
    src_tokens, src_lengths, _ = batch()
    # The model's own float32 products: the scores are compared with teacher forcing in float64.
    config = DecodingConfig(steps=4, length_beam=3, noise_beam=2, selection="reranker", precision="model")
    hypos = decode(DifformerGenerator(model, DICT, config, reranker=reranker), model)
    for source, candidates in zip(src_tokens, hypos):
        source = source[source.ne(DICT.pad())].tolist()
        ar = [teacher_forced_mean_log_prob(reranker, source, h["tokens"].tolist()) for h in candidates]
        assert len(ar) == 6 and ar == sorted(ar, reverse=True)  # ranked by the reranker, best first
        assert [float(h["selection_score"]) for h in candidates] == pytest.approx(ar, abs=1e-5)
    # The reranker's order is not the model's own (mean log-probability) order here.
    own = [[float(h["score"]) for h in candidates] for candidates in hypos]
    assert any(scores != sorted(scores, reverse=True) for scores in own)


# ---------------------------------------------------------------- BLEU-MBR

def hand_bleu(precisions, hyp_len, ref_len):
    """BLEU × 100 from the n-gram precisions counted by hand and the two lengths."""
    brevity = min(1.0, math.exp(1 - ref_len / hyp_len))
    return 100 * brevity * math.prod(precisions) ** (1 / len(precisions))


# sentence-BLEU(hypothesis, [reference]) for the pairs used below, counted by hand:
# "a b c d e f g h" against "a b c d": 4/8, 3/7, 2/6, 1/5 n-grams match; longer, so BP = 1.
LONG_vs_SHORT = hand_bleu([4 / 8, 3 / 7, 2 / 6, 1 / 5], 8, 4)
# "a b c d" against "a b c d e f g h": all n-grams match; BP = exp(1 − 8/4).
SHORT_vs_LONG = hand_bleu([1, 1, 1, 1], 4, 8)
# "a b y c" against "a b x c": 3/4 unigrams, 1/3 bigrams, no 3- or 4-gram: sacrebleu's exp
# smoothing takes 1/(2·2) and 1/(4·1) for those.
SWAP_ONE = hand_bleu([3 / 4, 1 / 3, 1 / 4, 1 / 4], 4, 4)
# "a b x c d" against "a b x c": 4/5, 3/4, 2/3, 1/2; longer, so BP = 1.
EXTRA_WORD = hand_bleu([4 / 5, 3 / 4, 2 / 3, 1 / 2], 5, 4)


def test_bleu_mbr_takes_each_candidate_as_the_reference_of_the_others():
    """score_i = mean_{j≠i} sentence-BLEU(hypothesis c_j, reference c_i), as the original code
    (``sentence_bleu(other, [candidate])``); BLEU is not symmetric, so the orientation decides."""
    assert SHORT_vs_LONG > LONG_vs_SHORT  # which of the two wins depends on the orientation
    scores = bleu_mbr(["a b c d", "a b c d e f g h"], candidates_per_source=2)
    assert scores.tolist() == pytest.approx([LONG_vs_SHORT, SHORT_vs_LONG], abs=1e-9)
    assert int(scores.argmax()) == 1

    scores = bleu_mbr(["a b x c", "a b y c", "a b x c d"], candidates_per_source=3)
    assert scores[0] == pytest.approx((SWAP_ONE + EXTRA_WORD) / 2, abs=1e-9)


def test_bleu_mbr_groups_and_empty_candidates():
    """K per source, source-major; an empty other counts as BLEU 0 (the mean is still over the
    K − 1 others); an empty candidate is never chosen over a non-empty one."""
    scores = bleu_mbr(["a b c d", "a b c d e f g h", "a b x c", ""], candidates_per_source=2)
    assert scores[:3].tolist() == pytest.approx([LONG_vs_SHORT, SHORT_vs_LONG, 0.0], abs=1e-9)
    assert scores[3] == float("-inf")
    assert bleu_mbr(["a b c", "a b c"], candidates_per_source=1).tolist() == [0.0, 0.0]


def test_candidates_are_compared_as_words_without_bpe():
    """Two segmentations of the same words are the same candidate (BLEU 100 between them);
    </s> and padding are not words; <unk> is one word."""
    words = Dictionary()
    for symbol in ("a@@", "b", "ab", "c", "d"):
        words.add_symbol(symbol)
    a_, b, ab, c, d = (words.index(s) for s in ("a@@", "b", "ab", "c", "d"))
    eos, pad, unk = words.eos(), words.pad(), words.unk()
    tokens = torch.tensor([[a_, b, c, d, eos], [ab, c, d, eos, pad], [ab, unk, eos, pad, pad]])
    texts = candidate_strings(tokens, torch.tensor([5, 4, 3]), words)
    assert texts == ["ab c d", "ab c d", "ab UNKNOWNTOKENINHYP"]
    assert bleu_mbr(texts[:2], candidates_per_source=2).tolist() == pytest.approx([100.0, 100.0])


def test_generator_puts_the_bleu_mbr_choice_first():
    """The generator scores its candidates' words and ranks by that score."""
    model = build()
    # The untrained model repeats one word: collapsed, every candidate would be that one word.
    config = DecodingConfig(steps=4, length_beam=3, noise_beam=2, selection="bleu_mbr", remove_repeats=False)
    hypos = decode(DifformerGenerator(model, DICT, config), model)
    for candidates in hypos:
        texts = [DICT.string(h["tokens"]) for h in candidates]
        # The original's bleu_rerank: sentence_bleu(other, [candidate]) averaged over the others.
        scores = [sum(sacrebleu.sentence_bleu(other, [text]).score for j, other in enumerate(texts) if j != i) / 5
                  for i, text in enumerate(texts)]
        assert [float(h["selection_score"]) for h in candidates] == pytest.approx(scores, abs=1e-4)
        assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
