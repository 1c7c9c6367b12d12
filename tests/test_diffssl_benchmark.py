"""The DifFormer / DifFeed benchmark on SST-2: its targets, report and what a rerun keeps."""

import json

from benchmarks.diffssl import cli as diffssl
from benchmarks.diffssl import report as diffssl_report
from benchmarks.pipeline import shell


def diffssl_results(mode="full"):
    def runs(*accuracies):
        return {str(seed): {"accuracy": a, "updates": 900, "minutes": 4,
                            "command": f"fairseq-train x --arch difformer_fusion --head h --seed {seed}"}
                for seed, a in enumerate(accuracies, 1)}

    return {"mode": mode, "machine": {"description": "2 cores"},
            "grid": {"layers": [0, 1, 2], "timesteps": [0, 100], "accuracy": [[70.0, 71.0], [75.0, 74.0], [73.0, 60.0]],
                     "best": "1@0"},
            "control": {"layers": [0, 1, 2], "timesteps": [0], "accuracy": [[60.0], [61.0], [59.5]]},
            "heads": {"linear": runs(70.0, 71.0, 72.0), "attention": runs(75.0, 76.0, 74.0),
                      "fusion": runs(80.0, 81.0, 82.0), "feedback": runs(81.0, 82.0, 83.0),
                      "scratch": runs(88.0, 89.0, 90.0)},
            "labels": {"fusion": {"0.01": {"accuracy": 70.0}, "0.1": {"accuracy": 76.0}},
                       "feedback": {"0.01": {"accuracy": 71.0}, "0.1": {"accuracy": 77.0}},
                       "scratch": {"0.01": {"accuracy": 60.0}, "0.1": {"accuracy": 77.5}}}}


def test_diffssl_targets_compare_the_means_of_the_seeds():
    rows = {row[0]: row[1:] for row in diffssl_report.targets(diffssl_results())}
    assert rows["DifFormer > attention head > linear probe (means of the seeds)"] == ["81.00 / 75.00 / 71.00", "yes"]
    assert rows["DifFeed ≥ DifFormer"] == ["82.00 / 81.00", "yes"]
    assert rows["DifFormer beats the scratch encoder with 1% of the labels"][1] == "yes"
    assert rows["DifFormer beats the scratch encoder with 10% of the labels"] == ["76.00 / 77.50", "**no**"]
    # The heads' best, not the scratch encoder's (89.00).
    assert rows["best head's dev accuracy ≥ 82 % (the four heads, means of the seeds)"] == ["82.00", "yes"]
    results = diffssl_results()
    results["heads"]["attention"] = {}
    del results["labels"]
    rows = {row[0]: row[2] for row in diffssl_report.targets(results)}
    assert rows["DifFormer > attention head > linear probe (means of the seeds)"] == "not measured"
    assert rows["DifFormer beats the scratch encoder with 1% of the labels"] == "not measured"


def test_diffssl_report_has_its_sections_plots_and_findings_of_a_full_run_only(tmp_path, monkeypatch):
    findings = tmp_path / "diffssl-findings.md"
    findings.write_text("The grid peaks at layer 1.\n")
    monkeypatch.setattr(diffssl_report, "FINDINGS", findings)
    text = diffssl_report.write(diffssl_results(), tmp_path / "full").read_text()
    assert "## Findings\n\nThe grid peaks at layer 1." in text
    assert "| (d) DifFeed (feedback) | 82.00 ± 1.00 (n = 3) | 81.00, 82.00, 83.00 |" in text
    assert "Best: layer 1 at t = 0." in text
    assert "| layer 1 | 75.00 | 61.00 |" in text    # the trained denoiser against the untrained control
    for plot in ("grid", "labels"):
        png = tmp_path / "full" / "diffssl" / f"{plot}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"diffssl/{plot}.png" in text
    quick = diffssl_report.write(diffssl_results("quick"), tmp_path / "quick").read_text()
    assert "Quick check" in quick and "## Findings" not in quick
    empty = diffssl_report.write({"mode": "full"}, tmp_path / "empty").read_text()
    for part in ("grid", "heads", "labels"):
        assert f"Not measured yet (`--part {part}`" in empty


def test_diffssl_keeps_measured_classifiers_unless_their_setting_changed(tmp_path, monkeypatch):
    from argparse import Namespace


    args = Namespace(quick=False, workdir=tmp_path, results=tmp_path / "r.json", head_minutes=4, redo=False)
    bench = diffssl.DiffSSLBenchmark(args)
    bench.results.set("grid", {"layers": [0, 1, 2, 3], "timesteps": [0], "accuracy": [[60.0]] * 4, "best": "2@0"})
    trained = []

    def train(name, system, fraction, seed):
        trained.append(name)
        return {"accuracy": 60.0, "updates": 10, "minutes": args.head_minutes,
                "command": shell(["fairseq-train", "data", *bench.model_args(system), "--seed", seed])}

    monkeypatch.setattr(bench, "train_classifier", train)
    bench.heads()
    assert len(trained) == 12
    trained.clear()
    bench.heads()
    bench.scratch()
    assert trained == ["scratch-s1", "scratch-s2", "scratch-s3"]
    trained.clear()
    bench.results.set("grid", "best", "1@0")  # the grid moved: every head reads other features
    bench.heads()
    bench.scratch()
    assert len(trained) == 12
    trained.clear()
    args.head_minutes = 5                      # another budget
    bench.scratch()
    assert len(trained) == 3
    trained.clear()
    args.redo = True
    bench.scratch()
    assert len(trained) == 3


def test_diffssl_a_new_text_model_drops_what_was_read_from_the_old_one(tmp_path, monkeypatch):
    """Training the text model again drops the grid, the control and every head over its features
    (so that no head is kept by its placement alone), and keeps the scratch encoder's runs."""
    from argparse import Namespace


    args = Namespace(quick=False, workdir=tmp_path, results=tmp_path / "r.json", head_minutes=4, redo=False,
                     lm_minutes=30)
    bench = diffssl.DiffSSLBenchmark(args)
    run = {"accuracy": 60.0, "updates": 10, "minutes": 4, "command": "fairseq-train"}
    bench.results.set("grid", {"best": "2@0"})
    bench.results.set("control", {"layers": [0]})
    for head in ("linear", "fusion", "scratch"):
        bench.results.set("heads", head, "1", run)
    for system in ("fusion", "scratch"):
        bench.results.set("labels", system, "0.1", run)
    monkeypatch.setattr(diffssl, "run_logged", lambda cmd, log: {"wall_s": 60.0})
    monkeypatch.setattr(diffssl.measure, "final_updates", lambda text: 1746)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train-text.log").write_text("")
    bench.lm()

    saved = json.loads((tmp_path / "r.json").read_text())
    assert "grid" not in saved and "control" not in saved
    assert saved["heads"] == {"scratch": {"1": run}} and saved["labels"] == {"scratch": {"0.1": run}}
    assert saved["lm"]["updates"] == 1746


def test_diffssl_report_alone_keeps_the_measuring_machines_line(tmp_path):
    """``--part report`` measures nothing, so it must not replace the machine line of the run
    whose figures the results hold."""
    results = tmp_path / "r.json"
    machine = {"description": "the machine that measured", "cpu": "x"}
    results.write_text(json.dumps({"mode": "full", "machine": machine}))
    diffssl.main(["--part", "report", "--results", str(results), "--workdir", str(tmp_path),
                  "--docs", str(tmp_path / "docs")])
    assert json.loads(results.read_text())["machine"] == machine
    assert "the machine that measured" in (tmp_path / "docs" / "diffssl.md").read_text()
