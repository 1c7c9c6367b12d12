"""Lead pairs (difformer_cli/lead_pairs.py): each training source, tagged with <s>, → its first k
words, as a second training shard beside the data-bin's own pairs."""

import json
import shutil

import pytest
import torch
from fairseq.data import Dictionary, data_utils, indexed_dataset

from difformer_cli.lead_pairs import count_words, lead_tokens, write_lead_databin
from difformer_core.errors import DifformerError

SYMBOLS = ["new@@", "york", "is", "sun@@", "n@@", "y"]


@pytest.mark.parametrize("words, expected", [(1, [0, 1]), (2, [0, 1, 2]), (3, [0, 1, 2, 3, 4, 5]),
                                             (4, [0, 1, 2, 3, 4, 5])])
def test_lead_tokens_end_with_the_kth_word_and_keep_its_bpe_pieces(words, expected):
    assert lead_tokens([0, 1, 2, 3, 4, 5], SYMBOLS, words) == expected


def test_count_words_counts_the_tokens_that_end_a_word():
    assert count_words([0, 1, 2, 3, 4, 5], SYMBOLS) == 3 and count_words([], SYMBOLS) == 0


def _rows(databin, split, lang, dictionary):
    dataset = data_utils.load_indexed_dataset(str(databin / f"{split}.de-en.{lang}"), dictionary)
    return [dataset[i].tolist() for i in range(len(dataset))]


def test_lead_databin_adds_tagged_sources_with_their_first_k_words_as_a_second_train_shard(databin, tmp_path):
    dictionary = Dictionary.load(str(databin / "dict.de.txt"))
    symbols = dictionary.symbols
    dest = write_lead_databin(databin, tmp_path / "ar-bin", "de", "en")

    sources = _rows(databin, "train", "de", dictionary)
    targets = _rows(databin, "train", "en", dictionary)
    k = round(sum(count_words(t[:-1], symbols) for t in targets) / len(targets))
    manifest = json.loads((dest / "lead_pairs.json").read_text())
    assert manifest["words"] == k and manifest["pairs"] == len(sources)
    assert _rows(dest, "train1", "de", dictionary) == [[dictionary.bos(), *s] for s in sources]
    assert _rows(dest, "train1", "en", dictionary) == [[*lead_tokens(s[:-1], symbols, k), dictionary.eos()]
                                                        for s in sources]
    # The data-bin's own files are linked, its dictionaries copied unchanged.
    assert (dest / "train.de-en.de.bin").resolve() == (databin / "train.de-en.de.bin").resolve()
    assert (dest / "valid.de-en.en.idx").is_symlink()
    assert (dest / "dict.en.txt").read_text() == (databin / "dict.en.txt").read_text()

    # fairseq-train reads both shards (the translation task's loader, with combine as it trains).
    from fairseq.tasks.translation import load_langpair_dataset

    train = load_langpair_dataset(str(dest), "train", "de", dictionary, "en", dictionary, combine=True,
                                  dataset_impl="mmap", upsample_primary=1, left_pad_source=True,
                                  left_pad_target=False, max_source_positions=1024, max_target_positions=1024)
    assert len(train) == 2 * len(sources)

    # Written once: a second call leaves it as it is; other words are the caller's to ask for.
    before = (dest / "train1.de-en.en.bin").stat().st_mtime_ns
    assert write_lead_databin(databin, dest, "de", "en") == dest
    assert (dest / "train1.de-en.en.bin").stat().st_mtime_ns == before
    short = write_lead_databin(databin, tmp_path / "two-words", "de", "en", words=2)
    assert all(count_words(row[:-1], symbols) == min(2, count_words(s[:-1], symbols))
               for row, s in zip(_rows(short, "train1", "en", dictionary), sources))


def test_lead_databin_needs_at_least_one_word(databin, tmp_path):
    with pytest.raises(DifformerError, match="lead pairs of 0 words: give at least 1"):
        write_lead_databin(databin, tmp_path / "none", "de", "en", words=0)
    assert not (tmp_path / "none").exists()



def test_lead_databin_is_written_anew_when_its_data_bin_changes(databin, tmp_path):
    """Other words, or a data-bin prepared again (here: its training split cut to one pair), make
    the lead data-bin anew instead of leaving pairs of the old data."""
    copy = tmp_path / "bin"
    shutil.copytree(databin, copy)
    dest = write_lead_databin(copy, tmp_path / "ar-bin", "de", "en", words=3)
    assert json.loads((dest / "lead_pairs.json").read_text())["words"] == 3
    write_lead_databin(copy, dest, "de", "en", words=2)
    assert json.loads((dest / "lead_pairs.json").read_text())["words"] == 2

    dictionary = Dictionary.load(str(copy / "dict.de.txt"))
    for lang in ("de", "en"):
        first = _rows(databin, "train", lang, dictionary)[0]
        prefix = str(copy / f"train.de-en.{lang}")
        builder = indexed_dataset.make_builder(indexed_dataset.data_file_path(prefix), "mmap",
                                               vocab_size=len(dictionary))
        builder.add_item(torch.IntTensor(first))
        builder.finalize(indexed_dataset.index_file_path(prefix))
    write_lead_databin(copy, dest, "de", "en", words=2)
    assert json.loads((dest / "lead_pairs.json").read_text())["pairs"] == 1
    assert len(_rows(dest, "train1", "en", dictionary)) == 1
