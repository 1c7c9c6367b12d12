"""The benchmark's measuring and reporting code: log parsing, rates, memory, results merging, report."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import diffssl_report, measure, report, systems  # noqa: E402
from benchmarks.run import Results, _shell  # noqa: E402


def train_inner(updates, wpb, wps):
    stats = {"epoch": 1, "update": 0.1, "loss": "9.1", "wps": str(wps), "ups": "1.2", "wpb": str(wpb),
             "num_updates": str(updates), "lr": "0.0001"}
    return f"2026-11-26 09:00:00 | INFO | train_inner | {json.dumps(stats)}"


def test_training_speed_is_total_tokens_over_total_time_after_the_first_interval():
    log = "\n".join([
        "2026-11-26 08:59:00 | INFO | fairseq_cli.train | model transformer",
        train_inner(50, 1000, 500),      # start-up interval: skipped
        train_inner(100, 1000, 2000),    # 50k tokens in 25 s
        train_inner(150, 2000, 1000),    # 100k tokens in 100 s
        '2026-11-26 09:01:00 | INFO | train | {"epoch": 1, "wps": "1.0", "num_updates": "150"}',
    ])
    records = measure.training_log_records(log)
    assert [r["num_updates"] for r in records] == [50, 100, 150]
    speed = measure.steady_words_per_second(records)
    assert speed["words_per_s"] == pytest.approx(150_000 / 125)   # not the mean of the rates (1500)
    assert speed["updates"] == 100
    with pytest.raises(ValueError, match="more than 1 logged intervals"):
        measure.steady_words_per_second(records[:1])
    # A run stopped by its time budget ends between two logged intervals.
    end = '2026-11-26 09:02:00 | INFO | train | {"epoch": 2, "train_wps": "1.0", "train_num_updates": "163"}'
    assert measure.final_updates(log + "\n" + end) == 163
    assert measure.final_updates(log) == 150


def test_generate_speed_reads_fairseq_generates_own_timing():
    text = ("H-0\t-0.5\ta dog\n"
            "2026-11-26 09:00:00 | INFO | fairseq_cli.generate | Translated 1,000 sentences "
            "(14,012 tokens) in 50.9s (19.64 sentences/s, 275.17 tokens/s)\n")
    assert measure.generate_speed(text) == {"sentences": 1000, "seconds": 50.9, "sentences_per_s": 19.64}
    with pytest.raises(ValueError, match="Translated"):
        measure.generate_speed("H-0\t-0.5\ta dog\n")


def test_cpu_description_tells_apart_machines_sold_under_one_name():
    def cpuinfo(model, flags):
        first = (f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n"
                 f"model name\t: AMD EPYC\nflags\t\t: fpu sse2 {flags}\n")
        return first + "\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: avx512f\n"

    assert measure.describe_cpu(cpuinfo(1, "avx2 fma")) == ("AMD EPYC, family 25 model 1", "AVX2")
    assert measure.describe_cpu(cpuinfo(17, "avx2 avx512f avx512_vnni avx512_bf16")) == (
        "AMD EPYC, family 25 model 17", "AVX512_BF16 AVX512_VNNI AVX-512 AVX2")
    assert measure.describe_cpu(cpuinfo(1, "")) == ("AMD EPYC, family 25 model 1", None)
    with pytest.raises(ValueError, match="model name"):
        measure.describe_cpu("processor\t: 0\n")


def test_results_merge_parts_and_never_mix_quick_with_full(tmp_path):
    path = tmp_path / "results.json"
    full = Results(path, "full")
    full.set("train_words_per_s", "ar", 1600.0)
    again = Results(path, "full")
    again.set("train_words_per_s", "cmlm", 2000.0)
    assert json.loads(path.read_text())["train_words_per_s"] == {"ar": 1600.0, "cmlm": 2000.0}
    quick = Results(path, "quick")
    quick.set("bleu", "ar", 1.0)
    assert json.loads(path.read_text()) == {"mode": "quick", "bleu": {"ar": 1.0}}


def synthetic_results():
    decoding, bleu, speed = {}, {}, {}
    for i, setting in enumerate(systems.DECODING_SETTINGS):
        bleu[setting.name] = 20.0 + i
        speed[setting.name] = 10.0 + i
        decoding[setting.name] = {
            "batch100": {"sentences_per_s": 10.0 + i, "peak_rss_mib": 500.0, "command": f"fairseq-generate {i}"},
            "batch1": {"sentences_per_s": 2.0, "peak_rss_mib": 400.0, "command": f"fairseq-generate {i} b1"},
        }
    bleu.update(ar=21.0, cmlm=23.0, difformer=31.0)
    collapse = {"spread": 1.3, "mean_distance": 10.0, "mean_norm": 8.0, "distance_over_noise_scale": 2.5,
                "norm_variation": 0.2}
    ablation_bleu = {"difformer_seed2": 10.5, "difformer_seed3": 9.0}
    return {
        "mode": "full",
        "machine": {"description": "2 CPU cores (test)"},
        "train_words_per_s": {"ar": 1600.0, "cmlm": 2000.0, "difformer": 1500.0},
        "train_peak_rss_mib": {"ar": 900.0, "cmlm": 900.0, "difformer": 950.0},
        "throughput": {s: {"total_updates": 300, "command": f"fairseq-train {s}"} for s in systems.SYSTEMS},
        "training": {s: {"minutes": 20, "updates": 2000, "command": f"fairseq-train {s}"} for s in systems.SYSTEMS},
        "decode_sentences_per_s": speed,
        "decode_sentences_per_s_batch1": {name: 2.0 + i for i, name in enumerate(speed)},
        "decoding": decoding,
        "bleu": bleu,
        "tok_bleu": dict(bleu),
        "best_setting": {"ar": "ar_beam5", "cmlm": "cmlm_lb3", "difformer": "difformer_20_3x2_rerank"},
        "ablations": {v: {"bleu": ablation_bleu.get(v, 10.0), "tok_bleu": 10.0, "collapse": 1.3,
                          "collapse_stats": collapse, "description": systems.ABLATION_DESCRIPTIONS[v], "minutes": 8, "updates": 800,
                          "command": f"fairseq-train {v}"} for v in systems.ABLATIONS},
    }


def test_targets_are_the_ratios_to_the_baselines():
    results = synthetic_results()
    (train, decode, quality, default, reranked, latency, distilled, summarization,
     from_ar_default, from_ar_reranked) = report.targets(results)
    assert summarization["met"] is None and summarization["shown"] == "–"  # the part did not run
    assert from_ar_default["met"] is None and from_ar_reranked["met"] is None
    assert distilled["met"] is None and distilled["shown"] == "–"
    assert train["value"] == pytest.approx(0.75) and train["met"] is False
    names = [s.name for s in systems.DECODING_SETTINGS]
    expected = (10.0 + names.index("difformer_20")) / (10.0 + names.index("ar_beam5"))
    assert decode["value"] == pytest.approx(expected) and decode["met"] is (expected >= 1)
    assert quality["value"] == pytest.approx(8.0) and quality["met"] is True
    # The default decoding's targets: speed ratio and BLEU against the paper's decoding, both needed.
    position = {name: i for i, name in enumerate(results["decode_sentences_per_s"])}
    assert default["value"] == pytest.approx((10.0 + position["difformer_default"]) / (10.0 + position["ar_beam5"]))
    assert latency["value"] == pytest.approx((2.0 + position["difformer_default"]) / (2.0 + position["ar_beam5"]))
    assert latency["met"] is (latency["value"] >= 4)
    assert reranked["met"] is (reranked["value"] >= 0.5)  # its BLEU is higher than the 20-step one's
    results["decode_sentences_per_s"]["difformer_default"] = 2 * results["decode_sentences_per_s"]["ar_beam5"]
    assert report.targets(results)[3]["met"] is True
    results["bleu"]["difformer_default"] = results["bleu"]["difformer_20"] - 0.01
    assert report.targets(results)[3]["met"] is False
    del results["bleu"]["difformer_default"]
    assert report.targets(results)[3]["met"] is None
    del results["bleu"]["cmlm"]
    assert report.targets(results)[2]["met"] is None


def test_report_has_every_section_and_its_plots(tmp_path):
    path = report.write(synthetic_results(), tmp_path)
    text = path.read_text()
    for heading in ("## Targets", "## 1. Training throughput", "## 2. Quality", "## 3. Decoding",
                    "## 4. Ablations", "## Commands"):
        assert heading in text
    assert "| Difformer | 1,500 | 0.94× | 0.75× | 950 |" in text
    assert "`difformer_20_3x2_rerank`" in text and "`no_self_cond`" in text
    # The seed runs of the reference give the yardstick for the ablation differences.
    assert "3 seeds lands between 9.00 and 10.50 SacreBLEU" in text and "range (1.50)" in text
    for plot in ("quality_speed", "ablations"):
        png = tmp_path / "benchmarks" / f"{plot}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and f"benchmarks/{plot}.png" in text
    # A part not run yet is named, not left out silently.
    empty = report.write({"mode": "quick"}, tmp_path / "empty").read_text()
    assert "Not measured yet (`--part ablations`)" in empty and "Quick check" in empty


def test_cuda_mode_measures_the_iwslt_size_systems_with_fp16(tmp_path):
    """--device cuda: IWSLT-size systems, --fp16, batches of 8,192 tokens, decoding at batch 100
    and at --max-tokens, fairseq run as modules (the GPU machine has no console scripts)."""
    from argparse import Namespace

    from benchmarks.run import Benchmark

    def bench(device):
        return Benchmark(Namespace(device=device, quick=False, workdir=tmp_path, databin=tmp_path / "bin",
                                   results=tmp_path / f"results-{device}.json"))

    cuda, cpu = bench("cuda"), bench("cpu")
    train = [str(a) for a in cuda.train_command("difformer", tmp_path / "ckpt")]
    assert train[1:3] == ["-m", "fairseq_cli.train"] and "--cpu" not in train
    assert train[train.index("--arch") + 1] == "difformer_iwslt_de_en" and "--fp16" in train
    assert train[len(train) - 1 - train[::-1].index("--max-tokens") + 1] == "8192"
    ar = [str(a) for a in cuda.train_command("ar", tmp_path / "ckpt")]
    assert ar[ar.index("--encoder-embed-dim") + 1] == "512" and ar[ar.index("--encoder-layers") + 1] == "6"
    setting = systems.SETTINGS_BY_NAME["difformer_20"]
    decode = [str(a) for a in cuda.generate_command(setting, 0, checkpoint=tmp_path / "c.pt")]
    assert decode[decode.index("--max-tokens") + 1] == "8192" and "--fp16" in decode and "--batch-size" not in decode
    assert cuda.scale.decode_batch_sizes == (100, 0)

    # The precision part decodes each checkpoint in float32 and with --fp16 on either device.
    for bench_, float32 in ((cuda, []), (cpu, ["--cpu"])):
        f32 = [str(a) for a in bench_.generate_command(setting, 100, tmp_path / "c.pt", precision="float32")]
        f16 = [str(a) for a in bench_.generate_command(setting, 100, tmp_path / "c.pt", precision="fp16")]
        assert "--fp16" not in f32 and "--fp16" in f16 and all(flag in f32 for flag in float32)

    cpu_train = [str(a) for a in cpu.train_command("difformer", tmp_path / "ckpt")]
    assert cpu_train[0] == "fairseq-train" and "--cpu" in cpu_train and "--fp16" not in cpu_train
    assert cpu_train[cpu_train.index("--arch") + 1] == "difformer_small"


def test_gpu_report_names_its_setup_max_tokens_batches_and_precision(tmp_path):
    results = synthetic_results()
    results["device"] = "cuda"
    for name, d in results["decoding"].items():
        d["tokens8192"] = d.pop("batch1")
    results["decode_sentences_per_s_tokens8192"] = {n: 40.0 for n in results["decoding"]}
    results["precision"] = {"difformer_20": {"float32": {"bleu": 30.0, "sentences_per_s": 50.0},
                                             "fp16": {"bleu": 29.85, "sentences_per_s": 90.0}, "difference": -0.15}}
    text = report.render(results, {})
    assert "6+6 layers, d_model 512" in text and "--fp16" in text and "3+3 layers" not in text
    assert "sent/s (--max-tokens 8192)" in text and "fairseq-generate 0 b1" in text
    assert "| `difformer_20` | 30.00 | 29.85 | -0.15 | 50.00 | 90.00 |" in text
    cpu = report.render(synthetic_results(), {})
    assert "3+3 layers" in cpu and "sent/s (batch 1)" in cpu and "Not measured yet (`--part precision`)" in cpu


def test_ablation_rescaling_factor_is_the_last_one_given():
    assert systems.rescaling_factor("difformer") == 4.0
    assert systems.rescaling_factor("rescaling_1") == 1.0 and systems.rescaling_factor("rescaling_2") == 2.0


def test_samplers_part_decodes_every_sampler_steps_and_candidates_against_ar_beam5(tmp_path, monkeypatch):
    """The samplers part: the AR beam 5 baseline first, then every sampler × steps × early stopping
    × L×N with its flags; the report shows BLEU and the speed ratio to that baseline, and the plot."""
    from argparse import Namespace

    from benchmarks.run import Benchmark

    bench = Benchmark(Namespace(device="cpu", quick=True, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json"))
    commands = []

    def fake_generate(setting, batch_size, checkpoint=None, tag=None, precision=None):
        cmd = [str(a) for a in bench.generate_command(setting, batch_size, tmp_path / "c.pt")]
        commands.append(cmd)
        steps = int(cmd[cmd.index("--decoding-steps") + 1]) if "--decoding-steps" in cmd else 0
        return tmp_path / f"{setting.name}.txt", {"sentences_per_s": 100.0 / (steps or 1) if steps else 50.0,
                                                  "command": " ".join(cmd)}

    monkeypatch.setattr(bench, "generate", fake_generate)
    monkeypatch.setattr(bench, "score", lambda out: {"sacrebleu": 10.0 + len(out.name), "tok_bleu": 1.0})
    bench.samplers()

    assert commands[0][commands[0].index("--task") + 1] == "translation" and "--beam" in commands[0]
    flags = ("--decoding-sampler", "--decoding-steps", "--decoding-early-stopping", "--length-beam-size",
             "--noise-beam-size")
    decoded = [tuple(c[c.index(flag) + 1] for flag in flags) for c in commands[1:]]
    # QUICK decodes 1 and 4 steps; a quarter of 4 steps is 1, of 1 step nothing (no second run).
    expected = [(s, str(n), str(e), str(l), str(k)) for s in systems.SAMPLERS for l, k in systems.SAMPLER_BEAMS
                for n, e in ((1, 0), (4, 0), (4, 1))]
    assert sorted(decoded) == sorted(expected) and len(decoded) == len(expected)

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["samplers_baseline"]["sentences_per_s"] == 50.0
    entry = results["samplers"]["ddim_4es1_3x2"]
    assert entry["sentences_per_s"] == 25.0 and entry["candidates"] == "3x2" and entry["sampler"] == "ddim"
    assert entry["steps"] == 4 and entry["early_stopping"] == 1
    text = report.write(results, tmp_path / "docs").read_text()
    bleu = {name: f"{10.0 + len(name + '.txt'):.2f}" for name in results["samplers"]}
    assert f"| `ddim` | 3×2 | – | {bleu['ddim_1_3x2']} (2.00×) | {bleu['ddim_4_3x2']} (0.50×) |" in text
    assert f"| `ddim` | 3×2 | ¼ | – | {bleu['ddim_4es1_3x2']} (0.50×) |" in text
    assert (tmp_path / "docs" / "benchmarks" / "samplers.png").read_bytes()[:4] == b"\x89PNG"
    assert "Not measured yet (`--part samplers`)" in report.write({}, tmp_path / "empty").read_text()


def test_the_default_settings_label_names_the_tasks_default_decoding():
    from fairseq_difformer.tasks.difformer_task import DifformerConfig

    config = DifformerConfig()
    assert systems.DEFAULT_DECODING == (config.decoding_sampler, config.decoding_steps)
    assert config.decoding_early_stopping is None  # a quarter of the steps, as the label says
    assert "--decoding-steps" not in systems.SETTINGS_BY_NAME["difformer_default"].args


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

    from benchmarks import diffssl
    from benchmarks.run import _shell

    args = Namespace(quick=False, workdir=tmp_path, results=tmp_path / "r.json", head_minutes=4, redo=False)
    bench = diffssl.DiffSSLBenchmark(args)
    bench.results.set("grid", {"layers": [0, 1, 2, 3], "timesteps": [0], "accuracy": [[60.0]] * 4, "best": "2@0"})
    trained = []

    def train(name, system, fraction, seed):
        trained.append(name)
        return {"accuracy": 60.0, "updates": 10, "minutes": args.head_minutes,
                "command": _shell(["fairseq-train", "data", *bench.model_args(system), "--seed", seed])}

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

    from benchmarks import diffssl

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


def test_summarization_part_trains_both_systems_with_the_summarization_recipe_and_scores_rouge(tmp_path,
                                                                                             monkeypatch):
    """The summarization part: the AR Transformer and Difformer trained with the summarization
    recipe (short sources, larger batches) on the AESLC data-bin, each decoding cut the sources the
    same way, Difformer's 3×2 reranked by this AR model; ROUGE and the target against AR in the report."""
    from argparse import Namespace

    from benchmarks.run import Benchmark

    bench = Benchmark(Namespace(device="cpu", quick=True, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json", summarization_minutes=0.5,
                                aeslc=tmp_path / "aeslc"))
    aeslc_bin = tmp_path / "aeslc" / "bin"
    monkeypatch.setattr(Benchmark, "aeslc_databin", aeslc_bin)
    monkeypatch.setattr("benchmarks.run.count_sentences", lambda databin: 12)
    leads = []
    monkeypatch.setattr("benchmarks.run.lead_baseline", lambda out, train: leads.append((out.stem, train)) or
                        {"k": 4, "rouge1": 9.0, "rouge2": 3.0, "rougeL": 8.0, "length_ratio": 0.8})
    trained, decoded = {}, {}

    def fake_train(name, system, minutes, extra=(), databin=None, summarization=False):
        cmd = [str(a) for a in bench.train_command(system, tmp_path / name, databin=databin,
                                                   summarization=summarization)]
        trained[system] = cmd
        return {"minutes": minutes, "updates": 7, "command": " ".join(cmd), "checkpoint": str(tmp_path / f"{name}.pt")}

    def fake_generate(setting, batch_size, checkpoint=None, tag=None, precision=None, reranker=None,
                      databin=None, extra=()):
        cmd = [str(a) for a in bench.generate_command(setting, batch_size, checkpoint, precision, reranker,
                                                      databin, extra)]
        decoded[setting.name] = cmd
        return tmp_path / f"{setting.name}.txt", {"sentences_per_s": 30.0, "command": " ".join(cmd)}

    rouge_l = {"ar_beam5": 20.0, "difformer_default": 14.0, "difformer_20_3x2": 15.0,
               "difformer_default_3x2_rerank": 17.0}
    monkeypatch.setattr(bench, "train_for_budget", fake_train)
    monkeypatch.setattr(bench, "generate", fake_generate)
    monkeypatch.setattr(bench, "score", lambda out: {"rouge1": 30.0, "rouge2": 10.0, "rougeL": rouge_l[out.stem],
                                                     "length_ratio": 0.9})
    bench.summarization()

    assert set(trained) == {"ar", "difformer"}
    for cmd in trained.values():
        assert cmd[1] == str(aeslc_bin) and cmd.count("--max-tokens") == 1
        assert cmd[cmd.index("--max-tokens") + 1] == "4096" and cmd[cmd.index("--warmup-updates") + 1] == "150"
        assert "--truncate-source" in cmd and cmd[cmd.index("--max-source-positions") + 1] == "64"
    assert set(decoded) == set(systems.SUMMARIZATION_SETTINGS)
    for name, cmd in decoded.items():
        assert cmd[1] == str(aeslc_bin) and "--truncate-source" in cmd
        assert cmd[cmd.index("--max-source-positions") + 1] == "64"
    reranked = decoded["difformer_default_3x2_rerank"]
    assert reranked[reranked.index("--path") + 1] == f"{tmp_path / 'aeslc-difformer.pt'}:{tmp_path / 'aeslc-ar.pt'}"

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["summarization"]["decoding"]["difformer_20_3x2"]["rougeL"] == 15.0
    assert results["summarization"]["training"]["ar"]["updates"] == 7
    target = report._summarization_target(results)
    assert target["value"] == pytest.approx(17.0 / 20.0) and target["met"] is True
    assert "`difformer_default_3x2_rerank` 17.00 vs 20.00" in target["shown"]
    text = report.render(results, {})
    assert "## Summarization (AESLC)" in text and "0.5 minutes" in text
    assert "| AR Transformer, beam 5 | 7 | 30.00 | 10.00 | 20.00 | 1.00× | 0.900 | 30.00 |" in text
    assert "summarization: train difformer" in text
    # LEAD-k from the AR decoding's sources, shown in the table; an AR model below it voids the target.
    assert leads == [("ar_beam5", tmp_path / "aeslc" / "train.jsonl")]
    assert "| LEAD-4: the email's first 4 words (no model) | – | 9.00 | 3.00 | 8.00 | 0.40× | 0.800 | – |" in text
    results["summarization"]["lead"]["rougeL"] = 20.0
    target = report._summarization_target(results)
    assert target["met"] is False and "below LEAD-4 (20.00): no meaningful comparison" in target["shown"]


def test_lead_baseline_takes_the_first_k_words_k_the_mean_training_summary_length(tmp_path):
    from benchmarks.run import lead_baseline

    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"body": "b", "subject": s}) for s in ("one two", "one two three four"))
                     + "\n")
    generate = tmp_path / "generate.txt"
    generate.write_text("S-1\tbudget me@@ eting today at noon\nT-1\tbudget me@@ eting\nH-1\t-1.0\tx\n"
                        "S-0\tgas prices for may are up\nT-0\tmay gas prices\nH-0\t-1.0\ty\n")
    lead = lead_baseline(generate, train)
    # k = round(mean(2, 4)) = 3: "budget meeting today" against "budget meeting" (F1 = 0.8) and
    # "gas prices for" against "may gas prices" (LCS "gas prices": F1 = 2/3).
    assert lead["k"] == 3
    assert lead["rougeL"] == pytest.approx(100 * (0.8 + 2 / 3) / 2, abs=0.01)
    assert lead["length_ratio"] == pytest.approx(6 / 5)


def _sweep_bench(tmp_path, monkeypatch, variants, valid, seeds=None):
    """A Benchmark whose sweep part trains, decodes and scores nothing: the training and decoding
    commands are recorded, and a run scores ``valid[variant][seed]`` on valid, one more on test."""
    from argparse import Namespace

    from benchmarks.run import Benchmark

    bench = Benchmark(Namespace(device="cpu", quick=False, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json", sweep_minutes=8.0,
                                sweep_variants=variants, sweep_seeds=seeds))
    trained, decoded = {}, []

    def fake_train(name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        cmd = bench.budget_command(name, system, minutes, options=options)
        trained[name] = [str(a) for a in cmd]
        return {"minutes": minutes, "updates": 500 + len(trained), "command": _shell(cmd), "words_per_s": 2000.0,
                "checkpoint": str(tmp_path / f"{name}.pt")}

    def fake_generate(setting, batch_size, checkpoint=None, tag=None, precision=None, reranker=None,
                      databin=None, extra=(), subset="test"):
        cmd = [str(a) for a in bench.generate_command(setting, batch_size, checkpoint, subset=subset)]
        decoded.append(cmd)
        return tmp_path / f"{tag}.txt", {"sentences_per_s": 1.0, "command": " ".join(cmd)}

    def fake_score(out):  # out: sweep-VARIANT-seedS-SUBSET.txt
        _, variant, seed, subset = out.stem.split("-")
        bleu = valid[variant][seed[len("seed"):]]
        return {"sacrebleu": bleu if subset == "valid" else bleu + 1.0, "length_ratio": bleu / 10,
                "exact_length": 0.125, "mean_abs_length_diff": 3.0}

    monkeypatch.setattr(bench, "train_for_budget", fake_train)
    monkeypatch.setattr(bench, "generate", fake_generate)
    monkeypatch.setattr(bench, "score", fake_score)
    return bench, trained, decoded


def test_sweep_part_trains_each_variant_from_each_seed_and_decodes_valid_and_test(tmp_path, monkeypatch):
    """The sweep part: each recipe variant's options replace the recipe's own (every option once,
    the seed included), each run decoded with the default decoding on valid and test; the report
    compares each variant's validation BLEU with its baseline's seed band."""
    valid = {"reference": {"1": 8.0, "2": 8.5, "3": 9.0}, "warmup_200": {"1": 9.5, "2": 9.1, "3": 9.8},
             "batch_2048": {"1": 6.9, "2": 7.6, "3": 7.2},
             "batch_2048_warmup_200": {"1": 7.9, "2": 7.0, "3": 7.5}}
    bench, trained, decoded = _sweep_bench(tmp_path, monkeypatch, list(valid), valid)
    bench.sweep()

    assert sorted(trained) == sorted(f"sweep-{v}-seed{s}" for v in valid for s in (1, 2, 3))
    for name, cmd in trained.items():
        for option in ("--seed", "--warmup-updates", "--max-tokens", "--lr"):
            assert cmd.count(option) == 1, (name, option)
        assert cmd[cmd.index("--seed") + 1] == name[-1]
    warm = trained["sweep-warmup_200-seed2"]
    assert warm[warm.index("--warmup-updates") + 1] == "200" and warm[warm.index("--max-tokens") + 1] == "1024"
    large = trained["sweep-batch_2048_warmup_200-seed1"]
    assert large[large.index("--max-tokens") + 1] == "2048" and large[large.index("--warmup-updates") + 1] == "200"
    assert len(decoded) == 24
    assert sorted(c[c.index("--gen-subset") + 1] for c in decoded) == ["test"] * 12 + ["valid"] * 12
    assert all("--decoding-steps" not in c and "--length-beam-size" not in c for c in decoded)  # the default
    # at the length offset the part's recorded runs were decoded with
    assert all(c[c.index("--decoding-length-offset") + 1] == "0" for c in decoded)

    results = json.loads((tmp_path / "results.json").read_text())
    run = results["sweep"]["warmup_200"]["seeds"]["3"]
    assert run["valid_bleu"] == 9.8 and run["test_bleu"] == 10.8 and run["minutes"] == 8.0
    assert run["valid_lengths"] == {"length_ratio": 0.98, "exact_length": 0.125, "mean_abs_length_diff": 3.0}
    assert run["words_per_s"] == 2000.0
    text = report.render(results, {})
    assert "## Recipe sweep" in text and "for 8 minutes" in text
    # warm-up 200: lowest 9.1 > the reference's highest 9.0; 2,048-token batches: highest 7.6 below
    # the reference's lowest; warm-up 200 on 2,048-token batches overlaps its own baseline's band.
    assert "| 2,000 | 8.00 / 8.50 / 9.00 | 8.50 | – | – | 9.50 | – | 0.850 | 12.5 % | 3.00 |" in text
    assert ("| 9.50 / 9.10 / 9.80 | 9.47 | `reference` | +1.50 / +0.60 / +0.80 (mean +0.97) | 10.47 | better | "
            "0.947 | 12.5 % | 3.00 |") in text
    assert "| 6.90 / 7.60 / 7.20 | 7.23 | `reference` | -1.10 / -0.90 / -1.80 (mean -1.27) | 8.23 | worse |" in text
    assert ("| 7.90 / 7.00 / 7.50 | 7.47 | `batch_2048` | +1.00 / -0.60 / +0.30 (mean +0.23) | 8.47 | "
            "within the band |") in text
    assert "# sweep batch_2048 seed 2\n" in text
    assert "Not measured yet (`--part sweep`)" in report.render({}, {})


def test_sweep_part_keeps_runs_measured_with_the_same_command(tmp_path, monkeypatch):
    """A run already in the results file with the same training command is neither trained nor
    decoded again; one whose command differs (here: another budget) is."""
    valid = {"reference": {"1": 8.0, "2": 8.5}}
    bench, trained, decoded = _sweep_bench(tmp_path, monkeypatch, ["reference"], valid, seeds=[1, 2])
    bench.sweep()
    assert sorted(trained) == ["sweep-reference-seed1", "sweep-reference-seed2"] and len(decoded) == 4

    bench, trained, decoded = _sweep_bench(tmp_path, monkeypatch, ["reference"], valid, seeds=[2])
    bench.sweep()
    assert trained == {} and decoded == []

    bench, trained, decoded = _sweep_bench(tmp_path, monkeypatch, ["reference"], valid, seeds=[2])
    bench.args.sweep_minutes = 4.0
    bench.sweep()
    assert list(trained) == ["sweep-reference-seed2"] and len(decoded) == 2
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sweep"]["reference"]["seeds"]["2"]["minutes"] == 4.0
    assert results["sweep"]["reference"]["seeds"]["1"]["minutes"] == 8.0


def test_distill_part_trains_each_student_on_the_teachers_outputs_for_the_minutes_left(tmp_path, monkeypatch):
    """The distill part: the AR teacher for T minutes, its translation of the training set timed,
    then Difformer and CMLM each trained on the distilled data for what is left of the budget;
    Difformer's 3×2 is reranked by the teacher, CMLM is decoded with length beam 3; the references
    arm trains both students on the references for the whole budget and reranks nothing."""
    from argparse import Namespace

    from benchmarks.run import Benchmark

    bench = Benchmark(Namespace(device="cpu", quick=False, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json", distill_budget_minutes=30.0,
                                teacher_minutes=[8.0], distill_students=["difformer", "cmlm"], teacher_only=False))
    trained, decoded = {}, {}

    def fake_train(name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        trained[name] = (system, minutes, databin)
        return {"minutes": minutes, "updates": 100 * len(trained), "command": f"train {name}",
                "checkpoint": str(tmp_path / name / "checkpoint_last.pt")}

    def fake_generate(setting, batch_size, checkpoint=None, tag=None, precision=None, reranker=None,
                      databin=None, extra=(), subset="test"):
        decoded[tag] = (setting.name, Path(checkpoint).parent.name, reranker and Path(reranker).parent.name)
        return tmp_path / f"{tag}.txt", {"sentences_per_s": 1.0, "command": f"generate {tag}"}

    bleu = {"teacher": 30.0, "difformer_default_length0": 20.0, "difformer_default_3x2_rerank_length0": 22.0,
            "cmlm_lb3": 9.0}
    monkeypatch.setattr(bench, "train_for_budget", fake_train)
    monkeypatch.setattr(bench, "generate", fake_generate)
    monkeypatch.setattr(bench, "score", lambda out: {"sacrebleu": next(v for k, v in bleu.items() if out.stem.endswith(k))
                                                     + ("references" in out.stem), "tok_bleu": 0.0, "length_ratio": 0.9})
    monkeypatch.setattr(bench, "distilled_databin", lambda name, teacher: (tmp_path / "distilled", 6.1))
    bench.distill()

    assert trained == {
        "distill-B30-teacher8-teacher": ("ar", 8.0, None),
        "distill-B30-teacher8-difformer": ("difformer", 15.9, tmp_path / "distilled"),
        "distill-B30-teacher8-cmlm": ("cmlm", 15.9, tmp_path / "distilled"),
        "distill-B30-references-difformer": ("difformer", 30.0, None),
        "distill-B30-references-cmlm": ("cmlm", 30.0, None)}
    assert decoded == {
        "distill-B30-teacher8-teacher": ("ar_beam5", "distill-B30-teacher8-teacher", None),
        "distill-B30-teacher8-difformer_default_length0": (
            "difformer_default_length0", "distill-B30-teacher8-difformer", None),
        "distill-B30-teacher8-difformer_default_3x2_rerank_length0": (
            "difformer_default_3x2_rerank_length0", "distill-B30-teacher8-difformer", "distill-B30-teacher8-teacher"),
        "distill-B30-teacher8-cmlm_lb3": ("cmlm_lb3", "distill-B30-teacher8-cmlm", None),
        "distill-B30-references-difformer_default_length0": (
            "difformer_default_length0", "distill-B30-references-difformer", None),
        "distill-B30-references-cmlm_lb3": ("cmlm_lb3", "distill-B30-references-cmlm", None)}

    results = json.loads((tmp_path / "results.json").read_text())["distillation"]
    arm = results["distill-B30-teacher8"]
    assert arm["difformer_minutes"] == 15.9 and arm["distill_minutes"] == 6.1 and arm["teacher_bleu"] == 30.0
    assert arm["cmlm_lb3"]["bleu"] == 9.0 and arm["cmlm_updates"] == 300 and arm["difformer_updates"] == 200
    assert arm["commands"] == {"difformer": "train distill-B30-teacher8-difformer",
                               "cmlm": "train distill-B30-teacher8-cmlm"}
    assert "difformer_default_3x2_rerank_length0" not in results["distill-B30-references"]
    # Decoded at the offset the part was first measured with, so that arms of different sessions compare.
    assert "--decoding-length-offset 0" in " ".join(systems.SETTINGS_BY_NAME["difformer_default_length0"].args)
    text = report.render(json.loads((tmp_path / "results.json").read_text()), {})
    assert "| 30.00 | – | 8 min, 100 updates, beam 5 30.00 | 6.10 | 15.90 | 200 | 20.00 | 0.900 | 22.00 | 9.00 (300 updates) |" in text
    target = next(t for t in report.targets(json.loads((tmp_path / "results.json").read_text()))
                  if "distilled data" in t["name"])
    assert target["met"] and target["shown"] == "teacher 8 min: 22.00 vs 9.00"  # the references arm has no teacher
    assert "| 30.00 | – | none (the references) | – | 30.00 | 400 | 21.00 | 0.900 | – | 10.00 (500 updates) |" in text


def test_distill_part_keeps_an_arm_without_a_cmlm_student_readable():
    """An arm measured before CMLM was a student (no cmlm entry) still renders, with – for CMLM."""
    arm = {"budget_minutes": 30, "teacher_minutes": 0, "difformer_minutes": 30, "difformer_updates": 2251,
           "difformer_default_length0": {"bleu": 23.6, "length_ratio": 0.857}, "commands": {"difformer": "fairseq-train bin --max-tokens 2048"}}
    text = report.render({"distillation": {"distill-B30-references": arm}}, {})
    assert "| 30 | 2048 | none (the references) | – | 30 | 2251 | 23.60 | 0.857 | – | – |" in text
    # and an arm with CMLM as its only student (--distill-students cmlm)
    cmlm_only = {"budget_minutes": 30, "teacher_minutes": 0, "difformer_minutes": 30, "cmlm_updates": 2000,
                 "cmlm_lb3": {"bleu": 6.0}, "commands": {"cmlm": "fairseq-train bin"}}
    text = report.render({"distillation": {"distill-B30-references": cmlm_only}}, {})
    assert "| 30 | – | none (the references) | – | 30 | – | – | – | – | 6.00 (2000 updates) |" in text


def test_training_words_per_s_is_none_for_a_run_too_short_to_measure():
    from benchmarks.run import training_words_per_s

    line = ('2026-11-28 12:00:00 | INFO | train_inner | {"epoch": 1, "update": 0.1, "wps": "%s", "wpb": "800", '
            '"num_updates": "%d"}')
    assert training_words_per_s(line % (1000, 50)) is None
    two = "\n".join([line % (1000, 50), line % (1200, 100)])
    assert training_words_per_s(two) == 1200.0   # the first interval (start-up) is skipped


def test_sweep_verdict_needs_the_whole_seed_band_cleared():
    assert report.sweep_verdict([9.1, 9.5], [8.0, 9.0]) == "better"
    assert report.sweep_verdict([7.0, 7.9], [8.0, 9.0]) == "worse"
    assert report.sweep_verdict([8.5, 9.5], [8.0, 9.0]) == "within the band"
    assert report.sweep_verdict([9.0, 9.5], [8.0, 9.0]) == "within the band"  # a tie is not a win


def test_recipe_options_are_replaced_where_they_stand_and_new_ones_added_once():
    from difformer_cli.recipes import with_options

    args = ["--lr", "1e-3", "--no-embed-norm", "--seed", "1"]
    assert with_options(args, {"--seed": "3", "--lr": "2e-3"}) == ["--lr", "2e-3", "--no-embed-norm", "--seed", "3"]
    assert with_options(args, {"--max-tokens": "1024", "--pred-length-offset": None}) == [
        *args, "--max-tokens", "1024", "--pred-length-offset"]
    assert with_options(args, {"--no-embed-norm": None}) == args  # a flag already given stays once
    assert args == ["--lr", "1e-3", "--no-embed-norm", "--seed", "1"]  # the recipe itself is untouched
