"""The benchmark's pipeline: log parsing, rates, the machine line, the results file, the commands
it builds for each device."""

import json

import pytest

from benchmarks import measure, systems
from benchmarks.pipeline import Results


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


def test_cuda_mode_measures_the_iwslt_size_systems_with_fp16(tmp_path):
    """--device cuda: IWSLT-size systems, --fp16, batches of 8,192 tokens, decoding at batch 100
    and at --max-tokens, fairseq run as modules (the GPU machine has no console scripts)."""
    from argparse import Namespace

    from benchmarks.pipeline import Pipeline

    def bench(device):
        return Pipeline(Namespace(device=device, quick=False, workdir=tmp_path, databin=tmp_path / "bin",
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


def test_training_words_per_s_is_none_for_a_run_too_short_to_measure():
    from benchmarks.pipeline.train import training_words_per_s

    line = ('2026-11-28 12:00:00 | INFO | train_inner | {"epoch": 1, "update": 0.1, "wps": "%s", "wpb": "800", '
            '"num_updates": "%d"}')
    assert training_words_per_s(line % (1000, 50)) is None
    two = "\n".join([line % (1000, 50), line % (1200, 100)])
    assert training_words_per_s(two) == 1200.0   # the first interval (start-up) is skipped


def test_recipe_options_are_replaced_where_they_stand_and_new_ones_added_once():
    from difformer_cli.recipes import with_options

    args = ["--lr", "1e-3", "--no-embed-norm", "--seed", "1"]
    assert with_options(args, {"--seed": "3", "--lr": "2e-3"}) == ["--lr", "2e-3", "--no-embed-norm", "--seed", "3"]
    assert with_options(args, {"--max-tokens": "1024", "--pred-length-offset": None}) == [
        *args, "--max-tokens", "1024", "--pred-length-offset"]
    assert with_options(args, {"--no-embed-norm": None}) == args  # a flag already given stays once
    assert args == ["--lr", "1e-3", "--no-embed-norm", "--seed", "1"]  # the recipe itself is untouched


def test_every_step_a_part_calls_is_a_pipeline_step(tmp_path):
    """The parts reach the pipeline only through ``bench.NAME``: each NAME they use exists on a
    Pipeline (a part's own helper called as a pipeline method fails only hours into a run)."""
    import ast
    from argparse import Namespace
    from pathlib import Path

    from benchmarks.pipeline import Pipeline

    bench = Pipeline(Namespace(device="cpu", quick=True, workdir=tmp_path, databin=tmp_path / "bin",
                               results=tmp_path / "results.json"))
    used = set()
    for path in sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "parts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and (
                    getattr(node.value, "id", None) == "bench"
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == "bench")):
                used.add((path.name, node.attr))
    assert {name for _, name in used} >= {"generate", "train_for_budget", "results"}
    # On the class (methods, properties: not evaluated here) or set by __init__.
    missing = sorted(f"{part}: bench.{name}" for part, name in used
                     if not (hasattr(Pipeline, name) or name in vars(bench)))
    assert not missing


def test_a_resumed_training_adds_to_its_log(tmp_path, monkeypatch):
    """run_training of an interrupted run (a checkpoint_last.pt there) appends to the log, so the
    validations before the interruption stay in the learning curve; a fresh one starts it anew."""
    from argparse import Namespace

    from benchmarks.pipeline import Pipeline, train as train_module

    calls = []

    def fake_run(cmd, log, append=False, **kwargs):
        calls.append(append)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a" if append else "w") as out:
            out.write(train_inner(10 * len(calls), 500, 1000) + "\n")
        return {"wall_s": 1.0, "peak_rss_mib": 1.0}

    monkeypatch.setattr(train_module, "run_logged", fake_run)
    bench = Pipeline(Namespace(device="cpu", quick=False, workdir=tmp_path, databin=tmp_path / "bin",
                               results=tmp_path / "results.json"))
    (tmp_path / "checkpoints" / "fresh").mkdir(parents=True)  # fairseq-train would make it
    bench.run_training("fresh", ["fairseq-train", "a"], {"updates": 10})
    (tmp_path / "checkpoints" / "resumed").mkdir(parents=True)
    (tmp_path / "checkpoints" / "resumed" / "checkpoint_last.pt").write_bytes(b"")
    (tmp_path / "logs" / "train-resumed.log").write_text(train_inner(5, 500, 1000) + "\n")
    summary = bench.run_training("resumed", ["fairseq-train", "b"], {"updates": 20})
    assert calls == [False, True]
    assert (tmp_path / "logs" / "train-resumed.log").read_text().count("train_inner") == 2
    assert summary["updates"] == 20
