"""The data step: Multi30k and AESLC prepared by difformer-prepare (subsets for the quick check)."""

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
    def aeslc_databin(self) -> Path:
        """AESLC prepared by difformer-prepare from its JSON lines (bodies cut to 200 words, joint
        BPE); dev is both the valid and the test split (AESLC's test set is not used here)."""
        destdir = self.work / "aeslc"
        if not (destdir / "bin" / "dict.subject.txt").exists():
            train, dev = self.args.aeslc / "train.jsonl", self.args.aeslc / "dev.jsonl"
            if self.scale.train_lines:
                subset = self.work / "aeslc-subset"
                subset.mkdir(parents=True, exist_ok=True)
                for path, n in ((train, self.scale.train_lines), (dev, self.scale.eval_lines)):
                    write_head(path, n, subset / path.name)
                train, dev = subset / train.name, subset / dev.name
            cmd = ["difformer-prepare", "--train-jsonl", train, "--valid-jsonl", dev, "--test-jsonl", dev,
                   "--source-field", "body", "--target-field", "subject", "--source-lang", "body",
                   "--target-lang", "subject", "--max-source-words", 200, "--bpe-merges", self.scale.bpe_merges,
                   "--destdir", destdir]
            say(f"preparing AESLC ({destdir})")
            run_logged(cmd, self.work / "logs" / "prepare-aeslc.log")
            self.results.set("commands", "prepare aeslc", shell(cmd))
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
