"""What GPU users run, checked on the CPU: half-precision models (fp16 / bf16) train, validate with
--eval-bleu and decode when built through fairseq's task API; the diffusion process follows the
model's device; every parameter takes part in every training step (data-parallel training)."""

import pytest
import torch
from conftest import TINY_ARCH, USER_DIR
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from test_model import DICT, batch, build, criterion, generator

import fairseq_difformer  # noqa: F401


def setup(databin, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(databin), "--user-dir", USER_DIR, "--task", "difformer", "--criterion", "difformer",
        *TINY_ARCH, "--cpu", "--max-tokens", "1024", "--eval-bleu", "--eval-bleu-remove-bpe",
        "--eval-bleu-args", '{"decoding_steps": 3}', "--decoding-steps", "3", "--length-beam-size", "2",
        "--seed", "1", *extra,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    return cfg, task


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_model_trains_validates_and_decodes(databin, dtype):
    """A model cast as fairseq's --bf16 / --fp16 cast it: one training step, one --eval-bleu
    validation step and fairseq-generate's inference step."""
    cfg, task = setup(databin)
    model = task.build_model(cfg.model).to(dtype)
    crit = task.build_criterion(cfg.criterion)
    itr = task.get_batch_iterator(task.dataset("valid"), max_tokens=1024).next_epoch_itr(shuffle=False)
    sample = next(itr)

    model.train()
    loss, _, log = crit(model, sample)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == dtype and torch.isfinite(p.grad).all(), name
    assert model.diffusion.alphas_cumprod.dtype == torch.float64  # the schedule keeps its precision

    model.eval()
    _, _, log = task.valid_step(sample, model, crit)
    assert log["_bleu_ref_len"] > 0 and "_bleu_totals_0" in log  # the batch was decoded

    gen = task.build_generator([model], cfg.generation)
    hypos = task.inference_step(gen, [model], sample)
    assert len(hypos) == sample["nsentences"] and all(len(h) == 2 for h in hypos)
    assert cfg.generation.beam == 2  # fairseq-generate's summary reports the candidates searched


def test_half_precision_decoding_agrees_with_float32():
    """The same model and noise decoded in fp32 and bf16 give mostly the same words (the latents
    and every step in the model's dtype, the schedule in float64)."""
    model = build()
    src, src_lengths, _ = batch()
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_lengths}}
    torch.manual_seed(0)
    ref = generator(model, steps=10)
    ref_tokens = [h[0]["tokens"] for h in ref.generate([model], sample)]
    model = model.to(torch.bfloat16)
    torch.manual_seed(0)
    half_tokens = [h[0]["tokens"] for h in generator(model, steps=10).generate([model], sample)]
    assert [len(t) for t in half_tokens] == [len(t) for t in ref_tokens]
    same = sum(int((a == b).sum()) for a, b in zip(ref_tokens, half_tokens))
    assert same >= 0.75 * sum(len(t) for t in ref_tokens)


def tensors_outside_modules(obj, seen=None):
    """Every tensor an object holds in its attributes, lists and dicts, not counting nn.Modules
    (whose parameters and buffers .to() moves)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    children = []
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    return [t for child in children for t in tensors_outside_modules(child, seen)]


def test_every_diffusion_tensor_follows_the_model_device():
    model = build()
    gen = generator(model, steps=5, length_beam=2)
    assert tensors_outside_modules(gen) == [] and tensors_outside_modules(model) == []
    model.to("meta")
    devices = {b.device.type for b in model.buffers()} | {p.device.type for p in model.parameters()}
    assert devices == {"meta"}
    assert {b.dtype for b in model.diffusion.buffers()} <= {torch.float64, torch.long}
    assert model.diffusion.model_timesteps(torch.tensor([3], device="meta")).device.type == "meta"


def test_generator_moves_its_process_to_the_model():
    """--eval-bleu builds the generator before fairseq moves the model to the GPU: the sampler the
    generator holds (with its process) follows the model when decoding."""
    model = build()
    gen = generator(model, steps=4)
    moves = []
    move = gen.sampler.to
    gen.sampler.to = lambda *args, **kwargs: moves.append(args) or move(*args, **kwargs)
    src, src_lengths, _ = batch()
    hypos = gen.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_lengths}})
    assert len(hypos) == 2 and moves == [(model.decoder.embed_tokens.weight.device,)]


CONFIGURATIONS = {
    "default": ({}, {}),
    "no self-conditioning": ({"self_cond": False}, {}),
    "self-conditioning before the projection": ({"self_cond_before_proj": True, "embed_norm_before_proj": True}, {}),
    "--sg-length-pred": ({"sg_length_pred": True}, {}),
    "rounding loss": ({}, {"rounding_loss": True}),
    "no anchor loss": ({}, {"no_anchor_loss": True}),
    "separate embeddings": ({"share_all_embeddings": False}, {}),
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_every_parameter_is_in_every_training_step(name):
    """fairseq's default --ddp-backend pytorch_ddp (no unused-parameter search) fails when a
    parameter takes no part in a step: check each step, on both self-conditioning branches."""
    model_options, criterion_options = CONFIGURATIONS[name]
    model = build(**model_options).train()
    crit = criterion(model, **criterion_options)
    src, src_lengths, tgt = batch()
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_lengths}, "target": tgt, "ntokens": 6}
    calls = []
    original = model.decoder.forward
    model.decoder.forward = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    branches = set()
    for seed in range(8):
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        calls.clear()
        loss, _, _ = crit(model, sample)
        loss.backward()
        branches.add(len(calls))
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert unused == [], f"seed {seed}: {unused}"
    assert branches == ({1, 2} if model.decoder.self_cond else {1})
