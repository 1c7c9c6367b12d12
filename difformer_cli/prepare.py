"""``difformer-prepare``: raw parallel text → fairseq data-bin with a joint BPE dictionary.

Stages: read the pairs (plain ``PREFIX.<lang>`` files or JSON lines) → Moses tokenisation
(sacremoses) with optional lowercasing → joint BPE (subword-nmt; learned on the training split of
both sides, or an existing code file applied) → ``fairseq-preprocess --joined-dictionary``.

DESTDIR receives ``tok/``, ``bpe/``, ``codes``, ``bin/`` (the data-bin), ``preprocess.log`` and,
last, ``manifest.json`` (options, input files with path/size/mtime/sha256, line counts).
Everything is built in ``DESTDIR/.tmp-*`` and moved into place at the end, so an interrupted run
leaves neither a manifest nor a ``bin/``; a re-run with the same inputs and options reuses the
finished output, and a DESTDIR prepared from other inputs or options is refused.

From Python: ``prepare(parse_args([...]))`` returns the data-bin path.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import islice
from pathlib import Path
from typing import Optional

from .errors import DifformerError

PROG = "difformer-prepare"
SPLITS = ("train", "valid", "test")
# Moved from the build directory into DESTDIR in this order; manifest.json follows them.
OUTPUTS = ("tok", "bpe", "codes", "bin")
DEFAULT_BPE_MERGES = 8000
BATCH_LINES = 20000


class PrepareError(DifformerError):
    """Bad input for difformer-prepare; the message names the file (and line)."""


@dataclass(frozen=True)
class TextSettings:
    """How one line of text is normalised before BPE (picklable, for worker processes)."""

    source_lang: str
    target_lang: str
    tokenize: bool
    lowercase: bool
    max_source_words: Optional[int]


# ---------------------------------------------------------------------------------------------
# Command line


def positive_int(text):
    """argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    """The ``difformer-prepare`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Raw parallel text → Moses tokens → joint BPE → fairseq data-bin "
        "(--joined-dictionary). Re-running with the same inputs and options reuses DESTDIR.",
    )
    inputs = parser.add_argument_group("inputs (train required; valid and test optional)")
    for split in SPLITS:
        inputs.add_argument(f"--{split}pref", metavar="PREFIX",
                            help=f"{split} split as plain files PREFIX.<source-lang> and PREFIX.<target-lang>, "
                            "one sentence per line")
    for split in SPLITS:
        inputs.add_argument(f"--{split}-jsonl", metavar="FILE",
                            help=f"{split} split as JSON lines (one object per line; see --source-field)")
    inputs.add_argument("--source-field", metavar="NAME", help="JSON field holding the source text")
    inputs.add_argument("--target-field", metavar="NAME", help="JSON field holding the target text")
    inputs.add_argument("--source-lang", metavar="LANG",
                        help="source language: the file suffix and the Moses tokeniser language "
                        "(English rules for names Moses does not know); default 'src' for JSON lines")
    inputs.add_argument("--target-lang", metavar="LANG",
                        help="target language (as --source-lang); default 'tgt' for JSON lines")
    inputs.add_argument("--max-source-words", type=positive_int, metavar="N",
                        help="keep only the first N tokens of each source (e.g. for summarization)")

    text = parser.add_argument_group("text processing")
    text.add_argument("--lowercase", action="store_true", help="lowercase after tokenisation")
    text.add_argument("--no-tokenize", dest="tokenize", action="store_false",
                      help="the input is already tokenised: only normalise whitespace")
    text.add_argument("--bpe-merges", type=positive_int, metavar="N",
                      help=f"number of joint BPE merges to learn (default {DEFAULT_BPE_MERGES})")
    text.add_argument("--bpe-codes", metavar="FILE",
                      help="apply this subword-nmt code file instead of learning one")
    text.add_argument("--srcdict", metavar="FILE",
                      help="reuse this fairseq dictionary for both sides (with --bpe-codes: reproduces "
                      "a released model's dictionary exactly)")

    parser.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="processes for tokenisation, BPE and fairseq-preprocess (default 1)")
    parser.add_argument("--destdir", required=True, metavar="DIR",
                        help="output folder: tok/, bpe/, codes, bin/ (the data-bin), manifest.json")
    return parser


def parse_args(argv=None):
    """Parse and check the command line (strings or paths); fills in the defaults that depend on
    the input kind."""
    parser = build_parser()
    options = parser.parse_args(None if argv is None else [str(arg) for arg in argv])
    plain = [s for s in SPLITS if getattr(options, f"{s}pref")]
    jsonl = [s for s in SPLITS if getattr(options, f"{s}_jsonl")]
    if plain and jsonl:
        parser.error("use either --*pref (plain files) or --*-jsonl (JSON lines), not both")
    if "train" not in plain + jsonl:
        parser.error("the train split is required: --trainpref PREFIX or --train-jsonl FILE")
    if jsonl:
        if not (options.source_field and options.target_field):
            parser.error("JSON lines need --source-field and --target-field")
        options.source_lang = options.source_lang or "src"
        options.target_lang = options.target_lang or "tgt"
    elif options.source_field or options.target_field:
        parser.error("--source-field/--target-field only apply to --*-jsonl inputs")
    elif not (options.source_lang and options.target_lang):
        parser.error("plain files need --source-lang and --target-lang (the file suffixes)")
    if options.source_lang == options.target_lang:
        parser.error("--source-lang and --target-lang must differ")
    if options.bpe_codes and options.bpe_merges:
        parser.error("--bpe-merges learns new codes, --bpe-codes applies existing ones: use one")
    if options.srcdict and not options.bpe_codes:
        parser.error("--srcdict needs the --bpe-codes it was built with")
    if not options.bpe_codes:
        options.bpe_merges = options.bpe_merges or DEFAULT_BPE_MERGES
    return options


def main(argv=None):
    """Console entry point: bad input ends with ``difformer-prepare: error: …`` and exit 2."""
    options = parse_args(argv)
    try:
        prepare(options)
    except PrepareError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was kept as finished", file=sys.stderr)
        sys.exit(130)


# ---------------------------------------------------------------------------------------------
# The pipeline


def prepare(options) -> Path:
    """Build (or reuse) ``options.destdir`` from options as returned by :func:`parse_args`;
    returns the data-bin folder."""
    dest = Path(options.destdir)
    if dest.exists() and not dest.is_dir():
        raise PrepareError(f"--destdir {dest} is a file")
    inputs = split_inputs(options)
    identity = {"options": describe_options(options), "inputs": describe_inputs(options, inputs)}
    if finished(dest, identity, options, inputs):
        print(f"{dest} already holds this dataset (manifest.json): reusing {dest / 'bin'}")
        return dest / "bin"
    check_inputs(options, inputs)
    identity = {"options": describe_options(options, checksum=True),
                "inputs": describe_inputs(options, inputs, checksum=True)}
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(".tmp-*"):
        log(f"removing {stale}, left by an interrupted run")
        shutil.rmtree(stale)
    build = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest))
    try:
        counts = build_all(options, inputs, build, dest / "preprocess.log")
        publish(build, dest, {**identity, "counts": counts})
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print(f"data-bin ready: {dest / 'bin'}")
    return dest / "bin"


def build_all(options, inputs, build: Path, log_path: Path):
    """Run every stage inside ``build``; returns the per-split line counts."""
    langs = (options.source_lang, options.target_lang)
    settings = TextSettings(moses_language(langs[0]), moses_language(langs[1]),
                            options.tokenize, options.lowercase, options.max_source_words)
    codes = build / "codes"
    if options.bpe_codes:
        shutil.copyfile(options.bpe_codes, codes)
    pool_context = multiprocessing.Pool(options.workers) if options.workers > 1 else nullcontext()
    with pool_context as pool:
        counts = {split: tokenize_split(split, source, options, settings, build / "tok", pool)
                  for split, source in inputs.items()}
        if not options.bpe_codes:
            learn_codes(build / "tok", langs, options.bpe_merges, codes, options.workers)
        start = time.monotonic()
        for split in inputs:
            for lang in langs:
                apply_codes(codes, build / "tok" / f"{split}.{lang}", build / "bpe" / f"{split}.{lang}", pool)
        log(f"applied BPE to {len(inputs) * 2} files ({elapsed(start)})")
    binarize(options, inputs, build, log_path, counts)
    return counts


def split_inputs(options):
    """{split: ("plain", PREFIX) or ("jsonl", FILE)} for the splits given."""
    inputs = {}
    for split in SPLITS:
        if getattr(options, f"{split}pref"):
            inputs[split] = ("plain", getattr(options, f"{split}pref"))
        elif getattr(options, f"{split}_jsonl"):
            inputs[split] = ("jsonl", getattr(options, f"{split}_jsonl"))
    return inputs


def input_files(options, kind, location):
    """{role: path} of one split's input files."""
    if kind == "jsonl":
        return {"jsonl": location}
    return {"source": f"{location}.{options.source_lang}", "target": f"{location}.{options.target_lang}"}


# ---------------------------------------------------------------------------------------------
# Manifest: what a finished DESTDIR was built from


def describe_file(path, flag, checksum=False):
    """Path, size and mtime (and sha256) of an input file; a missing or empty one is an error."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise PrepareError(f"{flag} {path}: no such file")
    stat = resolved.stat()
    if stat.st_size == 0:
        raise PrepareError(f"{flag} {path}: the file is empty")
    description = {"path": str(resolved), "size": stat.st_size, "mtime": stat.st_mtime}
    if checksum:
        description["sha256"] = sha256(resolved)
    return description


def sha256(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_options(options, checksum=False):
    """The options that shape the output (--workers and --destdir do not)."""
    def optional_file(path, flag):
        return describe_file(path, flag, checksum) if path else None

    return {
        "source_lang": options.source_lang, "target_lang": options.target_lang,
        "source_field": options.source_field, "target_field": options.target_field,
        "tokenize": options.tokenize, "lowercase": options.lowercase,
        "max_source_words": options.max_source_words, "bpe_merges": options.bpe_merges,
        "bpe_codes": optional_file(options.bpe_codes, "--bpe-codes"),
        "srcdict": optional_file(options.srcdict, "--srcdict"),
    }


def describe_inputs(options, inputs, checksum=False):
    """{split: {role: file description}} for every input file."""
    return {
        split: {role: describe_file(path, f"--{split}{'-jsonl' if kind == 'jsonl' else 'pref'}", checksum)
                for role, path in input_files(options, kind, location).items()}
        for split, (kind, location) in inputs.items()
    }


def differences(old, new, where=""):
    """Readable differences between a manifest's record and the current inputs and options."""
    if isinstance(new, dict) and "mtime" in new:
        return [] if same_file(old, new) else [f"{where}: {describe_change(old, new)}"]
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in list(old) + [k for k in new if k not in old]:
            found += differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return found
    return [] if old == new else [f"{where}: {brief(old)} → {brief(new)}"]


def brief(value):
    """A recorded value for a message: a file by its path, anything else as repr."""
    return value["path"] if isinstance(value, dict) and "path" in value else repr(value)


def same_file(old, new):
    """Same path and size, and the same mtime or (after a touch or a copy) the same content."""
    if not isinstance(old, dict) or (old.get("path"), old.get("size")) != (new["path"], new["size"]):
        return False
    return old.get("mtime") == new["mtime"] or old.get("sha256") == sha256(new["path"])


def describe_change(old, new):
    """How an input file differs from the one recorded."""
    if not isinstance(old, dict) or old.get("path") != new["path"]:
        return f"{brief(old)} → {new['path']}"
    return f"{new['path']} has changed"


def finished(dest: Path, identity, options, inputs):
    """True if DESTDIR holds a finished build of exactly this dataset; refuses another dataset."""
    manifest = dest / "manifest.json"
    if not manifest.exists():
        return False
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        recorded = {key: recorded[key] for key in identity}
    except (OSError, ValueError, KeyError, TypeError):
        raise PrepareError(f"{manifest} is unreadable: use another --destdir or remove it")
    found = differences(recorded, identity)
    if found:
        more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
        raise PrepareError(f"{dest} holds a different dataset ({'; '.join(found[:3])}{more}): "
                           "use another --destdir or remove it")
    missing = [path for path in expected_outputs(dest, options, inputs) if not path.exists()]
    if missing:
        log(f"{dest} lacks {missing[0]} although its manifest matches: building it again")
        manifest.unlink()
        return False
    return True


def expected_outputs(dest: Path, options, inputs):
    """The files a finished DESTDIR has."""
    src, tgt = options.source_lang, options.target_lang
    paths = [dest / "codes", dest / "bin" / f"dict.{src}.txt", dest / "bin" / f"dict.{tgt}.txt"]
    for split in inputs:
        for lang in (src, tgt):
            paths += [dest / "tok" / f"{split}.{lang}", dest / "bpe" / f"{split}.{lang}"]
            paths += [dest / "bin" / f"{split}.{src}-{tgt}.{lang}.{ext}" for ext in ("bin", "idx")]
    return paths


def publish(build: Path, dest: Path, manifest):
    """Move the finished outputs into DESTDIR, then write manifest.json (atomically) last."""
    for name in OUTPUTS:
        move_into_place(build / name, dest / name)
    written = build / "manifest.json"
    written.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(written, dest / "manifest.json")


def move_into_place(source: Path, target: Path):
    """Replace ``target`` (left by an interrupted run, if anything) with ``source``."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(source, target)


# ---------------------------------------------------------------------------------------------
# Input checks (before anything is written)


def check_inputs(options, inputs):
    """Reject unequal plain files and malformed code or dictionary files, naming file and line."""
    for split, (kind, location) in inputs.items():
        if kind == "plain":
            files = input_files(options, kind, location)
            counts = {role: count_lines(path) for role, path in files.items()}
            if counts["source"] != counts["target"]:
                raise PrepareError(
                    f"--{split}pref: {files['source']} has {counts['source']} lines but "
                    f"{files['target']} has {counts['target']}: the files must be line-parallel")
    if options.bpe_codes:
        check_codes(options.bpe_codes)
    if options.srcdict:
        check_dictionary(options.srcdict)


def count_lines(path):
    """Number of lines (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def read_lines(path):
    """(line number, text without the newline) for each line of a UTF-8 file."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise PrepareError(f"{path}:{number}: not UTF-8 text") from None


def check_codes(path):
    """A subword-nmt code file: an optional ``#version:`` line, then one ``left right`` pair a line."""
    for number, line in read_lines(path):
        if not (number == 1 and line.startswith("#version:")) and len(line.strip(" ").split(" ")) != 2:
            raise PrepareError(f"--bpe-codes {path}:{number}: expected two space-separated symbols, "
                               f"got {line!r}")


def check_dictionary(path):
    """A fairseq dictionary: ``<token> <count> [#fairseq:overwrite]`` a line, no duplicate tokens."""
    seen = set()
    for number, line in read_lines(path):
        fields = line.rstrip().split(" ")
        overwrite = fields[-1] == "#fairseq:overwrite"
        word_and_count = fields[:-1] if overwrite else fields
        if len(word_and_count) < 2 or not word_and_count[-1].isdigit():
            raise PrepareError(f"--srcdict {path}:{number}: expected '<token> <count>', got {line!r}")
        word = " ".join(word_and_count[:-1])
        if word in seen and not overwrite:
            raise PrepareError(f"--srcdict {path}:{number}: {word!r} appears twice")
        seen.add(word)


# ---------------------------------------------------------------------------------------------
# Reading and tokenising


def read_pairs(options, kind, location):
    """Yield (source, target) texts of one split."""
    files = input_files(options, kind, location)
    if kind == "plain":
        for (_, source), (_, target) in zip(read_lines(files["source"]), read_lines(files["target"])):
            yield source, target
    else:
        yield from read_jsonl(files["jsonl"], options.source_field, options.target_field)


def read_jsonl(path, source_field, target_field):
    """Yield (source, target) from JSON lines; a bad line or a missing field names file:line."""
    for number, line in read_lines(path):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise PrepareError(f"{path}:{number}: not a JSON line ({error})") from None
        if not isinstance(record, dict):
            raise PrepareError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        for field in (source_field, target_field):
            if field not in record:
                raise PrepareError(f"{path}:{number}: no field {field!r} (fields: {', '.join(record)})")
            if not isinstance(record[field], str):
                raise PrepareError(f"{path}:{number}: field {field!r} is {type(record[field]).__name__}, not text")
        yield record[source_field], record[target_field]


def moses_language(lang):
    """The Moses tokeniser language for a --source/--target-lang name (English rules if unknown)."""
    from sacremoses.corpus import NonbreakingPrefixes

    return lang if lang in NonbreakingPrefixes().available_langs else "en"


@lru_cache(maxsize=None)
def moses(lang):
    """One sacremoses tokeniser per language and process."""
    from sacremoses import MosesTokenizer

    return MosesTokenizer(lang=lang)


def normalise(text, lang, settings: TextSettings, max_words=None):
    """One line: whitespace (incl. newlines inside JSON fields) collapsed, tokenised, lowercased, cut."""
    text = " ".join(text.split())
    if settings.tokenize and text:
        text = moses(lang).tokenize(text, escape=False, return_str=True)
    if settings.lowercase:
        text = text.lower()
    return " ".join(text.split()[:max_words])


def normalise_pair(pair, settings: TextSettings):
    """Normalise a (source, target) pair; only the source is cut to --max-source-words."""
    source, target = pair
    return (normalise(source, settings.source_lang, settings, settings.max_source_words),
            normalise(target, settings.target_lang, settings))


def map_lines(func, items, pool):
    """``map`` in batches over the worker pool (or in this process); input errors stay here."""
    items = iter(items)
    while batch := list(islice(items, BATCH_LINES)):
        yield from pool.map(func, batch, chunksize=256) if pool else map(func, batch)


def tokenize_split(split, source, options, settings: TextSettings, tok_dir: Path, pool):
    """Write tok/<split>.<lang> from a split's ("plain", PREFIX) or ("jsonl", FILE); drops (and
    counts) train pairs with an empty side."""
    start = time.monotonic()
    langs = (options.source_lang, options.target_lang)
    tok_dir.mkdir(exist_ok=True)
    lines = kept = 0
    with open(tok_dir / f"{split}.{langs[0]}", "w", encoding="utf-8") as src_out, \
            open(tok_dir / f"{split}.{langs[1]}", "w", encoding="utf-8") as tgt_out:
        for src, tgt in map_lines(partial(normalise_pair, settings=settings), read_pairs(options, *source), pool):
            lines += 1
            if split == "train" and not (src and tgt):
                continue
            src_out.write(src + "\n")
            tgt_out.write(tgt + "\n")
            kept += 1
    dropped = lines - kept
    if dropped:
        log(f"warning: {split}: dropped {dropped} of {lines} pairs with an empty source or target")
    if kept == 0:
        files = " and ".join(input_files(options, *source).values())
        raise PrepareError(f"{files}: no pair with a non-empty source and target")
    verb = "tokenised" if settings.tokenize else "read"
    log(f"{verb} {split}: {kept} pairs ({elapsed(start)})")
    return {"lines": lines, "pairs": kept, "dropped_empty": dropped}


# ---------------------------------------------------------------------------------------------
# BPE and binarisation


def learn_codes(tok_dir: Path, langs, merges, codes: Path, workers):
    """Learn ``merges`` joint BPE merges on both sides of the tokenised training split."""
    from subword_nmt.learn_bpe import learn_bpe

    start = time.monotonic()
    joint = tok_dir.parent / "train.joint"
    with open(joint, "wb") as out:
        for lang in langs:
            with open(tok_dir / f"train.{lang}", "rb") as f:
                shutil.copyfileobj(f, out)
    log(f"learning {merges} joint BPE merges on {joint.stat().st_size} bytes of training text")
    with open(joint, encoding="utf-8") as infile, open(codes, "w", encoding="utf-8") as outfile:
        learn_bpe(infile, outfile, merges, num_workers=workers)
    joint.unlink()
    log(f"learned {count_lines(codes) - 1} merges ({elapsed(start)})")


@lru_cache(maxsize=None)
def bpe(codes):
    """One subword-nmt segmenter per code file and process."""
    from subword_nmt.apply_bpe import BPE

    with open(codes, encoding="utf-8") as f:
        return BPE(f)


def segment(line, codes):
    """Apply the BPE codes to one tokenised line."""
    return bpe(codes).process_line(line)


def apply_codes(codes: Path, tok_path: Path, bpe_path: Path, pool):
    """Write the BPE-segmented copy of a tokenised file."""
    bpe_path.parent.mkdir(exist_ok=True)
    lines = (line for _, line in read_lines(tok_path))
    with open(bpe_path, "w", encoding="utf-8") as out:
        for line in map_lines(partial(segment, codes=str(codes)), lines, pool):
            out.write(line + "\n")


def preprocess_command():
    """``fairseq-preprocess`` from PATH, else the module of this interpreter's fairseq."""
    script = shutil.which("fairseq-preprocess")
    return [script] if script else [sys.executable, "-m", "fairseq_cli.preprocess"]


def binarize(options, inputs, build: Path, log_path: Path, counts):
    """``fairseq-preprocess --joined-dictionary`` into build/bin (log in DESTDIR/preprocess.log);
    checks that it binarised as many sentences as were written."""
    src, tgt = options.source_lang, options.target_lang
    command = [*preprocess_command(), "--source-lang", src, "--target-lang", tgt, "--joined-dictionary",
               "--destdir", str(build / "bin"), "--workers", str(options.workers)]
    for split in inputs:
        command += [f"--{split}pref", str(build / "bpe" / split)]
    if options.srcdict:
        command += ["--srcdict", options.srcdict]
    start = time.monotonic()
    log(f"running fairseq-preprocess (log: {log_path})")
    with open(log_path, "w", encoding="utf-8") as log_file:
        returncode = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT).returncode
    output = log_path.read_text(encoding="utf-8", errors="replace")
    if returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise PrepareError(f"fairseq-preprocess failed (exit {returncode}); the end of {log_path}:\n{tail}")
    binarized = {(lang, Path(path).name): int(n)
                 for lang, path, n in re.findall(r"\[(\S+)\] (\S+): (\d+) sents", output)}
    for split in inputs:
        for lang in (src, tgt):
            found = binarized.get((lang, f"{split}.{lang}"))
            if found != counts[split]["pairs"]:
                raise PrepareError(f"fairseq-preprocess binarised {found} sentences of {split}.{lang}, "
                                   f"expected {counts[split]['pairs']} (see {log_path})")
    vocab = re.search(r"\[\S+\] Dictionary: (\d+) types", output)
    sizes = ", ".join(f"{split} {counts[split]['pairs']}" for split in inputs)
    log(f"binarised {sizes} pairs, dictionary {vocab.group(1) if vocab else '?'} types ({elapsed(start)})")


# ---------------------------------------------------------------------------------------------
# Progress


def log(message):
    """A progress or warning line on stderr."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def elapsed(start):
    """Seconds since ``start`` (time.monotonic), for progress lines."""
    return f"{time.monotonic() - start:.1f}s"


if __name__ == "__main__":
    main()
