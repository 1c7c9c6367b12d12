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


#: the summarization fakes' scores and speeds of each decoding: (ROUGE-L, sentences/s)
GIGAWORD_ROUGE_L = {"ar_greedy": (20.0, 50.0), "ar_beam5": (22.0, 20.0), "difformer_default": (19.0, 150.0),
                    "difformer_3x2_rerank": (21.0, 40.0)}
#: the decodings the part chooses among, in the order it tries them (offsets, steps, pools)
CHOICES = ([f"offset{k}_steps5" for k in range(5)] + ["offset3_steps10", "offset3_steps20"]
           + [f"offset3_steps5_{pool}_rerank" for pool in ("3x1", "3x2", "5x2", "7x3")])


def _fake_rouge_l(name):
    """(ROUGE-L, sentences/s) of the fakes: :data:`GIGAWORD_ROUGE_L`, and for the choice's
    decodings a ROUGE-L that peaks at offset 3, 10 steps (5 steps 0.5 below it) and the 5×2 pool
    (the others 1 below it)."""
    if name in GIGAWORD_ROUGE_L:
        return GIGAWORD_ROUGE_L[name]
    parts = name.split("_")
    offset, steps = int(parts[0][len("offset"):]), int(parts[1][len("steps"):])
    return 10.0 - abs(offset - 3) - abs(steps - 10) / 10 + (len(parts) > 2 and parts[2] == "5x2"), 100.0


def _gigaword_bench(tmp_path, monkeypatch, updates=None):
    """A Pipeline whose summarization part trains, distils, decodes and scores nothing: the calls
    are recorded, each training has ``updates[system]`` updates (AR 700, Difformer 900 by default)
    and each decoding scores :data:`GIGAWORD_ROUGE_L`; LEAD-8 is a fixed result."""
    from argparse import Namespace

    from benchmarks.pipeline import Pipeline

    updates = updates or {"ar": 700, "difformer": 900}
    bench = Pipeline(Namespace(device="cpu", quick=True, workdir=tmp_path, databin=tmp_path / "bin",
                                results=tmp_path / "results.json", summarization_minutes=0.5,
                                gigaword=tmp_path / "data"))
    monkeypatch.setattr(Pipeline, "gigaword_databin", tmp_path / "gigaword" / "bin")
    monkeypatch.setattr(summarization, "count_sentences", lambda databin: 12)
    calls = {"trained": {}, "distilled": [], "decoded": {}, "lead": []}

    def fake_train(name, system, minutes, extra=(), databin=None, summarization=False, options=None):
        cmd = bench.budget_command(name, system, minutes, extra, databin, summarization, options)
        calls["trained"][name] = [str(a) for a in cmd]
        return {"minutes": minutes, "updates": updates[system], "command": shell(cmd),
                "checkpoint": str(tmp_path / name / "checkpoint_last.pt")}

    def fake_distill(bench, name, teacher, databin=None):
        calls["distilled"].append((name, teacher, databin))
        return tmp_path / "distilled" / "bin", 1.5

    def fake_generate(setting, batch_size, checkpoint=None, tag=None, precision=None, reranker=None,
                      databin=None, extra=(), subset="test"):
        cmd = bench.generate_command(setting, batch_size, checkpoint, precision, reranker, databin, extra, subset)
        calls["decoded"][setting.name] = [str(a) for a in cmd]
        return tmp_path / f"{setting.name}.txt", {"sentences_per_s": _fake_rouge_l(setting.name)[1],
                                                  "command": shell(cmd)}

    def fake_lead(train_target, sources, references):
        calls["lead"].append((train_target, sources, references))
        return {"k": 8, "rouge1": 25.0, "rouge2": 8.0, "rougeL": 18.0, "length_ratio": 0.95}

    monkeypatch.setattr(bench, "train_for_budget", fake_train)
    monkeypatch.setattr(summarization, "distilled_databin", fake_distill)
    monkeypatch.setattr(bench, "generate", fake_generate)
    monkeypatch.setattr(bench, "score", lambda out: {"rouge1": 30.0, "rouge2": 10.0,
                                                     "rougeL": _fake_rouge_l(out.stem)[0], "length_ratio": 0.9})
    monkeypatch.setattr(summarization, "lead_baseline", fake_lead)
    monkeypatch.setattr(summarization, "write_lead_databin", lambda databin, dest, src, tgt: dest)
    return bench, calls


def test_summarization_part_runs_the_ar_route_on_gigaword_and_records_each_decoding(tmp_path, monkeypatch):
    """The summarization part: the AR Transformer with the translation recipe on the Gigaword
    data-bin, its distillation of that data-bin, the Difformer initialised from it on the
    distilled data; AR greedy and beam 5 with the headline length limit, the Difformer's default
    and 3×2 reranked by the AR model, each decoding of the validation set (the test split) a record;
    the AESLC results the part left before are dropped."""
    (tmp_path / "results.json").write_text(json.dumps({"mode": "quick", "summarization": {
        "decoding": {"ar_beam5": {"rougeL": 1.0}}, "dev_sentences": 5}}))
    bench, calls = _gigaword_bench(tmp_path, monkeypatch)
    summarization.run(bench)

    gigaword_bin, ar_checkpoint = tmp_path / "gigaword" / "bin", tmp_path / "gigaword-ar" / "checkpoint_last.pt"
    ar, difformer = calls["trained"]["gigaword-ar"], calls["trained"]["gigaword-difformer"]
    assert list(calls["trained"]) == ["gigaword-ar", "gigaword-difformer"]
    assert ar[1] == str(gigaword_bin.parent / "ar-bin") and "--init-from-ar" not in ar  # with lead pairs
    assert "--truncate-source" not in ar and ar[ar.index("--max-tokens") + 1] == "4096"  # HEADLINE_AR_OPTIONS
    assert ar[ar.index("--upsample-primary") + 1] == "1"
    assert ar[ar.index("--stop-time-hours") + 1] == str(0.5 / 60)
    assert calls["distilled"] == [("gigaword-ar0.5", ar_checkpoint, gigaword_bin)]
    assert difformer[1] == str(tmp_path / "distilled" / "bin") and "--truncate-source" not in difformer
    assert difformer[difformer.index("--max-tokens") + 1] == "1024"  # the translation recipe
    assert difformer[difformer.index("--init-from-ar") + 1] == str(ar_checkpoint)

    decoded = calls["decoded"]
    assert list(decoded) == ["ar_greedy", "ar_beam5", "difformer_default", "difformer_3x2_rerank", *CHOICES]
    for name, cmd in decoded.items():
        assert cmd[1] == str(gigaword_bin) and cmd[cmd.index("--gen-subset") + 1] == "test"
        assert cmd[cmd.index("--batch-size") + 1] == "100"
    for name, beam in (("ar_greedy", "1"), ("ar_beam5", "5")):
        cmd = decoded[name]
        assert cmd[cmd.index("--task") + 1] == "translation" and cmd[cmd.index("--beam") + 1] == beam
        assert cmd[cmd.index("--max-len-a") + 1] == "1.2" and cmd[cmd.index("--max-len-b") + 1] == "10"
        assert cmd[cmd.index("--path") + 1] == str(ar_checkpoint)
    default, reranked = decoded["difformer_default"], decoded["difformer_3x2_rerank"]
    difformer_checkpoint = tmp_path / "gigaword-difformer" / "checkpoint_last.pt"
    assert default[default.index("--path") + 1] == str(difformer_checkpoint) and "--length-beam-size" not in default
    for cmd in (default, reranked):  # the headline recipe's decoding
        assert cmd[cmd.index("--decoding-length-offset") + 1] == "0"
    assert reranked[reranked.index("--path") + 1] == f"{difformer_checkpoint}:{ar_checkpoint}"
    assert reranked[reranked.index("--length-beam-size") + 1] == "3" and "--ppl-mbr" in reranked
    assert reranked[reranked.index("--noise-beam-size") + 1] == "2"
    prepared = gigaword_bin.parent / "tok"
    assert calls["lead"] == [(prepared / "train.tgt", prepared / "test.src", prepared / "test.tgt")]

    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["summarization"]) == ["gigaword"]  # the AESLC results are gone
    part = results["summarization"]["gigaword"]
    assert part["records"]["ar_greedy"] == {"rouge1": 30.0, "rouge2": 10.0, "rougeL": 20.0, "length_ratio": 0.9,
                                            "sentences_per_s": 50.0, "updates": 700,
                                            "command": shell(decoded["ar_greedy"])}
    assert part["records"]["difformer_3x2_rerank"]["updates"] == 900
    assert part["training"]["ar"] == {"minutes": 0.5, "updates": 700, "command": shell(ar)}
    assert part["training"]["difformer"]["updates"] == 900 and part["training"]["distillation_minutes"] == 1.5
    assert part["valid_sentences"] == 12 and part["lead"]["k"] == 8


def test_summarization_part_chooses_the_offset_then_the_steps_then_the_reranked_pool(tmp_path, monkeypatch):
    """After the main decodings the Difformer's decoding is chosen on the validation set one
    option at a time, each choice at the ones before it: the best offset, the fewest steps and
    the smallest pool within 0.5 ROUGE-L of the best; every decoding tried is a record."""
    bench, calls = _gigaword_bench(tmp_path, monkeypatch)
    summarization.run(bench)
    choice = json.loads((tmp_path / "results.json").read_text())["summarization"]["gigaword"]["choice"]
    assert choice["chosen"] == {"offset": 3, "steps": 5, "pool": "5x2"}
    assert sorted(choice["records"]) == sorted(CHOICES)
    assert choice["records"]["offset3_steps5_5x2_rerank"]["rougeL"] == 10.5
    ar_checkpoint = tmp_path / "gigaword-ar" / "checkpoint_last.pt"
    for name in CHOICES:
        cmd = calls["decoded"][name]
        offset, steps = name.split("_")[:2]
        assert cmd[cmd.index("--decoding-length-offset") + 1] == offset[len("offset"):]
        assert cmd[cmd.index("--decoding-steps") + 1] == steps[len("steps"):]
        assert ("--ppl-mbr" in cmd) == name.endswith("_rerank")
        assert cmd[cmd.index("--path") + 1].endswith(f":{ar_checkpoint}") == name.endswith("_rerank")
    pool = calls["decoded"]["offset3_steps5_7x3_rerank"]
    assert pool[pool.index("--length-beam-size") + 1] == "7" and pool[pool.index("--noise-beam-size") + 1] == "3"


def test_summarization_part_measures_no_record_twice(tmp_path, monkeypatch):
    """A rerun decodes nothing whose command and checkpoint are unchanged; a Difformer trained
    again (other updates) has its two decodings measured again, the AR ones are kept."""
    bench, calls = _gigaword_bench(tmp_path, monkeypatch)
    summarization.run(bench)
    assert len(calls["decoded"]) == 4 + len(CHOICES)

    bench, calls = _gigaword_bench(tmp_path, monkeypatch)
    summarization.run(bench)
    assert calls["decoded"] == {}

    bench, calls = _gigaword_bench(tmp_path, monkeypatch, updates={"ar": 700, "difformer": 950})
    summarization.run(bench)
    assert list(calls["decoded"]) == ["difformer_default", "difformer_3x2_rerank", *CHOICES]
    records = json.loads((tmp_path / "results.json").read_text())["summarization"]["gigaword"]["records"]
    assert records["difformer_default"]["updates"] == 950 and records["ar_greedy"]["updates"] == 700


def test_summarization_report_and_targets(tmp_path, monkeypatch):
    """The report's Gigaword table: one row per decoding and LEAD-k, each against AR greedy's
    ROUGE-L; the three targets met, not met, and not measured before the part ran."""
    bench, _ = _gigaword_bench(tmp_path, monkeypatch)
    summarization.run(bench)
    results = json.loads((tmp_path / "results.json").read_text())

    text = report.render(results, {})
    assert "## Summarization (Gigaword headlines, AR route)" in text and "within this data only" in text
    assert "| AR Transformer, greedy | 30.00 | 10.00 | 20.00 | 1.00× | 0.900 | 50.00 | 700 |" in text
    assert "| AR Transformer, beam 5 | 30.00 | 10.00 | 22.00 | 1.10× | 0.900 | 20.00 | 700 |" in text
    assert ("3×2, AR reranker, --decoding-length-offset 0 | 30.00 | 10.00 | 21.00 | 1.05× | 0.900 | 40.00 | 900 |"
            in text)
    assert "| LEAD-8: the source's first 8 words (no model) | 25.00 | 8.00 | 18.00 | 0.90× | 0.950 | – | – |" in text
    assert "trained 0.5 minutes on the headlines and lead pairs" in text and "(beam 5, 1.5 minutes)" in text
    assert "# summarization: train difformer\n" in text and "# summarization: decode difformer_3x2_rerank\n" in text
    assert "Chosen: length offset 3, 5 steps, the 5x2 pool." in text
    assert ("| Difformer, length offset 3, 10 steps | 30.00 | 10.00 | 10.00 | 0.900 | 100.00 |\n"
            "| Difformer, length offset 3, 20 steps | 30.00 | 10.00 | 9.00 | 0.900 | 100.00 |\n"
            "| Difformer, length offset 4, 5 steps |") in text  # by offset, then steps; the pools last
    assert "| Difformer, length offset 3, 5 steps, 7×3, AR reranker | 30.00 | 10.00 | 9.50 |" in text
    assert "Not measured yet (`--part summarization`)" in report.render({}, {})

    above_lead, fast, close_to_beam = targets.summarization_targets(results)
    # AR greedy 20.00 vs LEAD 18.00; Difformer 19.00 (0.95×) at 3× the speed; 3×2 21.00 vs beam 5 22.00
    assert above_lead["met"] is True and above_lead["value"] == pytest.approx(2.0)
    assert above_lead["shown"] == "20.00 vs LEAD-8 18.00 (+2.00)"
    assert fast["met"] is True and fast["value"] == pytest.approx(0.95)
    assert fast["shown"] == "19.00 vs 20.00 (0.95×) at 3.00× the sentences/s"
    assert close_to_beam["met"] is False and close_to_beam["value"] == pytest.approx(-1.0)
    assert [t for t in targets.targets(results) if t["name"].startswith("summarization")] == [
        above_lead, fast, close_to_beam]

    part = results["summarization"]["gigaword"]
    part["lead"]["rougeL"] = 19.5
    part["records"]["difformer_default"]["sentences_per_s"] = 60.0
    part["records"]["difformer_3x2_rerank"]["rougeL"] = 21.5
    above_lead, fast, close_to_beam = targets.summarization_targets(results)
    assert above_lead["met"] is False and fast["met"] is False and close_to_beam["met"] is True
    part["lead"]["rougeL"] = 20.5  # AR greedy below LEAD: its ratios say nothing
    above_lead, fast, close_to_beam = targets.summarization_targets(results)
    assert above_lead["met"] is False and close_to_beam["met"] is False
    assert close_to_beam["shown"].endswith("; AR greedy is below LEAD-8: no meaningful comparison")
    assert all(t["met"] is None and t["value"] is None and t["shown"] == "–"
               for t in targets.summarization_targets({}))


def test_gigaword_databin_prepares_the_quick_subset_once_as_the_example_does(tmp_path, monkeypatch):
    """The Gigaword data-bin: difformer-prepare with the released tokens kept, src → tgt, the
    validation set as valid and test; the quick scale cuts train and valid to its line counts;
    a second use finds the data-bin and prepares nothing."""
    from argparse import Namespace

    from benchmarks.pipeline import Pipeline

    data = tmp_path / "data"
    data.mkdir()
    for name, n in (("train", 5), ("valid", 4)):
        for lang in ("src", "tgt"):
            (data / f"{name}.{lang}").write_text("".join(f"{name} {lang} {i}\n" for i in range(n)))
    bench = Pipeline(Namespace(device="cpu", quick=True, workdir=tmp_path / "work", databin=None,
                                results=tmp_path / "results.json", gigaword=data))
    monkeypatch.setattr(bench, "scale", systems.Scale(train_lines=3, eval_lines=2, bpe_merges=100,
                                                       throughput_updates=1, log_interval=1))
    prepared = []

    def fake_run_logged(cmd, log):
        prepared.append([str(a) for a in cmd])
        destdir = Path(cmd[cmd.index("--destdir") + 1])
        (destdir / "bin").mkdir(parents=True)
        (destdir / "bin" / "dict.tgt.txt").write_text("")

    monkeypatch.setattr("benchmarks.pipeline.data.run_logged", fake_run_logged)
    assert bench.gigaword_databin == tmp_path / "work" / "gigaword" / "bin"
    assert bench.gigaword_databin == tmp_path / "work" / "gigaword" / "bin"
    subset = tmp_path / "work" / "gigaword-subset"
    assert prepared == [["difformer-prepare", "--source-lang", "src", "--target-lang", "tgt", "--no-tokenize",
                         "--trainpref", str(subset / "train"), "--validpref", str(subset / "valid"),
                         "--testpref", str(subset / "valid"), "--bpe-merges", "100",
                         "--destdir", str(tmp_path / "work" / "gigaword")]]
    assert (subset / "train.tgt").read_text() == "train tgt 0\ntrain tgt 1\ntrain tgt 2\n"
    assert (subset / "valid.src").read_text() == "valid src 0\nvalid src 1\n"
    assert json.loads((tmp_path / "results.json").read_text())["commands"]["prepare gigaword"].startswith(
        "difformer-prepare --source-lang src --target-lang tgt --no-tokenize")


def test_summarization_part_needs_the_gigaword_folder(tmp_path, capsys):
    from benchmarks import cli

    with pytest.raises(SystemExit):
        cli.main(["--part", "summarization", "--gigaword", str(tmp_path), "--workdir", str(tmp_path / "work")])
    assert f"--gigaword {tmp_path}: no train.src there; give the Gigaword folder" in capsys.readouterr().err


def test_lead_baseline_takes_the_first_k_words_k_the_mean_training_headline_length(tmp_path):
    train, sources, references = tmp_path / "train.tgt", tmp_path / "test.src", tmp_path / "test.tgt"
    train.write_text("one two\none two three four\n")
    sources.write_text("budget meeting today at noon\ngas prices for may are up\n")
    references.write_text("budget meeting\nmay gas prices\n")
    lead = summarization.lead_baseline(train, sources, references)
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
