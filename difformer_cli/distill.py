"""``difformer-distill``: sequence-level knowledge distillation (Kim & Rush, 2016) for Difformer.

1. take an autoregressive fairseq Transformer teacher (``--teacher``), or train one on DATABIN;
2. translate every sentence of DATABIN's training set, in order, with beam search: on
   CTranslate2 (``--engine ctranslate2``: the teacher converted once, cached beside it as
   ``<stem>.ct2-<quantization>/``) or with ``fairseq-generate --gen-subset train``
   (``--engine fairseq``); ``auto`` takes CTranslate2 where it is installed, on the CPU;
3. binarise source → teacher output with DATABIN's own dictionary into DESTDIR/bin, with the
   original valid and test sets beside it.

The teacher shares the dictionary of the distilled data-bin, so it is also the AR reranker:
``fairseq-generate DESTDIR/bin --task difformer --path difformer.pt:DESTDIR/teacher/checkpoint_best.pt``.
Re-running reuses a finished teacher, resumes an interrupted one, and keeps a finished data-bin
(DESTDIR/manifest.json records what made it, the engine and its quantization included; ``auto``
keeps one made by the other engine); an interrupted run leaves no DESTDIR/bin, and a second run
on the same DESTDIR while one runs stops at once (DESTDIR/distill.lock). DESTDIR/bin carries
DATABIN's ``preprocessing.json``, so the hub and fairseq-interactive given it prepare raw text as
DATABIN's was.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

from difformer_core.errors import DifformerError
from difformer_core.locks import lock_folder

from . import user_dir
from .commands import CommandFailed, run_logged
from .generate_output import parse_generate_output
from .recipes import BATCH_ARGS, OPTIMISATION, train_args
from .whole_split import EVERY_SENTENCE, check_every_sentence

# The benchmark's AR Transformer (the size of difformer_small) with its CPU batch size.
DEFAULT_TEACHER_ARGS = shlex.join([*train_args("ar"), *OPTIMISATION, *BATCH_ARGS["cpu"]])
ENGINES = ("auto", "fairseq", "ctranslate2")
#: fairseq_difformer.ctranslate2_ar.QUANTIZATIONS, named here so that --help needs no plugin import
CT2_QUANTIZATIONS = ("int8", "float32")


PROG = "difformer-distill"
#: DESTDIR's lock file: one distillation at a time in a DESTDIR
LOCK_NAME = "distill.lock"


def fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def log(message, start=None):
    elapsed = f" [{time.time() - start:.0f}s]" if start is not None else ""
    print(f"[distill]{elapsed} {message}", flush=True)


def run(cmd, log_path: Path, keep=lambda line: False):
    """Run a fairseq command into ``log_path``, echoing the lines ``keep`` selects; fail with its tail."""
    def echo(line):
        if keep(line):
            print("   ", line.rstrip()[-200:], flush=True)
    try:
        run_logged(cmd, log_path, on_line=echo)
    except CommandFailed as exc:
        fail(str(exc))


def language_pair(databin: Path, source_lang, target_lang):
    """The (src, tgt) of DATABIN's train split, from its file names unless given."""
    pairs = {m.groups() for f in databin.glob("train.*-*.*.idx")
             if (m := re.match(r"train\.([^.-]+)-([^.-]+)\.", f.name))}
    if source_lang and target_lang:
        return source_lang, target_lang
    if len(pairs) != 1:
        fail(f"{databin} holds {'no' if not pairs else 'several'} train language pairs "
             f"({sorted(pairs)}): pass --source-lang and --target-lang")
    return pairs.pop()


def train_teacher(args, databin, src, tgt, teacher_dir: Path, start):
    """Train (or resume) the AR teacher; return its best (or last) checkpoint."""
    done = teacher_dir / "done"
    if done.exists():
        log(f"teacher already trained: {teacher_dir}", start)
    else:
        teacher_dir.mkdir(parents=True, exist_ok=True)
        budget = ["--stop-time-hours", str(args.teacher_minutes / 60)] if args.teacher_minutes else []
        cmd = ["fairseq-train", str(databin), "--user-dir", user_dir(), "--task", "translation", "--source-lang", src,
               "--target-lang", tgt, *shlex.split(args.teacher_args), "--max-update",
               str(args.teacher_max_update), *budget, "--save-dir", str(teacher_dir),
               "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "50",
               "--eval-bleu", "--eval-bleu-remove-bpe", "--eval-bleu-args",
               json.dumps({"beam": 1, "max_len_a": args.max_len_a, "max_len_b": args.max_len_b}),
               "--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric",
               *(["--cpu"] if args.cpu else [])]
        log(f"training the AR teacher ({args.teacher_minutes or '∞'} min, ≤ {args.teacher_max_update} updates)", start)
        run(cmd, teacher_dir / "train.log",
                      keep=lambda l: "train_inner" in l or "valid on" in l or "done training" in l)
        done.touch()
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        if (teacher_dir / name).exists():
            return teacher_dir / name
    fail(f"no checkpoint in {teacher_dir}")


def train_prefix(databin: Path, src, tgt):
    """DATABIN's train split of the pair (src, tgt), as fairseq's translation task finds it."""
    for pair in (f"{src}-{tgt}", f"{tgt}-{src}"):
        if (databin / f"train.{pair}.{src}.idx").exists():
            return databin / f"train.{pair}"
    fail(f"{databin} has no train.{src}-{tgt}.{src}.idx")


def training_sources(databin: Path, src, tgt, side=None):
    """Every source sentence of the train split (the ``side`` language's, default ``src``), in
    order, as token ids without the final </s>, and the dictionary."""
    from fairseq.data import Dictionary, data_utils

    side = side or src
    dictionary = Dictionary.load(str(databin / f"dict.{side}.txt"))
    dataset = data_utils.load_indexed_dataset(f"{train_prefix(databin, src, tgt)}.{side}", dictionary)
    ids = [dataset[i].tolist() for i in range(len(dataset))]
    return [row[:-1] if row and row[-1] == dictionary.eos() else row for row in ids], dictionary


def resolve_engine(engine, cpu):
    """--engine, with ``auto`` resolved: ctranslate2 where it imports and the translation runs on
    the CPU (``--cpu``, or no GPU; CTranslate2 runs on the CPU here), else fairseq (saying why)."""
    import torch

    from fairseq_difformer import ctranslate2_ar

    if engine == "ctranslate2":
        try:
            ctranslate2_ar.import_ctranslate2("--engine ctranslate2")
        except DifformerError as exc:
            fail(str(exc))
    if engine != "auto":
        return engine
    if not cpu and torch.cuda.is_available():
        log("engine: fairseq (--engine auto, on the GPU)")
        return "fairseq"
    if ctranslate2_ar.installed():
        log("engine: ctranslate2 (--engine auto, CTranslate2 is installed)")
        return "ctranslate2"
    log(f"engine: fairseq (--engine auto); CTranslate2 translates faster: {ctranslate2_ar.INSTALL}")
    return "fairseq"


def translate_with_fairseq(args, databin, src, tgt, teacher: Path, out: Path):
    """Beam-search the training sources with fairseq-generate; returns (sources, teacher
    outputs) as BPE text by sentence id, every sentence of the train split."""
    cmd = ["fairseq-generate", str(databin), "--user-dir", user_dir(), "--task", "translation", "--source-lang", src,
           "--target-lang", tgt, "--path", str(teacher), "--gen-subset", "train",
           "--beam", str(args.beam), "--max-tokens", str(args.max_tokens), "--nbest", "1", *EVERY_SENTENCE,
           "--max-len-a", str(args.max_len_a), "--max-len-b", str(args.max_len_b),
           "--skip-invalid-size-inputs-valid-test", *(["--cpu"] if args.cpu else [])]
    run(cmd, out.with_suffix(".log"), keep=lambda l: False)
    # fairseq-generate writes the hypotheses to stdout, captured in the log with its messages.
    entries = parse_generate_output(out.with_suffix(".log").read_text(encoding="utf-8").splitlines())
    sources = {i: e["S"] for i, e in entries.items() if "S" in e}
    hyps = {i: e["H"] for i, e in entries.items() if "H" in e}
    if not hyps or set(hyps) != set(sources):
        fail(f"the teacher's output {out.with_suffix('.log')} lacks hypotheses")
    return sources, hyps


def translate_with_ctranslate2(args, databin, src, tgt, teacher: Path):
    """Beam-search the training sources on CTranslate2 (the teacher converted as
    --ct2-quantization, --threads batches at once); returns (sources, teacher outputs) as BPE
    text by sentence id, every sentence of the train split."""
    from fairseq_difformer import ctranslate2_ar

    ids, dictionary = training_sources(databin, src, tgt)
    vocabulary = ctranslate2_ar.vocabulary(dictionary)
    sources = [[vocabulary[i] for i in row] for row in ids]
    try:
        model = ctranslate2_ar.convert(teacher, databin, args.ct2_quantization, src, tgt)
        translator = ctranslate2_ar.translator(model, inter_threads=args.threads)
    except DifformerError as exc:
        fail(str(exc))
    hyps = ctranslate2_ar.translate(translator, sources, beam=args.beam, max_len_a=args.max_len_a,
                                    max_len_b=args.max_len_b)
    return ({i: " ".join(tokens) for i, tokens in enumerate(sources)},
            {i: " ".join(tokens) for i, tokens in enumerate(hyps)})


def translate_train_set(args, engine, databin, src, tgt, teacher: Path, out: Path, start):
    """The training sources and the teacher's translations, as BPE text by sentence id, from
    ``engine``; logs the throughput."""
    quantization = f", {args.ct2_quantization}" if engine == "ctranslate2" else ""
    log(f"translating the training set with beam {args.beam} ({engine}{quantization})", start)
    began = time.time()
    if engine == "ctranslate2":
        sources, hyps = translate_with_ctranslate2(args, databin, src, tgt, teacher)
    else:
        sources, hyps = translate_with_fairseq(args, databin, src, tgt, teacher, out)
    seconds = time.time() - began
    try:
        check_every_sentence(hyps, databin, "train", out.with_suffix(".log"),
                             "fairseq-generate skips sentences longer than the teacher's --max-source-positions; "
                             "--engine ctranslate2 translates them")
    except DifformerError as exc:
        fail(str(exc))
    log(f"translated {len(hyps)} sentences in {seconds:.1f} s ({len(hyps) / max(seconds, 1e-9):.1f} sentences/s, "
        f"{engine}{quantization}, loading the model included)", start)
    return sources, hyps


def build_databin(databin, src, tgt, sources, hyps, tmp: Path, dest: Path, workers, start):
    """DEST: the distilled training pairs binarised with DATABIN's dictionary, DATABIN's valid and
    test splits, and DATABIN's preprocessing.json (raw text is prepared as it was for DATABIN)."""
    ids = sorted(hyps)
    (tmp / f"train.{src}").write_text("\n".join(sources[i] for i in ids) + "\n")
    (tmp / f"train.{tgt}").write_text("\n".join(hyps[i] for i in ids) + "\n")
    staged = tmp / "bin"
    cmd = ["fairseq-preprocess", "--source-lang", src, "--target-lang", tgt, "--trainpref",
           str(tmp / "train"), "--destdir", str(staged), "--srcdict", str(databin / f"dict.{src}.txt"),
           "--joined-dictionary", "--workers", str(workers)]
    log(f"binarising {len(ids)} distilled pairs with {databin}'s dictionary", start)
    run(cmd, tmp / "preprocess.log")
    for split_file in databin.iterdir():
        if split_file.name.startswith(("valid", "test")):
            shutil.copy2(split_file, staged / split_file.name)
    from fairseq_difformer.preprocessing import copy_record

    if not copy_record(databin, staged, PROG, published_at=dest):
        log(f"{databin} has no preprocessing.json: give fairseq-interactive and the hub on {dest} the "
            f"--tokenizer/--bpe (tokenizer=, bpe=) its text was prepared with", start)
    staged.rename(dest)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Sequence-level knowledge distillation: AR teacher → distilled data-bin.",
    )
    p.add_argument("databin", type=Path, help="the fairseq data-bin to distil (joined dictionary)")
    p.add_argument("--destdir", type=Path, required=True,
                   help="output folder: teacher/ (the teacher and AR reranker) and bin/ (distilled data-bin)")
    p.add_argument("--source-lang"), p.add_argument("--target-lang")
    p.add_argument("--teacher", type=Path, help="an existing AR Transformer checkpoint trained on DATABIN")
    p.add_argument("--teacher-args", default=DEFAULT_TEACHER_ARGS,
                   help="fairseq-train options for the teacher (default: a 3+3-layer, d=256 Transformer)")
    p.add_argument("--teacher-minutes", type=float, help="wall-clock budget of the teacher's training")
    p.add_argument("--teacher-max-update", type=int, default=100000, help="update budget of the teacher")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="what translates the training set: ctranslate2 (the teacher converted once, cached "
                        "beside it as <stem>.ct2-<quantization>/; pip install 'fairseq-difformer[ctranslate2]'), "
                        "fairseq (fairseq-generate), auto (ctranslate2 where it is installed and no GPU "
                        "translates, else fairseq; the default)")
    p.add_argument("--ct2-quantization", choices=CT2_QUANTIZATIONS, default="int8",
                   help="the weights CTranslate2 translates with: int8 (int8 matrix products, float32 "
                        "elsewhere; the default) or float32 (fairseq's own results, for greedy search)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="CTranslate2: batches translated at once, one thread each (default: the CPU cores "
                        "this process may use); the fairseq engine uses PyTorch's threads")
    p.add_argument("--beam", type=int, default=5, help="beam size for translating the training set")
    p.add_argument("--max-tokens", type=int, default=8000,
                   help="batch size of that translation with the fairseq engine (CTranslate2 takes "
                        "batches of 64 sentences of one length)")
    p.add_argument("--max-len-a", type=float, default=1.2,
                   help="teacher outputs are at most a · source length + b tokens (default 1.2)")
    p.add_argument("--max-len-b", type=int, default=10, help="(default 10)")
    p.add_argument("--workers", type=int, default=2, help="fairseq-preprocess workers")
    p.add_argument("--cpu", action="store_true", help="train and translate on CPU")
    return p.parse_args(argv)


def distill(args) -> Path:
    """Run the three steps, one run at a time in DESTDIR (DESTDIR/distill.lock); returns the
    distilled data-bin."""
    start = time.time()
    databin, dest = args.databin, args.destdir
    if not (databin / "train.bin").exists() and not list(databin.glob("train.*.bin")):
        fail(f"{databin} is not a fairseq data-bin with a train split (no train.*.bin)")
    src, tgt = language_pair(databin, args.source_lang, args.target_lang)
    if not (databin / f"dict.{src}.txt").exists():
        fail(f"{databin}/dict.{src}.txt not found")
    if (databin / f"dict.{src}.txt").read_bytes() != (databin / f"dict.{tgt}.txt").read_bytes():
        fail(f"{databin} has separate dictionaries: Difformer needs fairseq-preprocess --joined-dictionary")
    engine = resolve_engine(args.engine, args.cpu)
    options = {"databin": str(databin.resolve()), "source_lang": src, "target_lang": tgt,
               "teacher": str(args.teacher) if args.teacher else None, "beam": args.beam, "engine": engine,
               "ct2_quantization": args.ct2_quantization if engine == "ctranslate2" else None}
    try:
        lock = lock_folder(dest / LOCK_NAME, f"--destdir {dest}", f"{PROG} run",
                           "wait for it to end, or give this run another --destdir")
    except DifformerError as exc:
        fail(str(exc))
    with lock:
        return distill_into(args, databin, dest, src, tgt, engine, options, start)


def distill_into(args, databin, dest, src, tgt, engine, options, start) -> Path:
    """The distillation that DESTDIR's manifest records, if it is the one asked for, else a new
    one (the teacher trained first where none is given); DESTDIR is locked."""
    manifest = dest / "manifest.json"
    if manifest.exists():
        if kept_distillation(json.loads(manifest.read_text()), options, args.engine, dest):
            log(f"already distilled: {dest / 'bin'}", start)
            return dest / "bin"
    if args.teacher is not None and not args.teacher.exists():
        fail(f"--teacher {args.teacher} does not exist")
    teacher = args.teacher or train_teacher(args, databin, src, tgt, dest / "teacher", start)
    tmp = dest / ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dest / "bin", ignore_errors=True)
    tmp.mkdir()
    sources, hyps = translate_train_set(args, engine, databin, src, tgt, teacher, tmp / "train.gen", start)
    build_databin(databin, src, tgt, sources, hyps, tmp, dest / "bin", args.workers, start)
    shutil.rmtree(tmp)
    manifest.write_text(json.dumps(options, indent=1))
    log(f"distilled data-bin: {dest / 'bin'}; teacher / AR reranker: {teacher}", start)
    return dest / "bin"


def kept_distillation(recorded, options, engine_flag, dest):
    """Whether the distillation DESTDIR's manifest records is the one asked for (a manifest
    without an engine is fairseq's); with ``--engine auto``, one that differs only in its engine
    is kept too. Another one fails, naming what differs."""
    recorded = {"engine": "fairseq", "ct2_quantization": None, **recorded}
    differing = sorted(key for key in options if recorded.get(key) != options[key])
    if not differing:
        return True
    if engine_flag == "auto" and set(differing) <= {"engine", "ct2_quantization"}:
        log(f"keeping the distillation made with {recorded['engine']} (--engine auto); remove "
            f"{dest / 'manifest.json'} to translate again with {options['engine']}")
        return True
    fail(f"{dest} holds a different distillation ({', '.join(f'{k}: {recorded.get(k)}' for k in differing)}; "
         f"asked: {', '.join(f'{k}: {options[k]}' for k in differing)}): use another --destdir or remove it")


def main(argv=None):
    distill(parse_args(argv))


if __name__ == "__main__":
    main()
