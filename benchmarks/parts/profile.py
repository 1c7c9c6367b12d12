"""Part profile, where the time goes: torch profiler on training steps and a decoding batch, in process.

The models, batches and generators are built from the same command lines the benchmark runs
(fairseq's own parsers), so a profile is of exactly what was measured. Besides the operators,
every top-level module's forward pass is timed as a named range (encoder, each decoder layer,
Difformer's input path, the output projection), which splits the time the operator table cannot.
"""

import time
from contextlib import contextmanager
from typing import Dict, List

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from .. import systems

TOP_OPS = 12


@contextmanager
def module_ranges(model: torch.nn.Module, depth: int = 2):
    """Mark the forward pass of every module up to ``depth`` levels below ``model`` (and each
    decoder/encoder layer) as a profiler range named after its attribute path."""
    handles, stack = [], []

    def pre(name):
        def hook(module, inputs):
            ctx = record_function(f"module::{name}")
            ctx.__enter__()
            stack.append(ctx)
        return hook

    def post(module, inputs, output):
        stack.pop().__exit__(None, None, None)

    for name, module in model.named_modules():
        level = name.count(".") + 1 if name else 0
        if 0 < level <= depth or (".layers." in name and level == 3):
            handles.append(module.register_forward_pre_hook(pre(name)))
            handles.append(module.register_forward_hook(post))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _summary(prof, steps: int, wall: float) -> Dict:
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events if not e.key.startswith("module::")) or 1.0
    ops = sorted((e for e in events if not e.key.startswith("module::")),
                 key=lambda e: e.self_cpu_time_total, reverse=True)
    modules = sorted((e for e in events if e.key.startswith("module::")),
                     key=lambda e: e.cpu_time_total, reverse=True)
    return {
        "ms_per_step": round(1000 * wall / steps, 1),
        "top_ops": [[e.key, round(e.self_cpu_time_total / 1000 / steps, 2),
                     round(100 * e.self_cpu_time_total / total, 1)] for e in ops[:TOP_OPS]],
        "modules_forward_ms": [[e.key[len("module::"):], round(e.cpu_time_total / 1000 / steps, 2)]
                               for e in modules[:20]],
    }


def _config(parser, cmd: List[str]):
    """fairseq's configuration of a fairseq-train / fairseq-generate command line."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_difformer  # noqa: F401

    return convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, [str(c) for c in cmd[1:]]))


def profile_training(train_cmd: List[str], steps: int) -> Dict:
    """``steps`` training steps (forward, backward, Adam update) after two unprofiled ones."""
    from fairseq import options, tasks

    cfg = _config(options.get_training_parser(), train_cmd)
    torch.manual_seed(1)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batches = task.get_batch_iterator(
        dataset=task.dataset("train"), max_tokens=cfg.dataset.max_tokens, seed=1,
        max_positions=(1024, 1024), ignore_invalid_inputs=True,
    ).next_epoch_itr(shuffle=True)
    model.train()

    class Backward:  # the one optimizer method a task's train_step calls
        @staticmethod
        def backward(loss):
            loss.backward()

    def step(sample):
        # The task's own train_step: CMLM's task masks the target there.
        optimizer.zero_grad()
        task.train_step(sample, model, criterion, Backward, update_num=1000)
        optimizer.step()

    for _ in range(2):
        step(next(batches))
    samples = [next(batches) for _ in range(steps)]
    with module_ranges(model), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for sample in samples:
            step(sample)
        wall = time.perf_counter() - start
    summary = _summary(prof, steps, wall)
    summary["target_tokens_per_step"] = sum(s["ntokens"] for s in samples) / steps
    return summary


def profile_decoding(generate_cmd: List[str]) -> Dict:
    """The first batch of the test set, decoded once unprofiled (warm-up) and once profiled."""
    from fairseq import checkpoint_utils, options, tasks, utils

    cfg = _config(options.get_generation_parser(), generate_cmd)
    torch.manual_seed(1)
    task = tasks.setup_task(cfg.task)
    task.load_dataset(cfg.dataset.gen_subset)
    models, _ = checkpoint_utils.load_model_ensemble(utils.split_paths(cfg.common_eval.path), task=task)
    for model in models:
        model.eval()
    generator = task.build_generator(models, cfg.generation)
    sample = next(task.get_batch_iterator(
        dataset=task.dataset(cfg.dataset.gen_subset), max_sentences=cfg.dataset.batch_size,
        max_positions=(1024, 1024), ignore_invalid_inputs=True,
    ).next_epoch_itr(shuffle=False))
    with torch.no_grad():
        task.inference_step(generator, models, sample)
        with module_ranges(models[0]), profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            task.inference_step(generator, models, sample)
            wall = time.perf_counter() - start
    summary = _summary(prof, 1, wall)
    summary["sentences_per_batch"] = sample["nsentences"]
    return summary


def profile_all(bench, steps: int) -> Dict:
    """Training steps of every system, and a batch of 100 in the AR beam-5 and Difformer 20-step
    settings, from the benchmark's own commands and trained checkpoints."""
    result = {"train_step": {}, "decode_batch": {}}
    for system in systems.SYSTEMS:
        cmd = bench.train_command(system, bench.work / "profile" / system)
        result["train_step"][system] = profile_training(cmd, steps)
    for name in ("ar_beam5", "difformer_20", "cmlm_lb1"):
        setting = systems.SETTINGS_BY_NAME[name]
        cmd = bench.generate_command(setting, 100)
        result["decode_batch"][name] = profile_decoding(cmd)
    return result


def run(bench):
    bench.results.set("profile", profile_all(bench, steps=2 if bench.args.quick else 5))
