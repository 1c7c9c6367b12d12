"""Lead pairs: a summarization data-bin's training sources, each paired with its own first K words,
added to the data an AR teacher trains on.

An AR Transformer trained from scratch on a small headline set (Gigaword's 25k pairs) first learns
to write the headlines' most frequent words whatever the article says: until the output language is
learnt nothing in the loss rewards reading the source, and in CPU minutes it never gets there. Each
source → its first K words (K the training headlines' mean length in words, as LEAD-K takes) is a
task it learns in a few hundred updates, and it is the one the headlines need first: find the
source's words and copy them, at a headline's length. Trained on both at once it reads the article
for the headlines too.

The lead pairs' sources start with ``<s>``, a symbol of every fairseq dictionary that no source of
the translation task carries, so that the model tells the two tasks apart and the data-bin keeps its
dictionary: the AR data-bin is the original one (its files linked, not copied) plus the lead pairs
as a second training shard, ``train1``, which fairseq's translation task reads with ``train``
(given ``--upsample-primary 1``: at its default of -1 it cannot concatenate shards). The
distillation and the Difformer see the original data-bin only.
"""

import json
import os
import shutil
from pathlib import Path
from typing import List, Optional, Sequence

from difformer_core.errors import DifformerError

#: the continuation marker of the BPE difformer-prepare applies (subword-nmt): a token that ends
#: with it continues into the next one, any other token ends a word
CONTINUATION = "@@"


def lead_tokens(ids: Sequence[int], symbols: Sequence[str], words: int) -> List[int]:
    """The token ids of the first ``words`` words of ``ids`` (BPE tokens; ``symbols[i]`` the
    dictionary's string of id i): the tokens up to and including the ``words``-th one that does not
    end with :data:`CONTINUATION`; all of ``ids`` where it has fewer words."""
    ended = 0
    for end, token in enumerate(ids, start=1):
        if not symbols[token].endswith(CONTINUATION):
            ended += 1
            if ended == words:
                return list(ids[:end])
    return list(ids)


def count_words(ids: Sequence[int], symbols: Sequence[str]) -> int:
    """The words of ``ids`` (BPE tokens): the tokens that do not end with :data:`CONTINUATION`."""
    return sum(not symbols[token].endswith(CONTINUATION) for token in ids)


def _split_files(databin: Path, split: str):
    return sorted(f for f in databin.iterdir() if f.name.startswith(f"{split}.") and f.suffix in (".bin", ".idx"))


def _made_from(databin: Path, words: Optional[int]) -> dict:
    """What a lead data-bin is made from: ``databin`` (its training split's and dictionaries'
    sizes and modification times) and the words asked for."""
    files = sorted(f for f in databin.iterdir() if f.name.startswith(("train.", "dict.")))
    return {"databin": str(databin.resolve()), "words_asked": words,
            "files": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}}


def write_lead_databin(databin: Path, dest: Path, src: str, tgt: str, words: Optional[int] = None) -> Path:
    """The data-bin ``dest``: ``databin``'s dictionaries and splits (linked) and the shard
    ``train1`` of lead pairs, ``<s>`` + each training source → its first ``words`` words (default:
    the mean length in words of the training targets, rounded; at least 1). Written once: a
    ``dest`` made from the same data-bin and words (``lead_pairs.json``, written last) is returned
    as it is; one made from another is written anew."""
    import torch
    from fairseq.data import indexed_dataset

    from .distill import train_prefix, training_sources

    if words is not None and words < 1:
        raise DifformerError(f"lead pairs of {words} words: give at least 1")
    made_from, manifest = _made_from(databin, words), dest / "lead_pairs.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("made_from") == made_from:
        return dest
    sources, dictionary = training_sources(databin, src, tgt)
    targets, _ = training_sources(databin, src, tgt, side=tgt)
    symbols = dictionary.symbols
    if words is None:
        words = max(1, round(sum(count_words(t, symbols) for t in targets) / max(1, len(targets))))
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in (f"dict.{src}.txt", f"dict.{tgt}.txt"):
        shutil.copyfile(databin / name, dest / name)
    for split in ("train", "valid", "test"):
        for f in _split_files(databin, split):
            os.symlink(f.resolve(), dest / f.name)
    pair = train_prefix(databin, src, tgt).name[len("train."):]
    for lang, rows in ((src, ([dictionary.bos()] + s for s in sources)),
                       (tgt, (lead_tokens(s, symbols, words) for s in sources))):
        prefix = str(dest / f"train1.{pair}.{lang}")
        builder = indexed_dataset.make_builder(indexed_dataset.data_file_path(prefix), "mmap",
                                               vocab_size=len(dictionary))
        for row in rows:
            builder.add_item(torch.IntTensor([*row, dictionary.eos()]))
        builder.finalize(indexed_dataset.index_file_path(prefix))
    manifest.write_text(json.dumps({"words": words, "pairs": len(sources), "made_from": made_from}, indent=1) + "\n")
    return dest
