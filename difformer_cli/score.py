"""``difformer-score``: BLEU and ROUGE of hypotheses against references.

Reads either a ``fairseq-generate`` output (``--generate-output``) or two plain-text files
(``--hyp``/``--ref``, one sentence a line) and reports

* SacreBLEU: sacrebleu's corpus BLEU with its default 13a tokenisation, and its signature;
  with ``--detok LANG`` both sides are Moses-detokenised first, and ``--sacrebleu-ref`` replaces
  the references by raw (e.g. cased, untokenised) ones;
* tokenised BLEU, the protocol of the Difformer paper (fairseq-generate's BLEU4, multi-bleu.perl):
  corpus BLEU on the text as it is after BPE removal, with no further tokenisation or smoothing;
* ROUGE-1/2/L F1 (rouge-score, Porter stemming), averaged over sentences;
* the length ratio hypothesis length / reference length of the tokenised BLEU;
* lengths and repetitions (``lengths``), counted on the tokens as the file writes them (BPE
  tokens when fairseq-generate ran without --remove-bpe, even if difformer-score removes it for
  the other metrics): the share of hypotheses exactly as long as their reference, the mean
  |hypothesis length − reference length|, and the share of tokens that repeat the token before
  them ("in in the park"), in the hypotheses and in the references.

References that still hold subword-nmt's "@@ " without ``--remove-bpe`` get a warning on stderr:
the scores are then on subword units, which is nearly always a forgotten flag.
"""

import argparse
import json
import sys
from pathlib import Path

from difformer_core.errors import DifformerError
from difformer_core.rouge import ROUGE_TYPES, rouge_f1_sums

from .generate_output import parse_generate_output

METRICS = ("bleu", "tok-bleu", "rouge", "lengths")
SUBWORD_MARK = "@@ "  # subword-nmt's continuation mark, as fairseq's --remove-bpe removes it


def read_lines(path):
    """The lines of a UTF-8 text file (split on newlines only); a missing or empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise DifformerError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DifformerError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DifformerError(f"cannot read {path}: {exc.strerror}") from None
    if not text:
        raise DifformerError(f"{path} is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_generate_output(path):
    """Hypotheses and references of a ``fairseq-generate`` output, in sentence-id order.

    Uses the ``H-<id>\\t<score>\\t<text>`` and ``T-<id>\\t<text>`` lines; of several hypotheses of
    one sentence (``--nbest``) the first, i.e. the selected one, is kept."""
    entries = parse_generate_output(read_lines(path))
    hyps = {i: e["H"] for i, e in entries.items() if "H" in e}
    refs = {i: e["T"] for i, e in entries.items() if "T" in e}
    if not hyps:
        raise DifformerError(f"{path} has no H- (hypothesis) lines: is it a fairseq-generate output?")
    _check_ids(path, hyps, refs)
    ids = sorted(hyps)
    return [hyps[i] for i in ids], [refs[i] for i in ids]


def _check_ids(path, hyps, refs):
    """Every hypothesis needs its reference and vice versa (no silently dropped sentences)."""
    no_ref = sorted(set(hyps) - set(refs))
    if no_ref:
        raise DifformerError(
            f"{path}: {len(no_ref)} of {len(hyps)} hypotheses have no T- (reference) line "
            f"(first id {no_ref[0]}); generate with a target side in the data-bin"
        )
    no_hyp = sorted(set(refs) - set(hyps))
    if no_hyp:
        raise DifformerError(
            f"{path}: {len(no_hyp)} references have no H- (hypothesis) line (first id {no_hyp[0]}); "
            "is the file truncated?"
        )


def check_same_length(lines, path, other_lines, other_path):
    """Raise an error naming both files and their line counts when they differ in length."""
    if len(lines) != len(other_lines):
        raise DifformerError(
            f"{path} has {len(lines)} lines but {other_path} has {len(other_lines)}"
        )


def detokenize(lines, lang):
    """Moses-detokenise each line (unescaping ``&apos;`` and the like)."""
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return [detok.detokenize(line.split()) for line in lines]


def sacrebleu_score(hyps, refs):
    """SacreBLEU with its defaults (13a tokenisation): (BLEUScore, signature string)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    return bleu.corpus_score(hyps, [refs]), str(bleu.get_signature())


def tokenized_bleu(hyps, refs):
    """Corpus BLEU on already tokenised text (no further tokenisation, no smoothing), as
    fairseq-generate's BLEU4 and multi-bleu.perl: BP · (Π_n p_n)^¼ × 100, so 0 when some n-gram
    order has no match in the whole corpus (sacrebleu's default exp smoothing would not be)."""
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize="none", smooth_method="none").corpus_score(hyps, [refs])


def rouge_f1(hyps, refs):
    """Mean ROUGE-1/2/L F1 × 100 over sentences (rouge-score with Porter stemming)."""
    return {name: total / len(hyps) for name, total in rouge_f1_sums(hyps, refs).items()}


def repeat_rate(lines):
    """Σ_s #{i > 0 : w_i = w_{i−1}} / Σ_s |s| over whitespace tokens: the share of tokens that
    repeat the one before them."""
    sentences = [line.split() for line in lines]
    total = sum(map(len, sentences))
    repeats = sum(a == b for words in sentences for a, b in zip(words, words[1:]))
    return repeats / total if total else 0.0


def length_stats(hyps, refs):
    """exact_length: the share of sentences with |h| = |r|; mean_abs_length_diff: mean ||h| − |r||;
    repeat_rate and ref_repeat_rate (:func:`repeat_rate`); lengths in whitespace tokens."""
    pairs = [(len(h.split()), len(r.split())) for h, r in zip(hyps, refs)]
    return {
        "exact_length": sum(h == r for h, r in pairs) / len(pairs),
        "mean_abs_length_diff": sum(abs(h - r) for h, r in pairs) / len(pairs),
        "repeat_rate": repeat_rate(hyps),
        "ref_repeat_rate": repeat_rate(refs),
    }


def score(hyps, refs, metrics=METRICS, sacrebleu_refs=None, detok_lang=None, tokens=None):
    """Score tokenised, BPE-free hypotheses against references.

    ``sacrebleu_refs`` (raw references) and ``detok_lang`` (Moses-detokenise the hypotheses, and
    ``refs`` where no ``sacrebleu_refs`` are given) only affect SacreBLEU. Returns a dict with
    ``sentences`` and, per metric asked for, ``sacrebleu`` and ``sacrebleu_signature`` (bleu),
    ``tok_bleu`` and ``length_ratio`` (tok-bleu), ``rouge1``, ``rouge2`` and ``rougeL`` (rouge),
    and those of :func:`length_stats` (lengths), counted on ``tokens`` = (hyps, refs) as written
    before BPE removal where given, else on ``hyps`` and ``refs``."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise DifformerError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    if len(hyps) != len(refs) or (sacrebleu_refs is not None and len(sacrebleu_refs) != len(hyps)):
        raise DifformerError("hypotheses and references differ in number")
    if not hyps:
        raise DifformerError("no sentences to score")
    result = {"sentences": len(hyps)}
    if "bleu" in metrics:
        sys_hyps = detokenize(hyps, detok_lang) if detok_lang else hyps
        sys_refs = sacrebleu_refs
        if sys_refs is None:
            sys_refs = detokenize(refs, detok_lang) if detok_lang else refs
        bleu, result["sacrebleu_signature"] = sacrebleu_score(sys_hyps, sys_refs)
        result["sacrebleu"] = bleu.score
    if "tok-bleu" in metrics:
        bleu = tokenized_bleu(hyps, refs)
        result["tok_bleu"] = bleu.score
        result["length_ratio"] = bleu.sys_len / bleu.ref_len if bleu.ref_len else 0.0
    if "rouge" in metrics:
        result.update(rouge_f1(hyps, refs))
    if "lengths" in metrics:
        result.update(length_stats(*(tokens or (hyps, refs))))
    return result


def format_text(result):
    """The scores as a few human-readable lines."""
    lines = [f"sentences: {result['sentences']}"]
    if "sacrebleu" in result:
        lines.append(f"SacreBLEU: {result['sacrebleu']:.2f} ({result['sacrebleu_signature']})")
    if "tok_bleu" in result:
        lines.append(f"tokenised BLEU: {result['tok_bleu']:.2f} (length ratio {result['length_ratio']:.3f})")
    if "rouge1" in result:
        lines.append("ROUGE F1: " + ", ".join(
            f"{label} {result[name]:.2f}" for name, label in ROUGE_TYPES.items()))
    if "exact_length" in result:
        lines.append(
            f"lengths: {100 * result['exact_length']:.1f}% exact, mean |hyp − ref| "
            f"{result['mean_abs_length_diff']:.2f} tokens; repeated tokens "
            f"{100 * result['repeat_rate']:.2f}% (references {100 * result['ref_repeat_rate']:.2f}%)"
        )
    return "\n".join(lines)


def parse_metrics(value):
    """``--metrics``' comma list, validated against METRICS."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown metric(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(METRICS)}"
        )
    return names


def build_parser():
    parser = argparse.ArgumentParser(
        prog="difformer-score",
        description="Score hypotheses against references: SacreBLEU, tokenised BLEU (the paper's "
                    "protocol), ROUGE-1/2/L F1 and the length ratio.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--generate-output", metavar="FILE",
                        help="a fairseq-generate output: the first H-<id> line of each sentence is "
                             "scored against its T-<id> line")
    source.add_argument("--hyp", metavar="FILE", help="hypotheses, one sentence a line (needs --ref)")
    parser.add_argument("--ref", metavar="FILE", help="references, line by line with --hyp")
    parser.add_argument("--remove-bpe", nargs="?", const="@@ ", default=None, metavar="SYMBOL",
                        help="remove BPE from both sides as fairseq does (default symbol: '@@ '; "
                             "also e.g. sentencepiece)")
    parser.add_argument("--detok", metavar="LANG",
                        help="Moses-detokenise both sides (language LANG) before SacreBLEU; "
                             "without it SacreBLEU sees the text as given (tokenised BLEU and "
                             "ROUGE always use the tokenised text)")
    parser.add_argument("--sacrebleu-ref", metavar="FILE",
                        help="raw (untokenised, e.g. cased) references for SacreBLEU only, line by "
                             "line with the hypotheses")
    parser.add_argument("--metrics", type=parse_metrics, default=list(METRICS),
                        help=f"comma list of metrics from {','.join(METRICS)} (default: all)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (keys sacrebleu, sacrebleu_signature, tok_bleu, "
                             "rouge1, rouge2, rougeL, length_ratio, exact_length, "
                             "mean_abs_length_diff, repeat_rate, ref_repeat_rate, sentences) instead "
                             "of text")
    return parser


def load_inputs(args):
    """(hyps, refs, sacrebleu_refs, tokens) read from the files named by ``args``: hyps and refs
    with BPE removed, tokens = (hyps, refs) as written (None when no BPE is removed)."""
    if args.generate_output:
        hyps, refs = read_generate_output(args.generate_output)
        source = args.generate_output
    else:
        hyps, refs = read_lines(args.hyp), read_lines(args.ref)
        check_same_length(hyps, args.hyp, refs, args.ref)
        source = args.hyp
    sacrebleu_refs = None
    if args.sacrebleu_ref:
        sacrebleu_refs = read_lines(args.sacrebleu_ref)
        check_same_length(sacrebleu_refs, args.sacrebleu_ref, hyps, source)
    tokens = None
    if not args.remove_bpe and any(SUBWORD_MARK in f"{line} " for line in refs):
        # Scores on "hor@@ se" are a legitimate subword-level figure, but nearly always a
        # forgotten flag: say so where the numbers are read.
        print(f"difformer-score: warning: the references in {args.ref or source} hold subword-nmt "
              f"BPE ('{SUBWORD_MARK.strip()}') and --remove-bpe was not given: every score is on "
              f"subword units, not words; add --remove-bpe (or run fairseq-generate with it)",
              file=sys.stderr)
    if args.remove_bpe:
        from fairseq.data.data_utils import post_process

        tokens = hyps, refs
        hyps = [post_process(line, args.remove_bpe) for line in hyps]
        refs = [post_process(line, args.remove_bpe) for line in refs]
    return hyps, refs, sacrebleu_refs, tokens


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.hyp and not args.ref:
        parser.error("--hyp needs --ref")
    if args.ref and not args.hyp:
        parser.error("--ref goes with --hyp (a --generate-output holds its own references)")
    if args.remove_bpe:
        from fairseq.data.data_utils import post_process

        try:
            post_process("", args.remove_bpe)
        except NotImplementedError:
            parser.error(f"--remove-bpe: unknown symbol {args.remove_bpe!r}")
    try:
        hyps, refs, sacrebleu_refs, tokens = load_inputs(args)
        result = score(hyps, refs, args.metrics, sacrebleu_refs, args.detok, tokens)
    except DifformerError as exc:
        parser.error(str(exc))
    print(json.dumps(result) if args.json else format_text(result))


if __name__ == "__main__":
    main()
