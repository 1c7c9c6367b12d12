"""``difformer-trajectory``: the words a Difformer model outputs at every denoising step.

For a few sentences (lines of ``--input``, or sentences of the data-bin's ``--gen-subset``), the
selected candidate's words after each step (the argmax words of ẑ0, what
``fairseq-generate --retain-iter-history`` prints as ``E-`` lines): a text table on stdout,
and on request a PNG grid (``--output``), an animated GIF with one frame per step (``--gif``)
and a self-contained HTML page (``--html``). Every other option is fairseq-generate's and means
what it means there (decoding steps, early stopping, beams, --seed, --batch-size, --remove-bpe,
--tokenizer/--bpe, ...): the trajectories are the ones fairseq-generate decodes.

Only the standard library is imported here; torch, fairseq and matplotlib once the arguments
are parsed.
"""

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

PROG = "difformer-trajectory"
VIZ_INSTALL = "pip install 'fairseq-difformer[viz]' (or pip install matplotlib)"
OUTPUT_SUFFIXES = {"output": ".png", "gif": ".gif", "html": ".html"}


def sentence_ids(value):
    """``--sentence-ids``' comma list of sentence ids (non-negative integers)."""
    try:
        ids = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma list of sentence ids, e.g. 3,17") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: sentence ids are 0, 1, 2, ... (as in S-<id> lines)")
    return list(dict.fromkeys(ids))


def positive_int(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def positive_float(value):
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
    return number


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,  # the other options are fairseq-generate's: never take them for ours
        usage=f"{PROG} DATA --path CHECKPOINT [--input FILE | --num-sentences N | --sentence-ids IDS] "
              "[--output PNG] [--gif GIF] [--html HTML] [fairseq-generate options]",
        description="Show the words a Difformer model outputs at every denoising step: one row "
                    "per step (step number and timestep t), one column per target position, the "
                    "words that changed since the previous step highlighted, the hypothesis last "
                    "(before runs of one repeated word are collapsed, unless "
                    "--decoding-keep-repeats). "
                    "Prints the table; draws it with --output / --gif / --html.",
        epilog="Every other option is fairseq-generate's (see fairseq-generate --help and the "
               "README's decoding options): DATA, --path, --gen-subset, --decoding-steps, "
               "--decoding-early-stopping, --length-beam-size, --noise-beam-size, --clamping, "
               "--seed, --batch-size, --max-tokens, --remove-bpe, --tokenizer, --bpe, --bpe-codes, "
               "--cpu, --fp16 ... The steps shown are the ones fairseq-generate "
               "--retain-iter-history decodes with the same options (sentences of --gen-subset) or "
               "fairseq-interactive with --buffer-size at least the number of lines (--input).",
    )
    sentences = parser.add_mutually_exclusive_group()
    sentences.add_argument("--input", metavar="FILE",
                           help="source sentences, one a line ('-': stdin), in the data-bin's form "
                                "(tokenised, BPE applied) or raw with --tokenizer moses --bpe "
                                "subword_nmt --bpe-codes CODES")
    sentences.add_argument("--num-sentences", type=positive_int, metavar="N",
                           help="the first N sentences (ids 0 to N-1) of --gen-subset (default: 1)")
    sentences.add_argument("--sentence-ids", type=sentence_ids, metavar="IDS",
                           help="sentences of --gen-subset by id (the number on fairseq-generate's "
                                "S-/H- lines), a comma list, e.g. 3,17")
    parser.add_argument("--output", metavar="PNG", help="write the grids to this PNG (needs matplotlib)")
    parser.add_argument("--gif", metavar="GIF",
                        help="write an animated GIF, one frame per step (needs matplotlib)")
    parser.add_argument("--html", metavar="HTML",
                        help="write a self-contained HTML page (a slider steps through the rows)")
    parser.add_argument("--fps", type=positive_float, default=2.0, help="GIF frames (steps) per second (default: 2)")
    parser.error = lambda message: fail(parser, message)  # one line, without the usage
    return parser


def check_outputs(parser, args):
    """Each output has its file type's suffix and is not a folder; the picture and the GIF need
    matplotlib. Checked before anything is decoded."""
    for name, suffix in OUTPUT_SUFFIXES.items():
        path = getattr(args, name)
        if path is None:
            continue
        if Path(path).suffix.lower() != suffix:
            fail(parser, f"--{name} {path}: the file name must end in {suffix}")
        if Path(path).is_dir():
            fail(parser, f"--{name} {path} is a folder: give a file name ending in {suffix}")
    if args.output or args.gif:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            flags = " and ".join(f for f, given in (("--output", args.output), ("--gif", args.gif)) if given)
            fail(parser, f"{flags} draw with matplotlib, which is not installed: {VIZ_INSTALL}")


def read_input(path):
    """The lines of --input (stdin for '-'), stripped as fairseq-interactive strips them."""
    from difformer_core.errors import DifformerError

    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DifformerError(f"--input {path}: no such file") from None
        except (UnicodeDecodeError, OSError) as exc:
            raise DifformerError(f"--input {path}: cannot read it as UTF-8 text ({exc})") from None
    if not lines:
        raise DifformerError(f"--input {path} has no lines")
    return [line.strip() for line in lines]


def fail(parser, message):
    parser.exit(2, f"{PROG}: error: {message}\n")


def write_outputs(args, trajectories, rows):
    from . import trajectory_render

    for path in (args.output, args.gif, args.html):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if args.output:
        trajectory_render.write_png(trajectories, rows, args.output)
    if args.gif:
        trajectory_render.write_gif(trajectories, rows, args.gif, fps=args.fps)
    if args.html:
        trajectory_render.write_html(trajectories, rows, args.html)


def main(argv=None):
    parser = build_parser()
    args, fairseq_argv = parser.parse_known_args(argv)
    # Before fairseq and matplotlib are imported: one of fairseq's speech modules configures the
    # root logger at DEBUG on import (forced, for where fairseq is imported already).
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        level=os.environ.get("LOGLEVEL", "WARNING").upper(),
        stream=sys.stderr,
        force=True,
    )
    # fairseq's data loader always asks for pinned memory; without a GPU torch warns at each batch.
    warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true")
    check_outputs(parser, args)

    from difformer_core.errors import DifformerError

    from . import trajectory_decode
    from .trajectory_grid import format_table, grid_rows

    try:
        cfg = trajectory_decode.parse_fairseq_args(fairseq_argv)
        if args.input is not None:
            trajectories = trajectory_decode.input_trajectories(cfg, read_input(args.input))
        else:
            ids = args.sentence_ids or list(range(args.num_sentences or 1))
            trajectories = trajectory_decode.split_trajectories(cfg, ids)
    except DifformerError as exc:
        fail(parser, str(exc))
    remove_bpe = trajectory_decode.remove_bpe_function(cfg)
    rows = [grid_rows(trajectory, remove_bpe) for trajectory in trajectories]
    print("# one row per denoising step (t: the model's timestep), one column per target position; "
          "* marks a word that changed since the previous step; the last step is the hypothesis (H-) "
          "before repeated words are collapsed")
    print("\n\n".join(format_table(trajectory, sentence_rows) for trajectory, sentence_rows in zip(trajectories, rows)))
    write_outputs(args, trajectories, rows)


if __name__ == "__main__":
    main()
