"""The training recipes, in one place: the quickstart, the benchmark and ``difformer-distill``'s
default teacher read them from here.

Every system has the same size (on the CPU: 3+3 layers, d_model 256, FFN 1024, 4 heads; on a GPU:
the IWSLT size, 6+6 layers, d_model 512, FFN 1024, 4 heads; one embedding table shared by encoder,
decoder and output) and the same optimisation (Adam, inverse square root schedule, peak 1e-3
after 400 warm-up updates, dropout 0.1; 1,024-token batches in float32 on the CPU, 8,192-token
batches with --fp16 on a GPU), so that the only difference between them is the model, its loss
and its decoder. Chosen for a short CPU budget: a peak learning rate reached quickly and kept
high, small batches for many updates, and the paper's F = 4 noise rescaling. The CPU batch comes
from the benchmark's recipe sweep: two CPU cores process tokens at the same rate with 1,024- and
2,048-token batches, so the smaller batch doubles the updates, and at a budget of minutes the
updates, not the gradient noise, bound the model. 512-token batches win at 8 minutes and lose at
20, once the warm-up is a small share of the run (benchmarks/findings.md).

Summarization (AESLC: emails of about 100 tokens, subject lines of about 6) changes two things
(:func:`summarization_recipe`): sources are cut to their first 64 tokens, and batches are 4,096
tokens (about 65 pairs, 500 target tokens) with 150 warm-up updates. With 256-token sources a
4,096-token batch held about 200 target tokens, and a short run spent most of its updates warming
up. 20 minutes on 2 CPU cores are still not enough for either system to condition on the email
(the benchmark report's summarization section).
"""

from typing import Dict, List, Optional

SYSTEMS = ("ar", "cmlm", "difformer")

OPTIMISATION = [
    "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3",
    "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "400", "--warmup-init-lr", "1e-7",
    "--weight-decay", "0.01", "--clip-norm", "1", "--dropout", "0.1", "--seed", "1",
]
#: the batch size of each device, in tokens
BATCH_ARGS = {"cpu": ["--max-tokens", "1024"], "cuda": ["--max-tokens", "8192"]}
#: where the commands run: precision, batch size and data loading of each device
DEVICE_ARGS = {
    "cpu": ["--cpu", *BATCH_ARGS["cpu"], "--num-workers", "0"],
    "cuda": ["--fp16", *BATCH_ARGS["cuda"], "--num-workers", "4"],
}


def _fairseq_size(layers, dim, ffn, heads):
    return [
        "--encoder-layers", str(layers), "--decoder-layers", str(layers),
        "--encoder-embed-dim", str(dim), "--decoder-embed-dim", str(dim),
        "--encoder-ffn-embed-dim", str(ffn), "--decoder-ffn-embed-dim", str(ffn),
        "--encoder-attention-heads", str(heads), "--decoder-attention-heads", str(heads),
        "--share-all-embeddings",
    ]


#: fairseq's transformer and cmlm_transformer brought to the Difformer architecture's size
SIZES = {
    "small": (_fairseq_size(3, 256, 1024, 4), "difformer_small"),
    "iwslt": (_fairseq_size(6, 512, 1024, 4), "difformer_iwslt_de_en"),
}
DEVICE_SIZE = {"cpu": "small", "cuda": "iwslt"}


def train_args(system: str, size: str = "small") -> List[str]:
    """The task, architecture and criterion flags of ``system`` at ``size``."""
    fairseq_size, difformer_arch = SIZES[size]
    return {
        "ar": ["--task", "translation", "--arch", "transformer", *fairseq_size,
               "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
        "cmlm": ["--task", "translation_lev", "--noise", "random_mask", "--arch", "cmlm_transformer",
                 *fairseq_size, "--apply-bert-init", "--criterion", "nat_loss", "--label-smoothing", "0.1"],
        "difformer": ["--task", "difformer", "--arch", difformer_arch, "--share-all-embeddings",
                      "--criterion", "difformer", "--rescaling-factor", "4"],
    }[system]


#: summarization: the options replaced in :data:`OPTIMISATION` and the device's batch size …
SUMMARIZATION_OVERRIDES = {"--max-tokens": "4096", "--warmup-updates": "150"}
#: … and the options added: sources cut to their first 64 tokens (in training and decoding)
SUMMARIZATION_ARGS = ["--truncate-source", "--max-source-positions", "64", "--max-target-positions", "64"]
#: decoding a model trained with the summarization recipe: the same cut of the sources
SUMMARIZATION_DECODE_ARGS = ["--truncate-source", "--max-source-positions", "64"]

#: Headline generation (Gigaword: one-sentence sources, headlines of about 8 words) trains the AR
#: teacher on the data-bin with lead pairs (:mod:`difformer_cli.lead_pairs`) in 4,096-token batches;
#: everything else, the Difformer included, keeps the translation recipe. On 25k Gigaword pairs
#: the translation recipe's AR model still writes the same few headline words for every article after
#: 10 minutes on 2 CPU cores; larger batches, and more so the lead pairs, make it read the article
#: sooner (the screening in benchmarks/findings.md, by greedy ROUGE-L on the validation set).
#: ``--upsample-primary 1``: the lead pairs are a second training shard, which fairseq's translation
#: task cannot read at its default of -1.
HEADLINE_AR_OPTIONS = {"--max-tokens": "4096", "--upsample-primary": "1"}
#: The Difformer's headline decoding: the task's default but for the length offset, 0. The
#: summarization part chose it on Gigaword's validation set (docs/benchmarks.md): the offset the
#: best of 0-4 at the default steps, then more steps and larger reranked pools kept only where they
#: gain more than a seed's variation. The translation default of 2 makes up for the repeated words
#: the decoding collapses; on headlines every offset above 0 lost ROUGE-L.
HEADLINE_DECODING = ("--decoding-length-offset", "0")


def recipe(system: str, device: str = "cpu") -> List[str]:
    """Everything ``fairseq-train`` needs for ``system`` on ``device`` but the data-bin, the
    save folder, the budget and the logging: model, loss, optimisation, batch and precision."""
    return [*train_args(system, DEVICE_SIZE[device]), *OPTIMISATION, *DEVICE_ARGS[device]]


def summarization_recipe(system: str, device: str = "cpu") -> List[str]:
    """:func:`recipe` for summarization: :data:`SUMMARIZATION_OVERRIDES` replace the values of
    their options, and :data:`SUMMARIZATION_ARGS` are added."""
    return [*with_options(recipe(system, device), SUMMARIZATION_OVERRIDES), *SUMMARIZATION_ARGS]


def with_options(args: List[str], options: Dict[str, Optional[str]]) -> List[str]:
    """``args`` with each option of ``options`` set to its value (None: a flag, which takes no
    value): an option already in ``args`` has its value replaced where it stands, a new one is
    added at the end, so that every option appears once."""
    args = list(args)
    for option, value in options.items():
        if option in args:
            if value is not None:
                args[args.index(option) + 1] = value
        else:
            args += [option] if value is None else [option, value]
    return args
