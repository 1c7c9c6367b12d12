"""The data step: Multi30k and Gigaword prepared by difformer-prepare (subsets for the quick check)."""

import sys
from pathlib import Path

from difformer_cli.commands import run_logged
from difformer_cli.whole_split import split_size
from difformer_core.errors import DifformerError

from .commands import say, shell


class DataSteps:
    """The data-bins of a :class:`~benchmarks.pipeline.Pipeline`, prepared on first use."""

    @property
    def databin(self) -> Path:
        """Multi30k prepared by difformer-prepare: joint BPE, one dictionary for both languages."""
        if self._databin is None:
            source = self.args.data
            if self.scale.train_lines:
                source = self.work / "subset"
                source.mkdir(parents=True, exist_ok=True)
                for name, n in (("train", self.scale.train_lines), ("val", self.scale.eval_lines),
                                ("test_2016_flickr", self.scale.eval_lines)):
                    for lang in ("de", "en"):
                        write_head(self.args.data / f"{name}.{lang}", n, source / f"{name}.{lang}")
            destdir = self.work / "data"
            cmd = ["difformer-prepare", "--source-lang", "de", "--target-lang", "en", "--no-tokenize",
                   "--trainpref", source / "train", "--validpref", source / "val",
                   "--testpref", source / "test_2016_flickr", "--bpe-merges", self.scale.bpe_merges,
                   "--destdir", destdir]
            say(f"preparing the data ({destdir})")
            run_logged(cmd, self.work / "logs" / "prepare.log")
            self.results.set("commands", "prepare", shell(cmd))
            self._databin = destdir / "bin"
        return self._databin

    @property
    def gigaword_databin(self) -> Path:
        """Gigaword headline generation prepared by difformer-prepare as examples/gigaword/run.py
        prepares it (the released tokens kept, joint BPE); the validation set is both the valid and
        the test split (the data's README says to select and report on it)."""
        destdir = self.work / "gigaword"
        if not (destdir / "bin" / "dict.tgt.txt").exists():
            source = self.args.gigaword
            if self.scale.train_lines:
                source = self.work / "gigaword-subset"
                source.mkdir(parents=True, exist_ok=True)
                for name, n in (("train", self.scale.train_lines), ("valid", self.scale.eval_lines)):
                    for lang in ("src", "tgt"):
                        write_head(self.args.gigaword / f"{name}.{lang}", n, source / f"{name}.{lang}")
            cmd = ["difformer-prepare", "--source-lang", "src", "--target-lang", "tgt", "--no-tokenize",
                   "--trainpref", source / "train", "--validpref", source / "valid", "--testpref", source / "valid",
                   "--bpe-merges", self.scale.bpe_merges, "--destdir", destdir]
            say(f"preparing Gigaword ({destdir})")
            run_logged(cmd, self.work / "logs" / "prepare-gigaword.log")
            self.results.set("commands", "prepare gigaword", shell(cmd))
        return destdir / "bin"


def write_head(source: Path, n: int, destination: Path):
    """The first ``n`` lines of ``source`` into ``destination`` (the quick check's subsets)."""
    lines = source.read_text(encoding="utf-8").splitlines()[:n]
    destination.write_text("\n".join(lines) + "\n", encoding="utf-8")


def count_sentences(databin: Path, split: str = "test") -> int:
    """The number of sentences of ``split`` in a fairseq data-bin (one language pair)."""
    try:
        return split_size(databin, split)
    except DifformerError as exc:
        sys.exit(f"benchmark: {exc}")
