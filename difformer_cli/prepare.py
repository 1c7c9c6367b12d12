"""``difformer-prepare``: raw parallel text → fairseq data-bin with a joint BPE dictionary.

Stages: read the pairs (plain ``PREFIX.<lang>`` files or JSON lines) → Moses tokenisation
(sacremoses) with optional lowercasing → joint BPE (subword-nmt; learned on the training split of
both sides, or an existing code file applied) → ``fairseq-preprocess --joined-dictionary``.

DESTDIR holds ``tok/``, ``bpe/``, ``codes``, ``bin/`` (the data-bin), ``preprocess.log`` and
``manifest.json``, whose ``hash`` covers the input files' contents, the options that shape the
output and the tools' versions. A re-run with the same hash reuses DESTDIR; otherwise everything
is built in a hidden sibling folder and renamed to DESTDIR when finished, so an interrupted run
never leaves a partial DESTDIR behind.

From Python: ``prepare(parse_args([...]))`` returns the data-bin path.
"""

import argparse
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
from functools import lru_cache, partial
from importlib import metadata
from itertools import islice
from pathlib import Path

from difformer_core.errors import DifformerError
from difformer_core.locks import lock_folder, remove_dead_temporaries, temporary_beside

from .commands import CommandFailed, die_with_parent, run_logged

PROG = "difformer-prepare"
SPLITS = ("train", "valid", "test")
DEFAULT_BPE_MERGES = 8000
BATCH_LINES = 20000
TOOLS = ("sacremoses", "subword-nmt", "fairseq-fixed", "fairseq")  # distributions whose version counts
# The options that shape the output (--workers and --destdir do not).
SHAPING_OPTIONS = ("source_lang", "target_lang", "source_field", "target_field", "tokenize", "lowercase",
                   "max_source_words", "bpe_merges", "input_tokenizer", "input_tokenizer_args")
#: how difformer-prepare's own tokenisation reads as fairseq's tokenizer options: sacremoses with
#: escape=False and no aggressive dash splits
OWN_TOKENIZER_ARGS = {"moses_no_dash_splits": True, "moses_no_escape": True}


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
    text.add_argument("--input-tokenizer", metavar="NAME",
                      help="with --no-tokenize: the fairseq tokenizer the input was tokenised with (e.g. "
                      "moses, or moses_lowercase for lowercased text), recorded in bin/preprocessing.json "
                      "so that the hub and fairseq-interactive prepare raw text the same way")
    text.add_argument("--input-tokenizer-args", metavar="JSON", default="{}",
                      help="that tokenizer's fairseq options, e.g. '{\"moses_no_dash_splits\": true}'")
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
    if options.input_tokenizer and options.tokenize:
        parser.error("--input-tokenizer describes input that is already tokenised: it needs --no-tokenize")
    try:
        options.input_tokenizer_args = json.loads(options.input_tokenizer_args)
    except ValueError as error:
        parser.error(f"--input-tokenizer-args {options.input_tokenizer_args!r}: not JSON ({error})")
    if not isinstance(options.input_tokenizer_args, dict):
        parser.error("--input-tokenizer-args must be a JSON object, e.g. '{\"moses_no_dash_splits\": true}'")
    if options.bpe_codes and options.bpe_merges:
        parser.error("--bpe-merges learns new codes, --bpe-codes applies existing ones: use one")
    if options.srcdict and not options.bpe_codes:
        parser.error("--srcdict needs the --bpe-codes it was built with")
    if not options.bpe_codes:
        options.bpe_merges = options.bpe_merges or DEFAULT_BPE_MERGES
    return options


def main(argv=None):
    run_preparation(PROG, prepare, parse_args(argv))


def run_preparation(prog, build, options):
    """A console entry point's body: ``build(options)``; bad input ends with ``PROG: error: …`` and
    exit 2, Ctrl-C with exit 130 (the build folder is removed on the way out)."""
    try:
        return build(options)
    except DifformerError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the unfinished build was removed", file=sys.stderr)
        sys.exit(130)


def prepare(options) -> Path:
    """Build (or reuse) ``options.destdir`` from options as returned by :func:`parse_args`;
    returns the data-bin folder. One run at a time builds a DESTDIR: a lock beside it
    (``.DESTDIR.lock``) refuses a second one in one line."""
    dest = Path(options.destdir)
    home = dest.resolve()  # where the build goes beside, also for --destdir .
    splits = input_files(options)
    identity = describe(options, splits)
    read_manifest(dest)  # a DESTDIR this tool did not make is refused before anything is written
    with destdir_lock(PROG, dest):
        remove_dead_builds(home)
        return build_or_reuse(options, dest, home, splits, identity)


def destdir_lock(prog, dest: Path):
    """The lock of a DESTDIR (``.DESTDIR.lock`` beside it, :func:`difformer_core.locks.lock_folder`),
    held while the ``with`` block runs: a second run on it fails at once, naming the process."""
    home = dest.resolve()
    home.parent.mkdir(parents=True, exist_ok=True)
    return lock_folder(home.parent / f".{home.name}.lock", f"--destdir {dest}", f"{prog} run",
                       "wait for it to end, or give this run another --destdir")


def remove_dead_builds(home: Path):
    """Remove the build folders ``.DESTDIR.tmp-PID`` beside DESTDIR that interrupted runs left
    (process PID has ended); those of a live process stay. Call it holding :func:`destdir_lock`."""
    for stale in remove_dead_temporaries(home):
        log(f"removed {stale}, left by an interrupted run")


def fresh_build_folder(home: Path) -> Path:
    """``.DESTDIR.tmp-PID`` beside DESTDIR, made empty, for this process to build in. Call it
    holding :func:`destdir_lock`, after :func:`remove_dead_builds`."""
    build = temporary_beside(home)  # mkdir, unlike mkdtemp, keeps the umask's mode
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    return build


def build_or_reuse(options, dest: Path, home: Path, splits, identity) -> Path:
    """The data-bin of DESTDIR: reused when its manifest records this dataset, else built beside
    it in ``.DESTDIR.tmp-PID`` and published whole (see :func:`publish`)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    recorded = read_manifest(dest)
    if recorded.get("hash") == digest:
        print(f"{dest} already holds this dataset (manifest.json): reusing {dest / 'bin'}")
        return dest / "bin"
    if recorded:
        log(f"rebuilding {dest}: {', '.join(changed(recorded, identity)) or 'its manifest'} changed")
    check_given_codes_and_dictionary(options)
    build = fresh_build_folder(home)
    try:
        counts = build_all(options, splits, build)
        manifest = {"hash": digest, **identity, "counts": counts}
        (build / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        publish(build, home)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print(f"data-bin ready: {dest / 'bin'}")
    return dest / "bin"


def input_files(options):
    """{split: {name: (flag, path)}}, named by language for plain files, ``jsonl`` for JSON lines."""
    splits = {}
    for split in SPLITS:
        if getattr(options, f"{split}pref"):
            splits[split] = {lang: (f"--{split}pref", f"{getattr(options, f'{split}pref')}.{lang}")
                             for lang in (options.source_lang, options.target_lang)}
        elif getattr(options, f"{split}_jsonl"):
            splits[split] = {"jsonl": (f"--{split}-jsonl", getattr(options, f"{split}_jsonl"))}
    return splits


def describe(options, splits):
    """What the output depends on: the shaping options, the SHA-256 of every input file and the
    tools' versions. Refuses missing or empty files and plain splits of unequal line counts."""
    files = {f"{split}.{name}": given for split, named in splits.items() for name, given in named.items()}
    for name in ("bpe_codes", "srcdict"):
        if getattr(options, name):
            files[name] = (f"--{name.replace('_', '-')}", getattr(options, name))
    hashes, lines = {}, {}
    for name, (flag, path) in files.items():
        hashes[name], lines[name] = hash_and_count_lines(path, flag)
    for split, named in splits.items():
        if "jsonl" not in named:
            (flag, src), (_, tgt) = named.values()
            (n_src, n_tgt) = (lines[f"{split}.{lang}"] for lang in named)
            if n_src != n_tgt:
                raise DifformerError(f"{flag}: {src} has {n_src} lines but {tgt} has {n_tgt}: "
                                     "the files must be line-parallel")
    versions = {}
    for tool in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[tool] = metadata.version(tool)
    return {"options": {name: getattr(options, name) for name in SHAPING_OPTIONS},
            "inputs": hashes, "tools": versions}


def hash_and_count_lines(path, flag):
    """(hex SHA-256, number of lines) of a file, a last line without a newline included."""
    if not Path(path).is_file():
        raise DifformerError(f"{flag} {path}: no such file")
    digest, count, last = hashlib.sha256(), 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            count, last = count + block.count(b"\n"), block[-1:]
    if count == 0 and last == b"\n":
        raise DifformerError(f"{flag} {path}: the file is empty")
    return digest.hexdigest(), count + (last != b"\n")


def read_manifest(dest: Path):
    """DESTDIR's manifest ({} for a missing or empty DESTDIR); refuses a folder it did not make,
    since a rebuild replaces DESTDIR as a whole."""
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return {}
    try:
        manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or "inputs" not in manifest:
        raise DifformerError(f"--destdir {dest} is not a folder difformer-prepare made (no readable "
                             "manifest.json): use another --destdir or remove it")
    return manifest


def changed(recorded, identity):
    """The names of the options, input files and tools that differ from the manifest's."""
    return [key for section, now in identity.items() for key in now
            if (recorded.get(section) or {}).get(key) != now[key]]


def publish(build: Path, dest: Path):
    """Rename the finished ``build`` to ``dest``, the previous ``dest`` renamed away first: an
    interruption leaves either a finished DESTDIR or none."""
    retired = build.with_name(build.name + "-old")
    if dest.exists():
        os.rename(dest, retired)
    os.rename(build, dest)
    shutil.rmtree(retired, ignore_errors=True)


def check_given_codes_and_dictionary(options):
    """Load ``--bpe-codes`` with subword-nmt and ``--srcdict`` with fairseq before any work, so
    that their own format checks end in one line."""
    if options.bpe_codes:
        try:
            with contextlib.redirect_stderr(io.StringIO()) as said:
                bpe(options.bpe_codes)
        except (SystemExit, ValueError) as error:  # subword-nmt prints the bad line, then exits
            reason = said.getvalue().strip().removeprefix("Error: ").split("\n")[0] or error
            raise DifformerError(f"--bpe-codes {options.bpe_codes}: {reason}") from None
    if options.srcdict:
        from fairseq.data import Dictionary

        try:
            Dictionary.load(options.srcdict)
        except Exception as error:  # fairseq raises ValueError, RuntimeError or Exception
            raise DifformerError(f"--srcdict {options.srcdict}: {error}") from None


def build_all(options, splits, build: Path):
    """Run every stage inside ``build``; returns the per-split pair counts."""
    langs = (options.source_lang, options.target_lang)
    normalise = partial(normalise_pair, langs=langs, tokenize=options.tokenize, lowercase=options.lowercase,
                        max_source_words=options.max_source_words)
    with (multiprocessing.Pool(options.workers, die_with_parent, (os.getpid(),)) if options.workers > 1
          else contextlib.nullcontext()) as pool:
        counts = {split: tokenize_split(split, named, options, normalise, build / "tok", pool)
                  for split, named in splits.items()}
    codes = build / "codes"
    if options.bpe_codes:
        shutil.copyfile(options.bpe_codes, codes)
    else:
        learn_codes(build / "tok", langs, options.bpe_merges, codes, options.workers)
    start = time.monotonic()
    (build / "bpe").mkdir()
    for name in (f"{split}.{lang}" for split in splits for lang in langs):
        with open(build / "bpe" / name, "w", encoding="utf-8") as out:
            bpe(str(codes)).process_lines(str(build / "tok" / name), out, num_workers=options.workers)
    log(f"applied BPE to {len(splits) * 2} files", start)
    binarize(options, splits, build, counts)
    write_preprocessing(options, build / "bin")
    return counts


def preprocessing_of(options):
    """What raw text goes through to become this data: the tokenizer as fairseq names it and its
    options, lowercasing, and the BPE with its codes (relative to the data-bin)."""
    if options.tokenize:
        tokenizer = "moses_lowercase" if options.lowercase else "moses"
        args = dict(OWN_TOKENIZER_ARGS)
    else:
        tokenizer, args = options.input_tokenizer, dict(options.input_tokenizer_args)
    return {"tokenizer": tokenizer, "tokenizer_args": args,
            "lowercase": bool(options.lowercase or tokenizer == "moses_lowercase"),
            "bpe": "subword_nmt", "bpe_codes": os.path.join(os.pardir, "codes"), "written_by": PROG}


def write_preprocessing(options, databin: Path):
    """``bin/preprocessing.json``, the record the hub, fairseq-interactive and the trainings read."""
    record = preprocessing_of(options)
    (databin / "preprocessing.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if record["tokenizer"] is None:
        log("note: --no-tokenize without --input-tokenizer: raw text given to the model is not tokenised "
            "unless --tokenizer (or tokenizer=) says how")


def read_lines(path, byte_order_marks=None):
    """The lines of a UTF-8 file, without their newline; a bad byte names file and line. A UTF-8
    byte-order mark opening the file (as Windows editors write) is removed, not read as part of
    the first word, and ``path`` is appended to the list ``byte_order_marks`` when given."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DifformerError(f"{path}:{number}: not UTF-8 text (byte {error.start + 1} of the line)") from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
                if byte_order_marks is not None:
                    byte_order_marks.append(str(path))
            yield line


def read_jsonl(path, source_field, target_field, byte_order_marks=None):
    """Yield (source, target) from JSON lines; a bad line or a missing field names file:line."""
    for number, line in enumerate(read_lines(path, byte_order_marks), 1):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise DifformerError(f"{path}:{number}: not a JSON line ({error})") from None
        if not isinstance(record, dict):
            raise DifformerError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        for field in (source_field, target_field):
            if not isinstance(record.get(field), str):
                found = type(record[field]).__name__ if field in record else f"fields: {', '.join(record)}"
                raise DifformerError(f"{path}:{number}: no text field {field!r} ({found})")
        yield record[source_field], record[target_field]


@lru_cache(maxsize=None)
def moses(lang):
    """One sacremoses tokeniser per language and process (English rules for a language Moses
    does not know)."""
    from sacremoses import MosesTokenizer
    from sacremoses.corpus import NonbreakingPrefixes

    return MosesTokenizer(lang=lang if lang in NonbreakingPrefixes().available_langs else "en")


def normalise_pair(pair, langs, tokenize, lowercase, max_source_words):
    """A (source, target) pair with whitespace (incl. newlines inside JSON fields) collapsed, Moses
    tokenised, lowercased; the source cut to ``max_source_words`` tokens."""
    texts = []
    for text, lang, max_words in zip(pair, langs, (max_source_words, None)):
        text = " ".join(text.split())
        if tokenize and text:
            text = moses(lang).tokenize(text, escape=False, return_str=True)
        texts.append(" ".join((text.lower() if lowercase else text).split()[:max_words]))
    return tuple(texts)


def map_lines(func, items, pool):
    """``map`` in batches over the worker pool (or in this process); input errors stay here."""
    items = iter(items)
    while batch := list(islice(items, BATCH_LINES)):
        yield from pool.map(func, batch, chunksize=256) if pool else map(func, batch)


def tokenize_split(split, named, options, normalise, tok_dir: Path, pool):
    """Write tok/<split>.<lang>; drops (and counts) train pairs with an empty side."""
    start = time.monotonic()
    tok_dir.mkdir(exist_ok=True)
    marks = []  # the files that opened with a byte-order mark
    pairs = (read_jsonl(named["jsonl"][1], options.source_field, options.target_field, marks) if "jsonl" in named
             else zip(*(read_lines(path, marks) for _, path in named.values())))
    lines = kept = 0
    with open(tok_dir / f"{split}.{options.source_lang}", "w", encoding="utf-8") as src_out, \
            open(tok_dir / f"{split}.{options.target_lang}", "w", encoding="utf-8") as tgt_out:
        for src, tgt in map_lines(normalise, pairs, pool):
            lines += 1
            if split == "train" and not (src and tgt):
                continue
            src_out.write(src + "\n")
            tgt_out.write(tgt + "\n")
            kept += 1
    if lines > kept:
        log(f"warning: {split}: dropped {lines - kept} of {lines} pairs with an empty source or target")
    if marks:
        log(f"{split}: removed the UTF-8 byte-order mark opening {', '.join(marks)}")
    if kept == 0:
        files = " and ".join(path for _, path in named.values())
        raise DifformerError(f"{files}: no pair with a non-empty source and target")
    log(f"{'tokenised' if options.tokenize else 'read'} {split}: {kept} pairs", start)
    return {"lines": lines, "pairs": kept, "dropped_empty": lines - kept, "byte_order_marks": len(marks)}


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
    log("learned the BPE codes", start)


#: words BPE never splits: fairseq's unknown word, as released corpora write it (Gigaword's
#: ``<unk>``), so that it binarises to the dictionary's unknown-word index
KEPT_WHOLE = ("<unk>",)


@lru_cache(maxsize=None)
def bpe(codes):
    """One subword-nmt segmenter per code file and process (:data:`KEPT_WHOLE` kept whole)."""
    from subword_nmt.apply_bpe import BPE

    with open(codes, encoding="utf-8") as f:
        return BPE(f, glossaries=list(KEPT_WHOLE))


def binarize(options, splits, build: Path, counts):
    """``fairseq-preprocess --joined-dictionary`` of build/bpe into build/bin, then checked."""
    src, tgt = options.source_lang, options.target_lang
    script = shutil.which("fairseq-preprocess")
    command = [script] if script else [sys.executable, "-m", "fairseq_cli.preprocess"]
    command += ["--source-lang", src, "--target-lang", tgt, "--joined-dictionary",
                "--destdir", str(build / "bin"), "--workers", str(options.workers)]
    for split in splits:
        command += [f"--{split}pref", str(build / "bpe" / split)]
    if options.srcdict:
        command += ["--srcdict", options.srcdict]
    start = time.monotonic()
    log("running fairseq-preprocess")
    try:
        run_logged(command, build / "preprocess.log")
    except CommandFailed as exc:  # the log goes with the unfinished build: show its end
        raise DifformerError(f"fairseq-preprocess failed (exit {exc.returncode}); the end of its log:\n{exc.tail}") from None
    vocabulary = check_databin(build / "bin", src, tgt, counts)
    sizes = ", ".join(f"{split} {count['pairs']}" for split, count in counts.items())
    log(f"binarised {sizes} pairs, dictionary {vocabulary} types", start)


def check_databin(databin: Path, src, tgt, counts):
    """Check, from the files, that ``databin`` has both dictionaries and, for every split and
    language, as many binarised sentences as pairs were written; returns the dictionary size."""
    from fairseq.data import Dictionary, indexed_dataset

    if not all((databin / f"dict.{lang}.txt").is_file() for lang in (src, tgt)):
        raise DifformerError(f"fairseq-preprocess wrote no dict.{src}.txt and dict.{tgt}.txt in {databin}")
    for split, count in counts.items():
        for lang in (src, tgt):
            prefix = databin / f"{split}.{src}-{tgt}.{lang}"
            dataset = indexed_dataset.make_dataset(str(prefix), impl="mmap")
            found = 0 if dataset is None else len(dataset)
            if found != count["pairs"]:
                raise DifformerError(f"fairseq-preprocess wrote {found} sentences to {prefix.name}, "
                                     f"expected {count['pairs']}")
    return len(Dictionary.load(str(databin / f"dict.{src}.txt")))


def log(message, start=None):
    """A progress or warning line on stderr, with the seconds since ``start`` (time.monotonic)."""
    took = "" if start is None else f" ({time.monotonic() - start:.1f}s)"
    print(f"{PROG}: {message}{took}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
