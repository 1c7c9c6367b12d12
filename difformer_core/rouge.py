"""ROUGE as this project reports it, for ``difformer-score`` and the task's ``--eval-rouge``."""

from typing import Dict, Sequence

#: the ROUGE variants reported, and their display names
ROUGE_TYPES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}


def rouge_f1_sums(hyps: Sequence[str], refs: Sequence[str]) -> Dict[str, float]:
    """Σ over sentences of the ROUGE-1/2/L F1 × 100 of each hypothesis against its reference
    (rouge-score, Porter stemming), by variant: divide by the number of sentences for the mean."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    sums = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hyp, ref in zip(hyps, refs):
        scores = scorer.score(ref, hyp)
        for name in ROUGE_TYPES:
            sums[name] += 100 * scores[name].fmeasure
    return sums
