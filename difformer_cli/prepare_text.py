"""``difformer-prepare-text``: monolingual or labelled sentences → fairseq data-bins.

Text (for ``--task difformer_lm``, a text-free Difformer)::

    difformer-prepare-text --text sst2/train.tsv multi30k/train.en qqp/train.src --destdir lm
    → lm/codes, lm/bin/{dict.txt, train.*, valid.*}     (fairseq-preprocess --only-source)

Labelled sentences (for ``--task sentence_prediction``), with the text model's BPE and dictionary::

    difformer-prepare-text --labelled --train sst2/train.tsv --valid sst2/dev.tsv \\
        --bpe-codes lm/codes --srcdict lm/bin/dict.txt --destdir sst2 [--label-fraction 0.01]
    → sst2/input0/{dict.txt, train.*, valid.*}, sst2/label/{dict.txt, train.*, valid.*}

Inputs: ``.tsv`` files in the GLUE layout (a header with a ``sentence`` column, and ``label`` for
labelled data), ``.jsonl`` files (the text in ``--jsonl-field``), or plain text, one sentence per
line. Sentences are Moses-tokenised (English rules; ``--no-tokenize`` for tokenised text) and
optionally lowercased, empty ones dropped, then segmented with subword-nmt. DESTDIR is built
beside itself and renamed when finished; a re-run with the same inputs and options reuses it.
"""

import argparse
import csv
import hashlib
import json
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from difformer_core.errors import DifformerError

from .commands import CommandFailed, run_logged
from .prepare import (bpe, destdir_lock, fresh_build_folder, hash_and_count_lines, moses, publish, read_lines,
                      remove_dead_builds, run_preparation)

PROG = "difformer-prepare-text"


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="Sentences → BPE → fairseq data-bin: monolingual text "
                                "for --task difformer_lm, or labelled sentences for --task sentence_prediction.")
    p.add_argument("--text", nargs="+", metavar="FILE", help="text files: every sentence is training text")
    p.add_argument("--labelled", action="store_true",
                   help="labelled sentences (--train/--valid .tsv with sentence and label columns) → "
                        "input0/ and label/ for fairseq's sentence_prediction task")
    p.add_argument("--train", metavar="FILE", help="--labelled: the training sentences")
    p.add_argument("--valid", nargs="+", metavar="FILE",
                   help="validation sentences (text: default, --valid-lines drawn from --text)")
    p.add_argument("--valid-lines", type=int, default=1000, metavar="N",
                   help="text without --valid: N sentences drawn from --text for validation (default 1000)")
    p.add_argument("--label-fraction", type=float, default=1.0, metavar="P",
                   help="--labelled: keep this fraction of the training sentences of each label "
                        "(label efficiency; default 1)")
    p.add_argument("--seed", type=int, default=1, help="seed of the validation draw and --label-fraction")
    p.add_argument("--jsonl-field", metavar="NAME", help="the text field of .jsonl inputs")
    p.add_argument("--no-tokenize", dest="tokenize", action="store_false",
                   help="the input is already tokenised: only normalise whitespace")
    p.add_argument("--lowercase", action="store_true", help="lowercase after tokenisation")
    p.add_argument("--bpe-merges", type=int, metavar="N", help="learn N BPE merges (default 8000)")
    p.add_argument("--bpe-codes", metavar="FILE", help="apply these subword-nmt codes instead")
    p.add_argument("--srcdict", metavar="FILE", help="the fairseq dictionary to binarise with (with --bpe-codes)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="fairseq-preprocess workers")
    p.add_argument("--destdir", required=True, metavar="DIR")
    return p


def parse_args(argv=None):
    parser = build_parser()
    options = parser.parse_args(None if argv is None else [str(a) for a in argv])
    if options.labelled:
        if options.text or not (options.train and options.valid):
            parser.error("--labelled takes --train FILE and --valid FILE (not --text)")
        if not (options.bpe_codes and options.srcdict):
            parser.error("--labelled needs the text model's --bpe-codes and --srcdict, so that its "
                         "input matches the checkpoint's dictionary")
    elif not options.text:
        parser.error("give --text FILE … (or --labelled with --train and --valid)")
    if not 0 < options.label_fraction <= 1:
        parser.error(f"--label-fraction must be in (0, 1], got {options.label_fraction}")
    if options.bpe_codes and options.bpe_merges:
        parser.error("--bpe-merges learns new codes, --bpe-codes applies existing ones: use one")
    if options.srcdict and not options.bpe_codes:
        parser.error("--srcdict needs the --bpe-codes it was built with")
    if not options.bpe_codes:
        options.bpe_merges = options.bpe_merges or 8000
    return options


def read_records(path: str, jsonl_field, labelled: bool):
    """(sentence, label or None) of every line of a .tsv, .jsonl or plain text file."""
    suffix = Path(path).suffix
    if suffix == ".tsv":
        with open(path, encoding="utf-8", newline="") as f:
            rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            needed = ("sentence", "label") if labelled else ("sentence",)
            missing = [c for c in needed if c not in (rows.fieldnames or [])]
            if missing:
                raise DifformerError(f"{path}: no {' or '.join(missing)} column in its header "
                                     f"({', '.join(rows.fieldnames or [])}): the GLUE layout is expected")
            for number, row in enumerate(rows, 2):
                if labelled and not (row.get("label") or "").strip():
                    raise DifformerError(f"{path}:{number}: no label")
                yield row["sentence"] or "", row["label"].strip() if labelled else None
    elif labelled:
        raise DifformerError(f"{path}: labelled sentences come as .tsv with sentence and label columns")
    elif suffix == ".jsonl":
        if not jsonl_field:
            raise DifformerError(f"{path}: give --jsonl-field NAME, the field that holds the text")
        for number, line in enumerate(read_lines(path), 1):
            try:
                text = json.loads(line)[jsonl_field]
            except (ValueError, KeyError, TypeError):
                raise DifformerError(f"{path}:{number}: no text field {jsonl_field!r}") from None
            yield str(text), None
    else:
        for line in read_lines(path):
            yield line, None


def normalise(text, tokenize, lowercase):
    text = " ".join(text.split())
    if tokenize and text:
        text = moses("en").tokenize(text, escape=False, return_str=True)
    return text.lower() if lowercase else text


def collect(paths, options, labelled):
    """The non-empty normalised (sentence, label) records of ``paths``."""
    records = []
    for path in paths:
        for text, label in read_records(path, options.jsonl_field, labelled):
            text = normalise(text, options.tokenize, options.lowercase)
            if text:
                records.append((text, label))
    if not records:
        raise DifformerError(f"{', '.join(paths)}: no non-empty sentence")
    return records


def keep_fraction(records, fraction, seed):
    """``fraction`` of the records of each label (at least one per label), drawn with ``seed``."""
    by_label = defaultdict(list)
    for record in records:
        by_label[record[1]].append(record)
    rng, kept = random.Random(seed), []
    for label in sorted(by_label):
        group = by_label[label]
        kept += rng.sample(group, max(1, round(fraction * len(group))))
    rng.shuffle(kept)
    return kept


def splits_of(options):
    """{split: [(sentence, label)]} as the options ask."""
    if options.labelled:
        train = collect([options.train], options, True)
        if options.label_fraction < 1:
            train = keep_fraction(train, options.label_fraction, options.seed)
        return {"train": train, "valid": collect(options.valid, options, True)}
    text = collect(options.text, options, False)
    if options.valid:
        return {"train": text, "valid": collect(options.valid, options, False)}
    if not 0 < options.valid_lines < len(text):
        raise DifformerError(f"--valid-lines {options.valid_lines}: the text has {len(text)} sentences")
    order = list(range(len(text)))
    random.Random(options.seed).shuffle(order)
    held = set(order[: options.valid_lines])
    return {"train": [r for i, r in enumerate(text) if i not in held],
            "valid": [r for i, r in enumerate(text) if i in held]}


def learn_codes(sentences, merges, codes: Path):
    from subword_nmt.learn_bpe import learn_bpe

    corpus = codes.with_suffix(".corpus")
    corpus.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    with open(corpus, encoding="utf-8") as infile, open(codes, "w", encoding="utf-8") as outfile:
        learn_bpe(infile, outfile, merges)
    corpus.unlink()


def preprocess(build: Path, name: str, files: dict, srcdict, workers):
    """``fairseq-preprocess --only-source`` of {split: file} into build/name."""
    script = shutil.which("fairseq-preprocess")
    cmd = [script] if script else [sys.executable, "-m", "fairseq_cli.preprocess"]
    cmd += ["--only-source", "--destdir", str(build / name), "--workers", str(workers)]
    for split, path in files.items():
        cmd += [f"--{split}pref", str(path)]
    if srcdict:
        cmd += ["--srcdict", str(srcdict)]
    try:
        run_logged(cmd, build / f"preprocess-{name}.log")
    except CommandFailed as exc:
        raise DifformerError(f"fairseq-preprocess failed (exit {exc.returncode}):\n{exc.tail}") from None


def identity(options):
    """What the output depends on: the options that shape it and the inputs' contents (a missing
    or empty input stops here, named with its flag)."""
    files = [("--text", f) for f in options.text or []] + [("--train", options.train)] * bool(options.train)
    files += [("--valid", f) for f in options.valid or []]
    files += [(flag, getattr(options, name)) for flag, name in (("--bpe-codes", "bpe_codes"), ("--srcdict", "srcdict"))
              if getattr(options, name)]
    shaping = {k: getattr(options, k) for k in ("labelled", "valid_lines", "label_fraction", "seed", "jsonl_field",
                                                "tokenize", "lowercase", "bpe_merges")}
    return {"options": shaping, "inputs": {path: hash_and_count_lines(path, flag)[0] for flag, path in files}}


def prepare(options) -> Path:
    """Build (or reuse) DESTDIR, one run at a time (:func:`~difformer_cli.prepare.destdir_lock`)."""
    dest = Path(options.destdir)
    with destdir_lock(PROG, dest):
        remove_dead_builds(dest.resolve())
        return build_or_reuse(options, dest)


def build_or_reuse(options, dest: Path) -> Path:
    """DESTDIR reused when its manifest records these inputs and options, else built beside it and
    published whole (:func:`~difformer_cli.prepare.publish`)."""
    ident = identity(options)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
    manifest = dest / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("hash") == digest:
        print(f"{dest} already holds this data (manifest.json): reusing it", file=sys.stderr)
        return dest
    if dest.exists() and any(dest.iterdir()) and not manifest.is_file():
        raise DifformerError(f"--destdir {dest} is not a folder {PROG} made: use another or remove it")
    splits = splits_of(options)
    build = fresh_build_folder(dest.resolve())
    try:
        codes = build / "codes"
        if options.bpe_codes:
            shutil.copyfile(options.bpe_codes, codes)
        else:
            learn_codes([s for s, _ in splits["train"]], options.bpe_merges, codes)
        segmenter = bpe(str(codes))
        text_files, label_files = {}, {}
        for split, records in splits.items():
            text_files[split] = build / f"{split}.bpe"
            text_files[split].write_text("".join(segmenter.process_line(s) + "\n" for s, _ in records), encoding="utf-8")
            if options.labelled:
                label_files[split] = build / f"{split}.label"
                label_files[split].write_text("".join(f"{label}\n" for _, label in records), encoding="utf-8")
        preprocess(build, "input0" if options.labelled else "bin", text_files, options.srcdict, options.workers)
        if options.labelled:
            preprocess(build, "label", label_files, None, options.workers)
        counts = {split: len(records) for split, records in splits.items()}
        (build / "manifest.json").write_text(json.dumps({"hash": digest, **ident, "counts": counts}, indent=2))
        publish(build, dest.resolve())
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print(f"{PROG}: {', '.join(f'{k} {v}' for k, v in counts.items())} sentences in {dest}", file=sys.stderr)
    return dest


def main(argv=None):
    run_preparation(PROG, prepare, parse_args(argv))


if __name__ == "__main__":
    main()
