"""The benchmark's from_ar part: learning curves from fairseq's logs, ratios, targets, report."""

import json

from benchmarks.parts import from_ar, from_ar_plateau
from benchmarks.report import plateau, plots, sections, tables, targets


def valid_line(updates, loss, bleu):
    stats = {"epoch": 1, "valid_loss": str(loss), "valid_bleu": str(bleu), "valid_num_updates": str(updates)}
    return f"2026-12-03 10:00:00 | INFO | valid | {json.dumps(stats)}"


def test_learning_curve_reads_each_validation_once_in_update_order():
    log = "\n".join([
        valid_line(300, 9.5, 1.2),
        "2026-12-03 10:00:01 | INFO | train_inner | " + json.dumps({"num_updates": "350", "loss": "8"}),
        valid_line(600, 8.25, 4.5),
        valid_line(300, 9.5, 1.2),  # a resumed run validates at 300 again
    ])
    assert from_ar.learning_curve(log) == [{"updates": 300, "loss": 9.5, "bleu": 1.2},
                                           {"updates": 600, "loss": 8.25, "bleu": 4.5}]


def record(bleu, b100, b1):
    return {"bleu": bleu, "tok_bleu": bleu, "length_ratio": 1.0, "sentences_per_s": b100,
            "sentences_per_s_batch100": b100, "sentences_per_s_batch1": b1, "updates": 1800,
            "command": "fairseq-generate", "command_batch100": "fairseq-generate", "command_batch1": "x"}


def synthetic(ar_init_default=(34.0, 150.0), ar_init_rerank=36.0):
    records = {"ar_greedy": record(35.0, 80.0, 20.0), "ar_beam5": record(36.5, 60.0, 10.0)}
    for init, data in from_ar.ARMS:
        default = ar_init_default if init == "ar_init" and data == "kd" else (20.0, 150.0)
        records[f"{init}_{data}_default"] = record(default[0], default[1], 40.0)
        records[f"{init}_{data}_3x2_rerank"] = record(ar_init_rerank if init == "ar_init" else 22.0, 30.0, 8.0)
    curve = [{"updates": 300, "loss": 9.0, "bleu": 2.0}, {"updates": 600, "loss": 8.0, "bleu": 6.0}]
    return {"mode": "full", "from_ar": {
        "budget": {"updates": 1800}, "records": records, "ar": {"updates": 1800, "curve": curve},
        "distillation": {"minutes": 4.2},
        "training": {f"{i}_{d}": {"updates": 1800, "curve": curve} for i, d in from_ar.ARMS}}}


def test_ratios_are_bleu_differences_and_speed_ratios_to_each_ar_baseline():
    ratios = from_ar.ratios(synthetic()["from_ar"]["records"])
    assert set(ratios) == {f"{i}_{d}_{dec}" for i, d in from_ar.ARMS for dec in from_ar.DECODINGS}
    assert ratios["ar_init_kd_default"]["ar_greedy"] == {"bleu_difference": -1.0, "speed_ratio_batch100": 1.88,
                                                          "speed_ratio_batch1": 2.0}
    assert ratios["scratch_refs_3x2_rerank"]["ar_beam5"]["bleu_difference"] == -14.5


def test_targets_need_both_bleu_and_speed_for_the_greedy_goal():
    met_greedy, met_beam = targets.from_ar_targets(synthetic())
    assert met_greedy["met"] is True and "ar_init_kd: 34.00 vs 35.00 (-1.00) at 1.88×" == met_greedy["shown"]
    assert met_beam["met"] is True  # 36.0 ≥ 36.5 − 1
    slow, low = targets.from_ar_targets(synthetic(ar_init_default=(34.0, 100.0), ar_init_rerank=35.0))
    assert slow["met"] is False  # 1.25× AR greedy's speed: within 2 BLEU is not enough
    assert low["met"] is False
    assert all(t["met"] is None for t in targets.from_ar_targets({}))


def test_report_has_a_row_per_arm_and_decoding_and_the_curves_plot(tmp_path):
    results = synthetic()
    made = plots.make_plots(results, tmp_path / "benchmarks", "benchmarks")
    assert (tmp_path / "benchmarks" / "from_ar_curves.png").stat().st_size > 0
    text = sections.from_ar(results, made)
    for label in (tables.ARM_LABELS[f"{i}_{d}"] for i, d in from_ar.ARMS):
        for decoding in tables.DECODING_LABELS.values():
            assert f"Difformer, {label}, {decoding} |" in text
    assert "| AR Transformer, greedy | 1,800 | 35.00 |" in text
    assert "1,800 updates" in text and "4.20 min" in text
    assert "benchmarks/from_ar_curves.png" in text
    assert "latent_full" not in text and "spent two ways" not in text  # neither measured here
    assert "Not measured yet (`--part from_ar`)" in sections.from_ar({}, {})


def test_validation_args_bound_the_ar_models_length_and_keep_one_interval_checkpoint():
    args = [str(a) for a in from_ar.validation_args("ar", 300)]
    assert json.loads(args[args.index("--eval-bleu-args") + 1]) == {"beam": 1, "max_len_a": 1.2, "max_len_b": 10}
    assert args[args.index("--validate-interval-updates") + 1] == "300"
    assert args[args.index("--keep-interval-updates") + 1] == "1"
    difformer = [str(a) for a in from_ar.validation_args("difformer", 300)]
    assert json.loads(difformer[difformer.index("--eval-bleu-args") + 1]) == {}


def test_technique_arms_are_rows_and_count_for_the_targets():
    results = synthetic()
    part = results["from_ar"]
    part["training"]["ar_init_kd_latent_full"] = {"updates": 1800, "curve": part["ar"]["curve"]}
    part["records"]["ar_init_kd_latent_full_default"] = record(34.5, 140.0, 40.0)
    part["records"]["ar_init_kd_latent_full_3x2_rerank"] = record(36.2, 30.0, 8.0)
    text = sections.from_ar(results, {})
    assert "| Difformer, AR-initialised, distilled, latent_full, default 1×1 | 1,800 | 34.50 |" in text
    assert "`latent_full`: latent as wide as the model" in text and "`--latent-dim 256`" in text
    greedy, beam = targets.from_ar_targets(results)
    assert greedy["shown"].startswith("ar_init_kd_latent_full: 34.50") and greedy["met"] is True
    assert beam["shown"].startswith("ar_init_kd_latent_full: 36.20")


def test_equal_budget_section_says_which_route_wins():
    results = synthetic()
    results["from_ar"]["equal_budget"] = {
        "setup": {"total_minutes": 20, "ar_minutes": 8, "ar_updates": 500, "distill_minutes": 5.5,
                  "difformer_minutes": 6.5, "ar_init_kd_updates": 520, "scratch_refs_updates": 1700},
        "records": {"ar_greedy": record(20.0, 150.0, 20.0), "ar_init_kd_default": record(17.25, 300.0, 40.0),
                    "ar_init_kd_3x2_rerank": record(19.0, 60.0, 10.0), "scratch_refs_default": record(15.0, 280.0, 40.0)}}
    text = sections.from_ar(results, {})
    assert "### One budget of 20 minutes, spent two ways" in text
    assert "| Difformer from scratch, references (20 min, 1,700 updates), default 1×1 | 15.00 |" in text
    assert "the AR route wins by 2.25 BLEU" in text
    results["from_ar"]["equal_budget"]["records"]["scratch_refs_default"]["bleu"] = 18.0
    assert "the AR route loses by 0.75 BLEU" in sections.from_ar(results, {})
    assert sections.equal_budget({}) == ""


def plateau_results(default_bleu=34.0, best_pool_bleu=36.6):
    """A from_ar_plateau section: AR greedy 35.0, beam 5 36.5, the default and each pool."""
    records = {"ar_greedy": {**record(35.0, 80.0, 20.0), "updates": 3500},
               "ar_beam5": {**record(36.5, 60.0, 10.0), "updates": 3500},
               "ar_init_kd_default": {**record(default_bleu, 150.0, 40.0), "updates": 30000}}
    for i, (lengths, noises) in enumerate(from_ar_plateau.POOLS):
        records[f"ar_init_kd_{lengths}x{noises}_rerank"] = record(best_pool_bleu - i * 0.5, 30.0, None)
    ar_curve = [{"updates": 500, "loss": 5.0, "bleu": 20.0}, {"updates": 1000, "loss": 4.0, "bleu": 30.0}]
    student_curve = [{"updates": 500, "loss": 9.0, "bleu": 22.0}, {"updates": 1000, "loss": 8.0, "bleu": 28.5}]
    return {"from_ar_plateau": {
        "setup": {"patience": 5, "interval": 500, "max_update": 30000}, "records": records,
        "validation": {"ar_init_kd_offset0": {**record(30.0, 150.0, None), "updates": 30000}},
        "training": {"ar": {"updates": 3500, "curve": ar_curve, "best": ar_curve[1], "stopped": "plateau"},
                     "ar_init_kd": {"updates": 30000, "curve": student_curve, "best": student_curve[1],
                                    "stopped": "cap"}}}}


def test_plateau_trains_to_early_stopping_on_validation_bleu_and_decodes_every_pool(tmp_path):
    """The part's trainings stop by fairseq's --patience on the validation BLEU (checkpoint_best.pt
    is decoded); the report has a row per pool, the validation table, the targets and the plot."""
    args = type("Args", (), {"plateau_max_update": 30000, "plateau_patience": 5, "plateau_interval": 500})()
    part = from_ar_plateau.FromARPlateau.__new__(from_ar_plateau.FromARPlateau)
    part.args = args
    budget, described = part.budget_args()
    budget = [str(a) for a in budget]
    assert budget[budget.index("--patience") + 1] == "5" and budget[budget.index("--max-update") + 1] == "30000"
    assert budget[budget.index("--best-checkpoint-metric") + 1] == "bleu" and "--maximize-best-checkpoint-metric" in budget
    assert int(budget[budget.index("--validate-interval") + 1]) >= 10 ** 6  # no validation at epoch ends
    assert part.curve_interval() == 500 and described == {"updates": 30000}
    assert [from_ar_plateau.pool_setting(l, n).args[:4] for l, n in [(7, 3)]] == [
        ("--length-beam-size", "7", "--noise-beam-size", "3")]

    results = plateau_results()
    made = plots.make_plots(results, tmp_path / "benchmarks", "benchmarks")
    assert (tmp_path / "benchmarks" / "from_ar_plateau_curves.png").stat().st_size > 0
    text = plateau.section(results, made)
    for lengths, noises in from_ar_plateau.POOLS:
        assert f"the same, {lengths}×{noises} reranked by the AR model |" in text
    assert "--decoding-length-offset 0 | 30,000 | 30.00" in text and "stopped by the cap" in text
    assert "| AR Transformer, greedy | 3,500 | 35.00 |" in text and "benchmarks/from_ar_plateau_curves.png" in text
    default, pool = plateau.targets(results)
    assert default["met"] is True and default["shown"] == "34.00 vs 35.00 (-1.00)"
    assert pool["met"] is True and pool["shown"].startswith("ar_init_kd_3x1_rerank: 36.60 vs 36.50")
    default, pool = plateau.targets(plateau_results(default_bleu=33.4, best_pool_bleu=36.4))
    assert default["met"] is False and pool["met"] is False
    assert "Not measured yet" in plateau.section({}, {}) and all(t["met"] is None for t in plateau.targets({}))
