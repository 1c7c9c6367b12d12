"""The moses_lowercase tokenizer, built through fairseq's registry as --tokenizer builds it."""

from argparse import Namespace

from fairseq.data import encoders

import fairseq_difformer  # noqa: F401  (registers moses_lowercase)


def build(**options):
    args = dict(tokenizer="moses_lowercase", source_lang="de", target_lang="en",
                moses_no_dash_splits=False, moses_no_escape=False)
    return encoders.build_tokenizer(Namespace(**{**args, **options}))


def test_tokenises_in_the_source_language_then_lowercases():
    tokenizer = build(moses_no_dash_splits=True)
    assert tokenizer.encode("Er kam am 3. Mai, mit Anna & Tom.") == "er kam am 3. mai , mit anna &amp; tom ."
    assert build().encode("Ein E-Mail-Konto.") == "ein e @-@ mail @-@ konto ."


def test_detokenises_in_the_target_language_keeping_the_case():
    assert build().decode("a dog &apos;s ball , on the grass .") == "a dog's ball, on the grass."
