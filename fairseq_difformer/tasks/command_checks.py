"""Checks of a fairseq command's input before the ``difformer`` task loads anything: the data-bin,
the split, flags fairseq would accept and ignore (--beam) or run where they cannot (--fp16 on the
CPU); each a one-line error."""

import os
import sys

import torch
from fairseq import utils
from fairseq.data import indexed_dataset
from omegaconf import DictConfig, OmegaConf

from difformer_core.errors import DifformerError


def command_config(task_cfg):
    """The whole configuration of the running fairseq command (``generation``, ``interactive``, …)
    that ``task_cfg`` is the ``task`` part of; empty for a task set up on its own."""
    parent = task_cfg._get_parent() if isinstance(task_cfg, DictConfig) else None
    return parent if parent is not None else OmegaConf.create()


#: fairseq's --beam default: cfg.generation.beam holds it whether or not --beam was given
FAIRSEQ_BEAM = 5


def check_no_beam_search(command):
    """fairseq-generate / fairseq-interactive with --beam: Difformer has no beam search, and the
    option would be ignored without a word. An explicit --beam 5 (fairseq's default) is seen on the
    command line of fairseq's own console scripts."""
    beam = OmegaConf.select(command, "generation.beam", default=FAIRSEQ_BEAM)
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    given = program in ("fairseq-generate", "fairseq-interactive") and any(
        arg == "--beam" or arg.startswith("--beam=") for arg in sys.argv[1:])
    if given or beam != FAIRSEQ_BEAM:
        raise DifformerError(
            "--beam: Difformer has no beam search; it decodes --length-beam-size L × --noise-beam-size N "
            "candidates per sentence (e.g. --length-beam-size 3 --noise-beam-size 2) and keeps the most "
            "probable, or with --ppl-mbr the one an AR reranker prefers (--path difformer.pt:transformer.pt): "
            "drop --beam"
        )


def check_split(data_path, split, src, tgt, dataset_impl, flag):
    """The data-bin ``data_path`` holds ``split`` of the language pair (either direction, as fairseq
    looks), else one line naming the split (and ``flag``, the option that named it), the data-bin
    and the splits it holds."""
    suffixes = [f".{src}-{tgt}.{src}", f".{tgt}-{src}.{src}"]
    if any(indexed_dataset.dataset_exists(os.path.join(data_path, split + suffix), impl=dataset_impl)
           for suffix in suffixes):
        return
    stems = {name.removesuffix(".bin").removesuffix(".idx") for name in os.listdir(data_path)}
    held = sorted({stem[: -len(suffix)] for stem in stems for suffix in suffixes if stem.endswith(suffix)})
    raise DifformerError(
        f"{flag} {split}: the data-bin {data_path} holds no {split} split of {src}-{tgt}; "
        + (f"its splits are {', '.join(held)}" if held else "it holds no split of that language pair")
    )


def check_databin(data):
    """The data-bin folders of ``data`` (``DATA-BIN[:DATA-BIN…]``) exist, and the first holds the
    dictionaries (fairseq reads them there); else one line naming the folder."""
    paths = utils.split_paths(data) if data else []
    if not paths:
        raise DifformerError("no data-bin given: the first argument is the folder fairseq-preprocess "
                             "(or difformer-prepare) wrote, the one holding dict.*.txt")
    for path in paths:
        if not os.path.isdir(path):
            raise DifformerError(f"data-bin {path} not found: give the folder fairseq-preprocess "
                                 f"(or difformer-prepare, as DESTDIR/bin) wrote, the one holding dict.*.txt")
    if not any(name.startswith("dict.") and name.endswith(".txt") for name in os.listdir(paths[0])):
        raise DifformerError(f"{paths[0]} holds no dict.*.txt, so it is no fairseq data-bin: give the "
                             f"folder fairseq-preprocess wrote (difformer-prepare writes it as DESTDIR/bin)")


def check_precision_flags(args):
    """--fp16 / --amp / --bf16 where they cannot run stop with the flag and the fix (fairseq would
    train in half precision on the CPU, or take its TPU path for --bf16)."""
    cpu = getattr(args, "cpu", False) or not torch.cuda.is_available()
    for flag in ("fp16", "memory_efficient_fp16", "amp", "bf16", "memory_efficient_bf16"):
        if not getattr(args, flag, False):
            continue
        name = "--" + flag.replace("_", "-")
        if cpu:
            raise DifformerError(
                f"{name} needs a CUDA GPU, and this run is on the CPU"
                f"{' (--cpu)' if getattr(args, 'cpu', False) else ''}: drop {name} to train in float32"
            )
        if "bf16" in flag and not torch.cuda.is_bf16_supported():
            raise DifformerError(
                f"{name}: this GPU ({torch.cuda.get_device_name()}) has no bfloat16 support; "
                f"use --fp16 instead"
            )
