"""The benchmark report: targets as ratios to the baselines, every section, the plots."""

import pytest

from benchmarks import report, systems
from benchmarks.report import sections, targets


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
    (train, decode, quality, default, reranked, latency, distilled, above_lead, summarization_speed, summarization_beam,
     from_ar_default, from_ar_reranked, plateau_default, plateau_pool, *rest) = targets.targets(results)
    engines, fewer_calls = rest[:len(targets.ENGINE_TARGETS)], rest[len(targets.ENGINE_TARGETS):]
    assert all(t["name"].startswith("engines") and t["met"] is None for t in engines)
    assert fewer_calls and all(t["name"].startswith("fewer_calls") and t["met"] is None for t in fewer_calls)
    assert plateau_default["met"] is None and plateau_pool["met"] is None
    # the summarization part did not run
    assert all(t["name"].startswith("summarization") and t["met"] is None and t["shown"] == "–"
               for t in (above_lead, summarization_speed, summarization_beam))
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
    assert targets.targets(results)[3]["met"] is True
    results["bleu"]["difformer_default"] = results["bleu"]["difformer_20"] - 0.01
    assert targets.targets(results)[3]["met"] is False
    del results["bleu"]["difformer_default"]
    assert targets.targets(results)[3]["met"] is None
    del results["bleu"]["cmlm"]
    assert targets.targets(results)[2]["met"] is None


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


def test_the_default_settings_label_names_the_tasks_default_decoding():
    from fairseq_difformer.tasks.difformer_task import DifformerConfig

    from difformer_core.decoding import DEFAULT_STEPS

    config = DifformerConfig()
    assert config.decoding_steps is None  # the model's: DEFAULT_STEPS unless it records its own
    assert systems.DEFAULT_DECODING == (config.decoding_sampler, DEFAULT_STEPS)
    assert config.decoding_early_stopping is None  # a quarter of the steps, as the label says
    assert "--decoding-steps" not in systems.SETTINGS_BY_NAME["difformer_default"].args


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


def test_sweep_verdict_needs_the_whole_seed_band_cleared():
    assert sections.sweep_verdict([9.1, 9.5], [8.0, 9.0]) == "better"
    assert sections.sweep_verdict([7.0, 7.9], [8.0, 9.0]) == "worse"
    assert sections.sweep_verdict([8.5, 9.5], [8.0, 9.0]) == "within the band"
    assert sections.sweep_verdict([9.0, 9.5], [8.0, 9.0]) == "within the band"  # a tie is not a win


def engines_results(serving_bleu=30.05):
    record = dict(length_ratio=1.0, configuration="c", runs={})
    return {"engines": {"machine": {"description": "2 CPU cores (test)"}, "records": {
        "ct2_int8_greedy": {**record, "bleu": 35.4, "sentences_per_s": 1000.0, "sentences_per_s_batch1": 200.0},
        "ct2_int8_beam5": {**record, "bleu": 36.9, "sentences_per_s": 200.0, "sentences_per_s_batch1": 60.0},
        "difformer_default": {**record, "bleu": serving_bleu, "bleu_fairseq_generate": 30.0,
                              "sentences_per_s": 900.0, "sentences_per_s_batch1": 450.0,
                              "sentences_per_s_fairseq_generate": 300.0},
        "difformer_3x2_rerank": {**record, "bleu": 33.0, "bleu_fairseq_generate": 33.0,
                                 "sentences_per_s": 120.0, "sentences_per_s_batch1": 40.0},
    }}}


def test_engine_targets_are_ratios_to_ctranslate2_at_the_fairseq_generate_bleu():
    from benchmarks.parts.engines import ratios

    results = engines_results()
    records = results["engines"]["records"]
    assert ratios(records) == {
        "difformer_default": {"baseline": "ct2_int8_greedy", "batch100": 0.9, "batch1": 2.25},
        "difformer_3x2_rerank": {"baseline": "ct2_int8_beam5", "batch100": 0.6, "batch1": 0.67},
    }
    found = {(t["name"].split("`")[1], "batch 1 " in t["name"]): t for t in targets.engine_targets(results)}
    assert found[("difformer_default", True)]["met"] is True           # 2.25× ≥ 2, BLEU 0.05 apart
    assert found[("difformer_default", False)]["met"] is False         # 0.9× < 1
    assert found[("difformer_3x2_rerank", False)]["met"] is True       # 0.6× ≥ 0.5
    # Fast but off the fairseq-generate BLEU by more than 0.1: not met.
    off = {(t["name"].split("`")[1], "batch 1 " in t["name"]): t for t in targets.engine_targets(engines_results(29.8))}
    assert off[("difformer_default", True)]["met"] is False
    section = sections.engines(results)
    assert "Difformer default (1×1), ONNX Runtime int8" in section and "| 900.0 |" in section
    assert all(t["met"] is None and t["shown"] == "–" for t in targets.engine_targets({}))
