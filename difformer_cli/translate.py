"""``difformer-translate``: a file of raw sentences → their translations, one per line, by a Difformer
on ONNX Runtime (fairseq_difformer/engine/): no fairseq data pipeline, the checkpoint exported to an
engine folder beside it on first use.

    difformer-translate checkpoints/checkpoint_best.pt --data-bin data-bin --input test.de --output test.hyp
    difformer-translate ... --length-beam-size 3 --noise-beam-size 2 --ppl-mbr --reranker ar/checkpoint_best.pt

The input is tokenised, lowercased and BPE'd as the data-bin's preprocessing.json records
(``--input-format bpe`` for text already in the data-bin's form); the output is detokenised
(``--output-format bpe``: the BPE'd tokens). The decoding options are the task's
(``fairseq-generate --task difformer``'s flags, same names and defaults); the reranker scores the
candidates with CTranslate2 when it is installed (``--reranker-engine``, default here ctranslate2
where installed).
"""

import argparse
import sys
import time
import typing
from dataclasses import fields
from pathlib import Path

from difformer_core.decoding import RERANKER_ENGINES, DecodingOptions
from difformer_core.diffusion import SAMPLERS
from difformer_core.text import undecodable

#: the decoding options that take one of a few names
CHOICES = {"decoding_sampler": SAMPLERS, "reranker_engine": RERANKER_ENGINES}
#: the engine has its own precision flag (--precision): its graphs are exported in float32 and int8
NOT_ENGINE_OPTIONS = ("decoding_precision",)


def add_decoding_options(parser):
    """One flag per field of DecodingOptions, as the task declares them (name, type, default, help)."""
    group = parser.add_argument_group("decoding (as fairseq-generate --task difformer)")
    for option in fields(DecodingOptions):
        if option.name in NOT_ENGINE_OPTIONS:
            continue
        kind = option.type
        if type(None) in typing.get_args(kind):
            (kind,) = (t for t in typing.get_args(kind) if t is not type(None))
        flag = "--" + option.name.replace("_", "-")
        help_text = option.metadata.get("help", "").replace("%", "%%")
        if kind is bool:
            group.add_argument(flag, action="store_true", default=option.default, help=help_text)
        else:
            group.add_argument(flag, type=kind, default=option.default, choices=CHOICES.get(option.name),
                               help=help_text)


def build_parser():
    p = argparse.ArgumentParser(prog="difformer-translate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="the Difformer checkpoint")
    p.add_argument("--data-bin", type=Path, required=True,
                   help="the data-bin the model was trained on (its dictionaries and preprocessing.json)")
    p.add_argument("--input", type=Path, help="raw sentences, one per line (default: standard input)")
    p.add_argument("--output", type=Path, help="where the translations go (default: standard output)")
    p.add_argument("--input-format", choices=("raw", "bpe"), default="raw",
                   help="raw: tokenised and BPE'd as the data-bin records; bpe: already in the data-bin's form")
    p.add_argument("--output-format", choices=("raw", "bpe"), default="raw",
                   help="raw: BPE removed and detokenised; bpe: the model's tokens")
    p.add_argument("--batch-size", type=int, default=100, help="sentences per batch (default 100)")
    p.add_argument("--threads", type=int, default=1,
                   help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--streams", type=int, default=1,
                   help="batches decoded at once, each on its own thread (default 1; e.g. --streams 2 --threads 1 "
                        "on two cores); the output does not depend on it")
    p.add_argument("--precision", choices=("int8", "float32"), default="int8",
                   help="int8: the encoder's and denoiser's matrix products in int8 (ONNX Runtime's dynamic "
                        "quantization); float32: the exported graphs as trained (default int8)")
    p.add_argument("--seed", type=int, default=1, help="batch i decodes under seed + i (default 1)")
    p.add_argument("--reranker", type=Path,
                   help="an AR Transformer trained on the same data-bin that picks the candidate (with --ppl-mbr)")
    add_decoding_options(p)
    # Serving scores the candidates on CTranslate2 where it is installed.
    p.set_defaults(reranker_engine="ctranslate2" if ctranslate2_installed() else "fairseq")
    return p


def ctranslate2_installed():
    import importlib.util

    return importlib.util.find_spec("ctranslate2") is not None


def fail(message):
    print(f"difformer-translate: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_input(args):
    """The input lines, as str; bytes that are not UTF-8 are one line naming where."""
    if args.input is not None and not args.input.is_file():
        fail(f"--input {args.input} not found")
    data = args.input.read_bytes() if args.input is not None else sys.stdin.buffer.read()
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        found = undecodable(line)
        if found is not None:
            fail(f"{args.input or 'standard input'} line {number}, column {found[0]}: {found[1]}; "
                 f"convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    return lines


def main(argv=None):
    args = build_parser().parse_args(argv)
    from difformer_core.errors import DifformerError

    from fairseq_difformer.engine.serving import EngineTranslator, decoding_options_of, load_reranker, selection_of

    try:
        options = decoding_options_of(vars(args))
        selection = selection_of(options)
        reranker = load_reranker(args.reranker, args.data_bin) if selection == "reranker" else None
        translator = EngineTranslator.load(args.checkpoint, args.data_bin, precision=args.precision,
                                           threads=args.threads, options=options, selection=selection,
                                           reranker=reranker, seed=args.seed)
        lines = read_input(args)
        start = time.perf_counter()
        translations = translator.translate(lines, args.batch_size, args.input_format, args.output_format,
                                            args.streams)
        seconds = time.perf_counter() - start
    except DifformerError as error:
        fail(str(error))
    text = "".join(t + "\n" for t in translations)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    print(f"difformer-translate: {len(lines)} sentences in {seconds:.2f} s ({len(lines) / max(seconds, 1e-9):.1f} "
          f"sentences/s; {args.precision}, {args.streams} stream(s) of {args.threads} thread(s), batch {args.batch_size})", file=sys.stderr)


if __name__ == "__main__":
    main()
