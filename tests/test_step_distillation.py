"""Step distillation (models/step_distillation.py): the student's timesteps and targets against the
teacher's decoding chain, the decoding a student's checkpoint records, and a real round of
fairseq-train --distill-steps-from that fairseq-generate then decodes in the student's calls."""

import copy

import pytest
import torch

import fairseq_difformer  # noqa: F401
from conftest import USER_DIR, run_in_process, train_difformer
from difformer_core.checkpoints import mapped_state
from difformer_core.decoding import DEFAULT_STEPS, DecodingConfig
from difformer_core.diffusion import GaussianDiffusion
from difformer_core.errors import DifformerError
from fairseq_difformer.generator import DifformerGenerator, decoding_sampler
from fairseq_difformer.models.step_distillation import StepDistillation, student_timesteps
from test_model import DICT, batch, build

# ---------------------------------------------------------------- timesteps


def test_respace_to_keeps_the_given_steps_and_equals_respace_on_the_spaced_grid():
    process = GaussianDiffusion.from_schedule("sqrt", 101, rescaling_factor=2.0)
    spaced = process.respace(3)                     # steps 0, 50, 100
    given = process.respace_to([100, 0, 50])
    assert given.timestep_map.tolist() == spaced.timestep_map.tolist() == [0, 50, 100]
    assert torch.equal(given.alphas_cumprod, spaced.alphas_cumprod)
    assert torch.equal(given.betas, spaced.betas)
    kept = process.respace_to([30, 80])
    # β'_k = 1 − ᾱ_{s_k} / ᾱ_{s_{k−1}}, ᾱ_{s_{−1}} = 1
    a = process.alphas_cumprod
    assert torch.allclose(kept.betas, torch.stack([1 - a[30], 1 - a[80] / a[30]]))
    assert kept.noise_scale == 2.0
    for bad in ([], [5, 5], [101], [-1]):
        with pytest.raises(ValueError, match="distinct steps of 0..100"):
            process.respace_to(bad)


def test_the_student_takes_every_rth_teacher_timestep():
    teacher = [1999, 1499, 1000, 500]
    assert student_timesteps(teacher, 4) == teacher
    assert student_timesteps(teacher, 2) == [1999, 1000]
    assert student_timesteps(teacher, 1) == [1999]
    with pytest.raises(ValueError, match="3 student steps do not divide the teacher's 4 calls"):
        student_timesteps(teacher, 3)


def test_a_recorded_decoding_is_the_default_and_given_steps_replace_it():
    recorded = [100, 300]
    own = DecodingConfig().resolved(recorded)
    assert (own.steps, own.early_stopping, own.timesteps) == (2, 0, (300, 100))
    given = DecodingConfig(steps=4).resolved(recorded)
    assert (given.steps, given.early_stopping, given.timesteps) == (4, 1, None)
    plain = DecodingConfig().resolved(None)
    assert (plain.steps, plain.early_stopping, plain.timesteps) == (DEFAULT_STEPS, DEFAULT_STEPS // 4, None)
    assert DecodingConfig(early_stopping=1).resolved(recorded).early_stopping == 1
    with pytest.raises(DifformerError, match=r"records decoding timesteps \[300, 100\] outside"):
        DecodingConfig().resolved(recorded).validate(200)


def test_the_generator_decodes_at_the_timesteps_a_student_records():
    model = build(diffusion_steps=100)
    model.args.decoding_timesteps = [99, 49]
    generator = DifformerGenerator(model, DICT, DecodingConfig())
    assert generator.decoding_timesteps() == [99, 49]
    src, src_lengths, _ = batch()
    hypos = generator.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_lengths}})
    assert {h[0]["steps"] for h in hypos} == {2}
    assert DifformerGenerator(model, DICT, DecodingConfig(steps=5)).decoding_timesteps() == [99, 74, 50, 25]


# ---------------------------------------------------------------- targets


def distillation(teacher, calls_of_teacher=4, student_steps=2, sampler="ddim"):
    config = DecodingConfig(steps=calls_of_teacher + 1, sampler=sampler).resolved()
    return StepDistillation(teacher, decoding_sampler(config, teacher.args), student_steps)


def test_the_target_is_the_teachers_z0_after_r_of_its_calls():
    """ẑ0* = f_T(z⁽²⁾, τ_2, ẑ0⁽¹⁾), z⁽²⁾ the sampler's step from z given ẑ0⁽¹⁾ = f_T(z, τ_1, ẑ0_prev),
    for the first student step; the second starts at τ_3."""
    teacher = build(diffusion_steps=100)
    distilled = distillation(teacher)
    sampler = distilled.sampler
    assert sampler.timesteps == (99, 74, 50, 25) and distilled.timesteps == [99, 50]
    src, src_lengths, tgt = batch()
    mask = tgt.eq(DICT.pad())
    torch.manual_seed(1)
    z, prev = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    encoder_out = teacher.encoder(src, src_lengths=src_lengths)
    with torch.no_grad():
        for first in (0, 2):
            t1, t2 = (torch.full((2,), sampler.timesteps[i]) for i in (first, first + 1))
            z0_1 = teacher.decoder(z, t1, prev, encoder_out, mask)
            z_2 = sampler.step(z, z0_1, sampler.steps[first])
            expected = teacher.decoder(z_2, t2, z0_1, encoder_out, mask)
            target = distilled.teacher_target(teacher, sampler, first, src, src_lengths, z, prev, mask)
            assert torch.allclose(target, expected, atol=1e-6)


def test_a_student_as_many_steps_as_its_teacher_starts_at_zero_loss():
    """With r = 1 the target is the teacher's own ẑ0 at the student's input: a student that starts
    from the teacher's weights (no dropout) matches it exactly, at every step j."""
    teacher = build(diffusion_steps=100)
    student = copy.deepcopy(teacher).eval()
    student.step_distillation = distillation(teacher, 4, 4)
    src, src_lengths, tgt = batch()
    for j in range(4):
        z0 = student.decoder.embed_latent(tgt)
        encoder_out = student.encoder(src, src_lengths=src_lengths)
        t, z, prev, target = student.step_distillation.draw(student, src, src_lengths, z0, tgt.eq(DICT.pad()),
                                                            encoder_out, j=j)
        assert t.tolist() == [[99, 74, 50, 25][j]] * 2 and not prev.any()
        assert torch.allclose(student.decoder(z, t, prev, encoder_out, tgt.eq(DICT.pad())), target, atol=1e-6)
    out = student(src, src_lengths, None, tgt)
    assert not torch.equal(out["z0_target"], out["z0"])


def test_the_criterions_mse_is_against_the_teachers_target():
    from test_model import criterion

    teacher = build(diffusion_steps=100)
    student = build(diffusion_steps=100)
    student.step_distillation = distillation(teacher, 4, 2)
    src, src_lengths, tgt = batch()
    torch.manual_seed(3)
    out = student(src, src_lengths, None, tgt)
    keep = ~out["padding_mask"]
    expected = (out["z0_hat"] - out["z0_target"]).pow(2).mean(-1)[keep].mean()
    assert torch.allclose(criterion(student).compute_losses(student, out, tgt)["mse"], expected)


# ---------------------------------------------------------------- fairseq-train and fairseq-generate


@pytest.fixture(scope="module")
def student(difformer_checkpoint, databin, tmp_path_factory):
    """One round: the tiny teacher (4 calls by default) distilled into a 2-call student."""
    save_dir = tmp_path_factory.mktemp("student")
    proc = train_difformer(databin, save_dir, 2, "--no-epoch-checkpoints", "--rescaling-factor", "4",
                           "--distill-steps-from", difformer_checkpoint, in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return save_dir / "checkpoint_last.pt"


def test_a_round_records_the_students_steps_and_starts_from_the_teacher(student, difformer_checkpoint):
    teacher_state, state = mapped_state(difformer_checkpoint), mapped_state(student)
    args = state["cfg"]["model"]
    assert args.student_steps == 2
    timesteps = decoding_sampler(DecodingConfig().resolved(), args).timesteps
    assert list(args.decoding_timesteps) == list(timesteps[::2])
    assert int(state["optimizer_history"][-1]["num_updates"]) == 2
    # Two small Adam steps from the teacher's weights: every tensor close to the teacher's.
    for name, weight in teacher_state["model"].items():
        assert (state["model"][name].float() - weight.float()).abs().max() < 0.05, name


def test_fairseq_generate_decodes_a_student_in_its_own_calls(student, databin):
    from fairseq_difformer.models.difformer import DifformerModel

    hub = DifformerModel.from_pretrained(str(student.parent), data_name_or_path=str(databin))
    candidates = hub.generate(hub.encode("ein mann ."))
    assert {c["steps"] for c in candidates} == {2}
    assert {c["steps"] for c in hub.generate(hub.encode("ein mann ."), decoding_steps=5)} == {4}
    proc = run_in_process("fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer",
                          "--path", student, "--gen-subset", "valid", "--max-sentences", "8", "--cpu",
                          "--max-valid-steps", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "H-0\t" in proc.stdout


def test_a_second_round_halves_the_students_steps(student, databin, tmp_path):
    proc = train_difformer(databin, tmp_path, 1, "--no-epoch-checkpoints", "--rescaling-factor", "4",
                           "--distill-steps-from", student, in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = mapped_state(tmp_path / "checkpoint_last.pt")["cfg"]["model"]
    assert list(args.decoding_timesteps) == list(mapped_state(student)["cfg"]["model"].decoding_timesteps)[:1]


@pytest.mark.parametrize("extra, message", [
    (["--student-steps", "2"], "--student-steps is an option of step distillation: give --distill-steps-from"),
    (["--distill-steps-from", "TEACHER", "--student-steps", "3"],
     "--student-steps 3 does not divide the teacher's 4 denoiser calls"),
    (["--distill-steps-from", "TEACHER", "--student-steps", "0"], "--student-steps must be at least 1 (got 0)"),
    (["--distill-steps-from", "TEACHER", "--model-dim", "32"],
     "the teacher differs in --model-dim 64 (the student: 32)"),
    (["--distill-steps-from", "AR"], "not a Difformer checkpoint (it holds transformer)"),
    (["--distill-steps-from", "missing.pt"], "--distill-steps-from missing.pt does not load: no such file"),
    (["--distill-steps-from", "TEACHER", "--init-from-ar", "AR"],
     "--distill-steps-from and --init-from-ar both set the starting weights"),
])
def test_step_distillation_errors_are_one_line(extra, message, difformer_checkpoint, reranker_checkpoint,
                                               databin, tmp_path):
    names = {"TEACHER": str(difformer_checkpoint), "AR": str(reranker_checkpoint)}
    extra = [names.get(x, x) for x in extra]
    proc = train_difformer(databin, tmp_path / "run", 1, "--rescaling-factor", "4", *extra, in_process=True)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_the_onnx_engine_of_a_student_decodes_in_its_calls(student, databin, tmp_path):
    pytest.importorskip("onnxruntime")
    from fairseq import checkpoint_utils

    from fairseq_difformer.engine.export import export
    from fairseq_difformer.engine.runtime import EngineModel

    (model,), _, task = checkpoint_utils.load_model_ensemble_and_task([str(student)], arg_overrides={"data": str(databin)})
    folder = export(model.eval(), tmp_path / "student.onnx", int8=False, checkpoint=student, databin=databin,
                    languages=("de", "en"))
    engine = EngineModel(folder, precision="float32")
    generator = DifformerGenerator(engine, task.target_dictionary, DecodingConfig())
    assert generator.decoding_timesteps() == list(model.args.decoding_timesteps) and len(model.args.decoding_timesteps) == 2


def test_a_distillation_run_resumes_from_its_own_checkpoint(student, difformer_checkpoint, databin, tmp_path):
    import shutil

    shutil.copy(student, tmp_path / "checkpoint_last.pt")
    proc = train_difformer(databin, tmp_path, 3, "--no-epoch-checkpoints", "--rescaling-factor", "4",
                           "--distill-steps-from", difformer_checkpoint, in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = mapped_state(tmp_path / "checkpoint_last.pt")
    assert int(state["optimizer_history"][-1]["num_updates"]) == 3
    assert list(state["cfg"]["model"].decoding_timesteps) == list(mapped_state(student)["cfg"]["model"].decoding_timesteps)
