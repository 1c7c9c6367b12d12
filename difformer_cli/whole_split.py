"""``fairseq-generate`` over a whole split, every sentence of it translated once and checked.

fairseq 0.12.3 cuts a split into batches and, with its default ``--required-batch-size-multiple
8``, drops the last batch when its size is not a multiple of 8: for ``--task translation`` the
last n mod 8 sentences go untranslated without a word. (The plugin's tasks keep every sentence by
themselves, :mod:`fairseq_difformer.batching`.) Every tool here that runs fairseq-generate over a
split (distillation, the quickstart's and the examples' decodings, the benchmark's) passes
:data:`EVERY_SENTENCE` and checks the output with :func:`check_every_sentence`.
"""

from pathlib import Path
from typing import Dict, Iterable

from difformer_core.errors import DifformerError

from .generate_output import parse_generate_output

#: fairseq-generate's batching with no sentence left out
EVERY_SENTENCE = ("--required-batch-size-multiple", "1")


def split_size(databin, split: str) -> int:
    """The number of sentences of ``split`` in a fairseq data-bin (its first language pair)."""
    from fairseq.data import indexed_dataset

    databin = Path(databin)
    sides = sorted(databin.glob(f"{split}.*-*.*.idx"))
    if not sides:
        raise DifformerError(f"{databin} has no {split} split (no {split}.SRC-TGT.*.idx)")
    prefix = str(sides[0].with_suffix(""))
    dataset = indexed_dataset.make_dataset(prefix, indexed_dataset.infer_dataset_impl(prefix))
    if dataset is None:
        raise DifformerError(f"{sides[0].with_suffix('.bin')} does not load as a fairseq dataset")
    return len(dataset)


#: what to do when fairseq-generate left sentences out
GENERATE_ADVICE = (f"give fairseq-generate {' '.join(EVERY_SENTENCE)}, and --skip-invalid-size-inputs-valid-test "
                   f"only where sentences may be left out")


def check_every_sentence(translated_ids: Iterable[int], databin, split: str, output,
                         advice: str = GENERATE_ADVICE) -> int:
    """That the sentence ids of a translation of ``split`` (e.g. the H- lines of fairseq-generate's
    ``output``) are each sentence of the split, 0 … n − 1; returns n, else a
    :class:`DifformerError` names what is missing, then ``advice``."""
    expected = split_size(databin, split)
    ids = set(translated_ids)
    missing = sorted(set(range(expected)) - ids)
    if missing or len(ids) != expected:
        raise DifformerError(
            f"{output} translates {len(ids)} of the {expected} sentences of {Path(databin) / split} "
            f"(first missing: {missing[0] if missing else 'none'}): {advice}"
        )
    return expected


def hypothesis_ids(entries: Dict[int, Dict[str, str]]):
    """The sentence ids that have a hypothesis in :func:`~difformer_cli.generate_output.parse_generate_output`'s
    result."""
    return [i for i, entry in entries.items() if "H" in entry]


def check_generate_output(output, databin, split: str) -> int:
    """:func:`check_every_sentence` of the H- lines of fairseq-generate's ``output`` file."""
    entries = parse_generate_output(Path(output).read_text(encoding="utf-8").splitlines())
    return check_every_sentence(hypothesis_ids(entries), databin, split, output)
