"""The benchmark's experiment parts, run with the training and decoding steps replaced by fakes:
the commands each part issues, what it records, what the report makes of it."""

import json
from pathlib import Path

import pytest

from benchmarks import report, systems
from benchmarks.parts import distill, samplers, summarization, sweep
from benchmarks.pipeline import shell
from benchmarks.report import targets


def test_samplers_part_decodes_every_sampler_steps_and_candidates_against_ar_beam5(tmp_path, monkeypatch):
    """The samplers part: the AR beam 5 baseline first, then every sampler × steps × early stopping
    × L×N with its flags; the report shows BLEU and the speed ratio to that baseline, and the plot."""
    from argparse import Namespace

    from benchmarks.pipeline import Pipeline

    bench = Pipeline(Namespace(device="cpu", quick=True, workdir=tmp_path, databin=tmp_path / "bin",
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
    samplers.run(bench)

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


def test_summarization_part_trains_both_systems_with_the_summarization_recipe_and_scores_rouge(tmp_path,
                                                                                             monkeypatch):
    """The summarization part: the AR Transformer and Difformer trained with the summarization
    recipe (short sources, larger batches) on the AESLC data-bin, each decoding cut the sources the
    same way, Difformer's 3×2 reranked by this AR model; ROUGE and the target against AR in the report."""
    from argparse import Namespace

    from benchmarks.pipeline import Pipeline

    bench = Pipeline(Namespace(device="cpu", quick=True, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json", summarization_minutes=0.5,
                                aeslc=tmp_path / "aeslc"))
    aeslc_bin = tmp_path / "aeslc" / "bin"
    monkeypatch.setattr(Pipeline, "aeslc_databin", aeslc_bin)
    monkeypatch.setattr("benchmarks.parts.summarization.count_sentences", lambda databin: 12)
    leads = []
    monkeypatch.setattr("benchmarks.parts.summarization.lead_baseline", lambda out, train: leads.append((out.stem, train)) or
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
    summarization.run(bench)

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
    target = targets.summarization_target(results)
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
    target = targets.summarization_target(results)
    assert target["met"] is False and "below LEAD-4 (20.00): no meaningful comparison" in target["shown"]


def test_lead_baseline_takes_the_first_k_words_k_the_mean_training_summary_length(tmp_path):
    from benchmarks.parts.summarization import lead_baseline

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

    from benchmarks.pipeline import Pipeline

    bench = Pipeline(Namespace(device="cpu", quick=False, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json", sweep_minutes=8.0,
                                sweep_variants=variants, sweep_seeds=seeds))
    trained, decoded = {}, []

    def fake_train(name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        cmd = bench.budget_command(name, system, minutes, options=options)
        trained[name] = [str(a) for a in cmd]
        return {"minutes": minutes, "updates": 500 + len(trained), "command": shell(cmd), "words_per_s": 2000.0,
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
    sweep.run(bench)

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
    sweep.run(bench)
    assert sorted(trained) == ["sweep-reference-seed1", "sweep-reference-seed2"] and len(decoded) == 4

    bench, trained, decoded = _sweep_bench(tmp_path, monkeypatch, ["reference"], valid, seeds=[2])
    sweep.run(bench)
    assert trained == {} and decoded == []

    bench, trained, decoded = _sweep_bench(tmp_path, monkeypatch, ["reference"], valid, seeds=[2])
    bench.args.sweep_minutes = 4.0
    sweep.run(bench)
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

    from benchmarks.pipeline import Pipeline

    bench = Pipeline(Namespace(device="cpu", quick=False, workdir=tmp_path, databin=tmp_path / "bin",
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
    monkeypatch.setattr(distill, "distilled_databin", lambda bench, name, teacher: (tmp_path / "distilled", 6.1))
    distill.run(bench)

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
    target = next(t for t in targets.targets(json.loads((tmp_path / "results.json").read_text()))
                  if "distilled data" in t["name"])
    assert target["met"] and target["shown"] == "teacher 8 min: 22.00 vs 9.00"  # the references arm has no teacher
    assert "| 30.00 | – | none (the references) | – | 30.00 | 400 | 21.00 | 0.900 | – | 10.00 (500 updates) |" in text
