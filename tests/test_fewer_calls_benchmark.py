"""The benchmark's fewer_calls part, with training and decoding replaced by fakes: which decodings
and rounds it runs, the choice of the teacher's decoding on valid, the records and the report."""

import json
from argparse import Namespace
from pathlib import Path

from benchmarks.parts import fewer_calls
from benchmarks.pipeline import Pipeline


def quickstart_models(folder: Path):
    for path in ("ar/checkpoint_last.pt", "checkpoints/checkpoint_last.pt"):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(b"")
    (folder / "distill" / "bin").mkdir(parents=True, exist_ok=True)
    return folder


def flag(args, name):
    return args[args.index(name) + 1] if name in args else None


def run_part(tmp_path, monkeypatch):
    """The part on fakes: the teacher's BLEU rises with its calls and is best with ddim, skip_last;
    each student scores its calls' teacher BLEU + 1."""
    bench = Pipeline(Namespace(device="cpu", quick=False, workdir=tmp_path / "work", databin=tmp_path / "bin",
                               results=tmp_path / "results.json", engines_models=quickstart_models(tmp_path / "qs"),
                               fewer_calls_updates=50))
    monkeypatch.setattr(fewer_calls, "updates_of", lambda path: 2200)
    trained, decoded = {}, []

    def fake_run_training(name, cmd, budget):
        trained[name] = [str(a) for a in cmd]
        return {"updates": budget["updates"], "command": " ".join(trained[name]),
                "checkpoint": str(tmp_path / name / "checkpoint_last.pt")}

    def fake_generate(setting, batch_size, checkpoint=None, tag=None, databin=None, subset="test", **kwargs):
        decoded.append((tag, Path(checkpoint).parent.name, subset, setting.args))
        return tmp_path / f"{tag}.txt", {"sentences_per_s": 100.0, "command": tag}

    def fake_score(out):
        _, args = next((c, a) for t, c, s, a in decoded if out.stem == t)
        student = next((c for t, c, s, a in decoded if out.stem == t)).startswith("fewer_calls-")
        steps, early = flag(args, "--decoding-steps"), flag(args, "--decoding-early-stopping")
        calls = int(steps) - int(early) if steps else {"fewer_calls-round1": 2}.get(
            next(c for t, c, s, a in decoded if out.stem == t), 1)
        bleu = 20.0 + calls + (flag(args, "--decoding-sampler") == "ddim") + (early == "1") + 2 * student
        return {"sacrebleu": bleu, "tok_bleu": bleu, "length_ratio": 1.0, "exact_length": 0.2}

    monkeypatch.setattr(bench, "run_training", fake_run_training)
    monkeypatch.setattr(bench, "generate", fake_generate)
    monkeypatch.setattr(bench, "score", fake_score)
    fewer_calls.run(bench)
    return json.loads((tmp_path / "results.json").read_text())["fewer_calls"], trained, decoded


def test_the_part_chooses_the_teachers_decoding_on_valid_and_trains_each_round(tmp_path, monkeypatch):
    part, trained, decoded = run_part(tmp_path, monkeypatch)
    # Valid: one decoding at 1 call, every sampler × both spacings at more.
    valid = [tag for tag, _, subset, _ in decoded if subset == "valid" and "teacher" in tag]
    assert len(valid) == 1 + 4 * 3 * 2 and len(part["validation"]) == len(valid) + len(fewer_calls.ROUNDS) + len(fewer_calls.CONTROL_CALLS)
    records = part["records"]
    assert records["teacher_c4"]["flags"] == "--decoding-sampler ddim --decoding-steps 5 --decoding-early-stopping 1"
    assert records["teacher_c4"]["bleu"] == 26.0 and records["teacher_c4"]["chosen_on"] == "valid"
    assert {"teacher_c1_seed2", "teacher_c2_seed3", "teacher_c4_seed3"} <= set(records)
    assert "teacher_c3_seed2" not in records and "teacher_c6_seed2" not in records
    assert [r["seed"] for k, r in records.items() if k.startswith("teacher_c2")] == [1, 2, 3]

    # The rounds: round1 halves the teacher, round2 halves round1, direct1 goes to one call.
    control = trained.pop("fewer_calls-continued")
    assert Path(flag(control, "--finetune-from-model")).parent.name == "checkpoints"
    assert "--distill-steps-from" not in control and flag(control, "--lr") == "3e-4"
    assert records["continued_c2"]["flags"] == records["teacher_c2"]["flags"] and records["continued_c2"]["continued"]
    assert {"continued_c4_seed2", "continued_c2_seed3", "continued_c1_seed2"} <= set(records) and "continued_c3" not in records
    assert set(trained) == {"fewer_calls-round1", "fewer_calls-round2", "fewer_calls-direct1", "fewer_calls-round1_ddim",
                            "fewer_calls-continued_direct1"}
    teachers = {name: Path(flag(cmd, "--distill-steps-from")).parent.name for name, cmd in trained.items()}
    assert teachers == {"fewer_calls-round1": "checkpoints", "fewer_calls-round2": "fewer_calls-round1",
                        "fewer_calls-direct1": "checkpoints", "fewer_calls-round1_ddim": "checkpoints",
                        "fewer_calls-continued_direct1": "fewer_calls-continued"}
    assert {name: flag(cmd, "--student-steps") for name, cmd in trained.items()} == {
        "fewer_calls-round1": "2", "fewer_calls-round2": "1", "fewer_calls-direct1": "1", "fewer_calls-round1_ddim": "2",
        "fewer_calls-continued_direct1": "1"}
    assert [flag(cmd, "--decoding-sampler") for cmd in trained.values()].count("ddim") == 1
    assert records["student_round1_ddim"]["flags"] == "--decoding-sampler ddim"
    for cmd in trained.values():
        assert flag(cmd, "--lr") == "3e-4" and flag(cmd, "--max-update") == "50"
        assert cmd.count("--lr") == 1 and flag(cmd, "--arch") == "difformer_small"
    student = records["student_round1"]
    assert student["student"] is True and student["calls"] == 2 and student["flags"] == "(the model's default decoding)"
    assert "--decoding-steps" not in student["command"].split()

    summary = part["summary"]
    assert summary["student_round1"] == {"calls": 2, "student": True, "seeds": 3, "bleu_mean": 24.0,
                                         "bleu_min": 24.0, "bleu_max": 24.0, "sentences_per_s_mean": 100.0}
    assert summary["teacher_c6"]["seeds"] == 1


def test_a_rerun_measures_nothing_twice(tmp_path, monkeypatch):
    run_part(tmp_path, monkeypatch)
    _, _, decoded = run_part(tmp_path, monkeypatch)
    assert decoded == []


def test_the_report_has_a_row_per_system_the_targets_and_the_plot(tmp_path, monkeypatch):
    from benchmarks.report import fewer_calls as report, plots

    part, _, _ = run_part(tmp_path, monkeypatch)
    results = {"fewer_calls": part}
    made = plots.make_plots(results, tmp_path / "benchmarks", "benchmarks")
    assert (tmp_path / "benchmarks" / "fewer_calls.png").stat().st_size > 0
    text = report.section(results, made)
    assert "| teacher, 4 calls (--decoding-sampler ddim --decoding-steps 5 --decoding-early-stopping 1) | 4 |" in text
    assert "| student round1 (teacher → 2 calls, ddpm), its default decoding | 2 | 50 | 24.00 | 24.00 (24.00–24.00) |" in text
    assert "benchmarks/fewer_calls.png" in text
    assert "| control: the teacher trained on without distillation, 4 calls (--decoding-sampler ddim" in text
    two, one = report.targets(results)
    # the 2-call student: 24.00 against the 4-call teacher's 26.00
    assert two["met"] is False and two["shown"] == "student_round1: 24.00 vs teacher 26.00 (-2.00)"
    assert report.origin("round2") == "teacher" and report.origin("continued_direct1") == "continued"
    assert one["name"].endswith("(stretch)") and one["met"] is False
    assert "Not measured yet" in report.section({}, {}) and all(t["met"] is None for t in report.targets({}))
