"""Decoding for ``difformer-trajectory``: the words of every denoising step, exactly as
``fairseq-generate --retain-iter-history`` (or ``fairseq-interactive``) decodes them.

The options are fairseq-generate's own (``options.get_generation_parser`` and
``parse_args_and_arch``, task ``difformer`` by default), so every decoding flag means what it
means there. The noise drawn for a sentence depends on the seed and on every batch decoded
before it, so the steps below are fairseq-generate's, in its order: seed, task, checkpoints
(building a model draws from the seeded generator too), the split's batches, the task's
generator. Decoding stops after the last batch that holds one of the sentences asked for.
Imported by ``difformer-trajectory`` once its arguments are parsed.
"""

import argparse
import ast
import math
import pickle
import warnings
from pathlib import Path
from typing import Iterable, List

import numpy as np
import torch
from fairseq import checkpoint_utils, options, tasks, utils
from fairseq.data.data_utils import infer_language_pair, post_process
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq_cli.generate import get_symbols_to_strip_from_output

import fairseq_difformer  # noqa: F401  (registers the difformer task and model)

from difformer_core.errors import DifformerError

from .trajectory_grid import Trajectory

GENERATE_MAX_TOKENS = 12000  # fairseq-generate's batch size when neither --max-tokens nor --batch-size is given


def parse_fairseq_args(argv: List[str]):
    """fairseq-generate's configuration from its command-line options, with
    ``--retain-iter-history``; a bad option raises a one-line DifformerError."""
    task = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    task.add_argument("--task", default="difformer")
    name = task.parse_known_args(argv)[0].task
    if name != "difformer":  # checked first: another task would refuse the decoding options
        raise DifformerError(f"--task {name}: the trajectory is drawn for Difformer models (--task difformer)")
    parser = options.get_generation_parser(default_task="difformer")

    def error(message):
        raise DifformerError(message)

    parser.error = error  # argparse would print fairseq-generate's whole usage first
    args = options.parse_args_and_arch(parser, argv)
    args.retain_iter_history = True
    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's configs
        warnings.simplefilter("ignore")
        cfg = convert_namespace_to_omegaconf(args)
    check_paths(cfg)
    return cfg


def check_paths(cfg):
    """The data-bin and every --path checkpoint exist (fairseq would fail deep inside)."""
    for data in utils.split_paths(cfg.task.data):
        if not Path(data).is_dir():
            raise DifformerError(f"{data}: no such directory (the data-bin written by fairseq-preprocess)")
    langs = (cfg.task.source_lang, cfg.task.target_lang)
    if None in langs and infer_language_pair(utils.split_paths(cfg.task.data)[0]) == (None, None):
        raise DifformerError(
            f"{cfg.task.data} holds no fairseq-preprocess output (<split>.<src>-<tgt>.<lang>.idx): "
            f"give the data-bin the model was trained on"
        )
    if cfg.common_eval.path is None:
        raise DifformerError(
            "--path CHECKPOINT is required: the Difformer checkpoint (difformer.pt:transformer.pt "
            "with an AR reranker)"
        )
    for path in utils.split_paths(cfg.common_eval.path):
        if not Path(path).is_file():
            raise DifformerError(f"--path {path}: no such file")


def load(cfg):
    """Seed, task and models, as fairseq-generate and fairseq-interactive prepare them.

    Returns (task, models, the checkpoint's cfg, use_cuda)."""
    utils.import_user_module(cfg.common)
    if cfg.common.seed is not None and not cfg.generation.no_seed_provided:
        np.random.seed(cfg.common.seed)
        utils.set_torch_seed(cfg.common.seed)
    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    try:
        task = tasks.setup_task(cfg.task)
    except FileNotFoundError as exc:  # e.g. no dict.<lang>.txt
        raise DifformerError(f"{cfg.task.data} is not a complete data-bin: {exc}") from None
    try:
        models, saved_cfg = checkpoint_utils.load_model_ensemble(
            utils.split_paths(cfg.common_eval.path),
            arg_overrides=ast.literal_eval(cfg.common_eval.model_overrides),
            task=task,
            suffix=cfg.checkpoint.checkpoint_suffix,
            strict=(cfg.checkpoint.checkpoint_shard_count == 1),
            num_shards=cfg.checkpoint.checkpoint_shard_count,
        )
    except (pickle.UnpicklingError, EOFError, RuntimeError) as exc:  # not a (complete) checkpoint
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DifformerError(f"cannot load --path {cfg.common_eval.path}: {first_line}") from None
    for model in models:
        if cfg.common.fp16:
            model.half()
        if use_cuda and not cfg.distributed_training.pipeline_model_parallel:
            model.cuda()
        model.prepare_for_inference_(cfg)
    return task, models, saved_cfg, use_cuda


def split_trajectories(cfg, sentence_ids: List[int]) -> List[Trajectory]:
    """The trajectories of sentences ``sentence_ids`` of --gen-subset, as fairseq-generate
    decodes them: its batches in its order, up to the last one holding one of them."""
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        cfg.dataset.max_tokens = GENERATE_MAX_TOKENS
    task, models, saved_cfg, use_cuda = load(cfg)
    subset = cfg.dataset.gen_subset
    try:
        task.load_dataset(subset, task_cfg=saved_cfg.task)
    except FileNotFoundError:
        raise DifformerError(
            f"--gen-subset {subset}: {cfg.task.data} has no such split (fairseq-preprocess writes "
            f"train, valid and test)"
        ) from None
    dataset = task.dataset(subset)
    # Batches are loaded in this process: the same batches and noise as with fairseq-generate's
    # worker (the loader draws its seed here either way), without the seconds a worker takes
    # to shut down when decoding stops before the end of the split.
    cfg.dataset.num_workers = 0
    out_of_range = [i for i in sentence_ids if i >= len(dataset)]
    if out_of_range:
        raise DifformerError(
            f"sentence {out_of_range[0]} is out of range: the {subset} split of {cfg.task.data} has "
            f"{len(dataset)} sentences (ids 0 to {len(dataset) - 1})"
        )
    batches = task.get_batch_iterator(
        dataset=dataset,
        max_tokens=cfg.dataset.max_tokens,
        max_sentences=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), *[m.max_positions() for m in models]),
        ignore_invalid_inputs=cfg.dataset.skip_invalid_size_inputs_valid_test,
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
        seed=cfg.common.seed,
        num_shards=cfg.distributed_training.distributed_world_size,
        shard_id=cfg.distributed_training.distributed_rank,
        num_workers=cfg.dataset.num_workers,
        data_buffer_size=cfg.dataset.data_buffer_size,
    ).next_epoch_itr(shuffle=False)
    generator = task.build_generator(models, cfg.generation)
    decode_fn = text_decoder(*build_encoders(task, cfg))
    wanted = set(sentence_ids)
    found = {}
    for sample in batches:
        if "net_input" not in sample:
            continue
        for trajectory in decode_batch(task, generator, models, sample, cfg, use_cuda, decode_fn):
            if trajectory.sentence_id in wanted:
                found[trajectory.sentence_id] = trajectory
        if len(found) == len(wanted):
            break
    missing = sorted(wanted - set(found))
    if missing:
        raise DifformerError(
            f"sentence {missing[0]} of {subset} was not decoded: fairseq skipped it "
            f"(--skip-invalid-size-inputs-valid-test: longer than the model's positions?)"
        )
    return [found[i] for i in sentence_ids]


def input_trajectories(cfg, lines: List[str]) -> List[Trajectory]:
    """The trajectories of source lines, as fairseq-interactive decodes them when all of them
    fit in its buffer (``--buffer-size`` ≥ the number of lines): encoded with --tokenizer and
    --bpe if given, else as the data-bin's ``preprocessing.json`` records, then batched by --batch-size / --max-tokens (default: one line a batch)."""
    if cfg.dataset.max_tokens is None and cfg.dataset.batch_size is None:
        cfg.dataset.batch_size = 1
    task, models, _, use_cuda = load(cfg)
    generator = task.build_generator(models, cfg.generation)
    task.use_recorded_preprocessing = True  # raw lines: the data-bin's preprocessing.json by default
    tokenizer, bpe = build_encoders(task, cfg)

    def encode_fn(text):
        if tokenizer is not None:
            text = tokenizer.encode(text)
        if bpe is not None:
            text = bpe.encode(text)
        return text

    tokens, lengths = task.get_interactive_tokens_and_lengths(lines, encode_fn)
    batches = task.get_batch_iterator(
        dataset=task.build_dataset_for_inference(tokens, lengths),
        max_tokens=cfg.dataset.max_tokens,
        max_sentences=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), *[m.max_positions() for m in models]),
        ignore_invalid_inputs=cfg.dataset.skip_invalid_size_inputs_valid_test,
    ).next_epoch_itr(shuffle=False)
    decode_fn = text_decoder(tokenizer, bpe)
    found = {}
    for sample in batches:
        for trajectory in decode_batch(task, generator, models, sample, cfg, use_cuda, decode_fn):
            found[trajectory.sentence_id] = trajectory
    return [found[i] for i in sorted(found)]


def build_encoders(task, cfg):
    """--tokenizer and --bpe as fairseq builds them; a missing --bpe-codes file is named."""
    codes = getattr(cfg.bpe, "bpe_codes", None) if cfg.bpe is not None else None
    if codes is not None and not Path(codes).is_file():
        raise DifformerError(f"--bpe-codes {codes}: no such file")
    return task.build_tokenizer(cfg.tokenizer), task.build_bpe(cfg.bpe)


def text_decoder(tokenizer, bpe):
    """fairseq-generate's decode_fn for the S- line: undo --bpe, then --tokenizer."""

    def decode_fn(text):
        if bpe is not None:
            text = bpe.decode(text)
        if tokenizer is not None:
            text = tokenizer.decode(text)
        return text

    return decode_fn


def decode_batch(task, generator, models, sample, cfg, use_cuda, decode_fn) -> Iterable[Trajectory]:
    """Decode one batch with the task's generator; the selected candidate's trajectory per
    sentence, in the batch's order."""
    sample = utils.move_to_cuda(sample) if use_cuda else sample
    prefix_tokens = None
    if cfg.generation.prefix_size > 0 and sample.get("target") is not None:
        prefix_tokens = sample["target"][:, : cfg.generation.prefix_size]  # refused by the generator
    hypos = task.inference_step(generator, models, sample, prefix_tokens=prefix_tokens,
                                constraints=sample.get("constraints"))
    timesteps = generator.decoding_timesteps()
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    for i, sentence_id in enumerate(sample["id"].tolist()):
        src_tokens = utils.strip_pad(sample["net_input"]["src_tokens"][i], src_dict.pad())
        source = decode_fn(src_dict.string(src_tokens, cfg.common_eval.post_process))
        best = hypos[i][0]
        _, hypothesis, _ = utils.post_process_prediction(
            hypo_tokens=best["tokens"].int().cpu(),
            src_str=source,
            alignment=best["alignment"],
            align_dict=None,
            tgt_dict=tgt_dict,
            remove_bpe=cfg.common_eval.post_process,
            extra_symbols_to_ignore=get_symbols_to_strip_from_output(generator),
        )
        yield Trajectory(
            sentence_id=sentence_id,
            source=source,
            timesteps=timesteps,
            # The last position is always </s>; a symbol per position ("" for </s> and <s>).
            steps=[position_symbols(step["tokens"][:-1].cpu(), tgt_dict) for step in best["history"]],
            hypothesis=hypothesis,
            score=float(best["score"] / math.log(2)),  # base 2, as fairseq-generate prints it
        )


def position_symbols(tokens, dictionary) -> List[str]:
    """Each position's symbol as ``dictionary.string`` writes it ("" for </s>)."""
    return [dictionary.string(tokens[p : p + 1]) for p in range(len(tokens))]


def remove_bpe_function(cfg):
    """--remove-bpe / --post-process as a function of a string (None without it)."""
    symbol = cfg.common_eval.post_process
    if symbol is None:
        return None
    return lambda text: post_process(text, symbol)
