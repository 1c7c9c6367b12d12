"""difformer-average-checkpoints: selection (last N, best N), the mean, what is kept, errors."""

from pathlib import Path

import pytest
import torch

import fairseq_difformer
from difformer_cli.average_checkpoints import main


def fake_checkpoint(path, seed, updates, val_loss=None, maximize=False, shape=(2, 3), extra_param=False):
    """A fairseq-style checkpoint: float32 and float16 parameters, an integer buffer, metadata."""
    g = torch.Generator().manual_seed(seed)
    model = {
        "encoder.weight": torch.randn(*shape, generator=g),
        "encoder.half": torch.randn(4, generator=g).half(),
        "decoder.steps": torch.tensor([updates, seed]),
    }
    if extra_param:
        model["decoder.extra"] = torch.zeros(1)
    torch.save({
        "model": model,
        "cfg": {"checkpoint": {"maximize_best_checkpoint_metric": maximize,
                               "best_checkpoint_metric": "bleu" if maximize else "loss"}},
        "extra_state": {"val_loss": val_loss, "seed": seed},
        "optimizer_history": [{"num_updates": updates, "optimizer_name": "FairseqAdam"}],
        "last_optimizer_state": {"state": {0: {"exp_avg": torch.zeros(1000)}}},
    }, path)
    return path


def mean_of(paths, key):
    stacked = torch.stack([torch.load(p)["model"][key].double() for p in paths])
    return stacked.mean(0)


def run(capsys, *args):
    main([str(a) for a in args])
    return capsys.readouterr().out


def seeds_averaged(output):
    """Which checkpoints went into ``output``, identified by their float32 parameter."""
    return torch.load(output)["model"]["encoder.weight"]


def test_average_is_the_mean_and_the_rest_comes_from_the_newest(tmp_path, capsys):
    paths = [fake_checkpoint(tmp_path / f"c{seed}.pt", seed, updates)
             for seed, updates in ((1, 300), (2, 100), (3, 200))]  # the first listed is the newest
    out = tmp_path / "avg.pt"
    printed = run(capsys, "--inputs", *paths, "--output", out)
    state = torch.load(out)
    for key in ("encoder.weight", "encoder.half"):
        assert state["model"][key].dtype == torch.load(paths[0])["model"][key].dtype
        assert torch.equal(state["model"][key], mean_of(paths, key).to(state["model"][key].dtype))
    assert state["model"]["decoder.steps"].tolist() == [300, 1]
    assert state["extra_state"]["seed"] == 1 and state["optimizer_history"][-1]["num_updates"] == 300
    assert "last_optimizer_state" not in state
    assert all(str(p) in printed for p in paths)
    assert out.stat().st_size < paths[0].stat().st_size / 2  # no optimizer state


def test_num_last_by_update_count(tmp_path, capsys):
    for seed, (epoch, updates) in enumerate(((1, 20), (1, 30), (2, 100), (2, 200)), 1):
        fake_checkpoint(tmp_path / f"checkpoint_{epoch}_{updates}.pt", seed, updates)
    fake_checkpoint(tmp_path / "checkpoint9.pt", 9, 90)  # epoch checkpoints lose to update ones
    fake_checkpoint(tmp_path / "checkpoint_last.pt", 4, 200)
    out = tmp_path / "avg.pt"
    printed = run(capsys, "--inputs", tmp_path, "--num-last", 2, "--output", out)
    chosen = [tmp_path / "checkpoint_2_100.pt", tmp_path / "checkpoint_2_200.pt"]
    assert torch.equal(seeds_averaged(out), mean_of(chosen, "encoder.weight").float())
    assert "checkpoint_2_100.pt" in printed and "checkpoint_1_30.pt" not in printed
    assert not list(tmp_path.glob("*.tmp"))


def test_num_last_by_epoch(tmp_path, capsys):
    for epoch in range(1, 11):
        fake_checkpoint(tmp_path / f"checkpoint{epoch}.pt", epoch, 10 * epoch)
    out = tmp_path / "avg.pt"
    run(capsys, "--inputs", tmp_path, "--num-last", 3, "--output", out)
    chosen = [tmp_path / f"checkpoint{epoch}.pt" for epoch in (8, 9, 10)]
    assert torch.equal(seeds_averaged(out), mean_of(chosen, "encoder.weight").float())
    assert torch.load(out)["model"]["decoder.steps"].tolist() == [100, 10]


@pytest.mark.parametrize("maximize", [False, True])
def test_num_best_in_both_directions_skipping_copies(tmp_path, capsys, maximize):
    values = {1: 3.0, 2: 1.0, 3: 2.0, 4: 4.0}  # seed: validation value
    for seed, value in values.items():
        fake_checkpoint(tmp_path / f"checkpoint{seed}.pt", seed, 10 * seed, value, maximize)
    best = max(values, key=values.get) if maximize else min(values, key=values.get)
    # copies written by fairseq: checkpoint_best.pt / checkpoint_last.pt share an update count
    fake_checkpoint(tmp_path / "checkpoint_best.pt", best, 10 * best, values[best], maximize)
    fake_checkpoint(tmp_path / "checkpoint_last.pt", 4, 40, values[4], maximize)
    fake_checkpoint(tmp_path / "checkpoint.best_metric_9.0.pt", 5, 50, 9.0 if maximize else -9.0, maximize)
    out = tmp_path / "avg.pt"
    printed = run(capsys, "--inputs", tmp_path, "--num-best", 2, "--output", out)
    chosen = ["checkpoint.best_metric_9.0.pt", f"checkpoint{best}.pt"]
    assert torch.equal(seeds_averaged(out), mean_of([tmp_path / c for c in chosen], "encoder.weight").float())
    assert "checkpoint_best.pt" not in printed and all(c in printed for c in chosen)
    assert ("bleu" if maximize else "loss") in printed
    assert torch.load(out)["model"]["decoder.steps"].tolist() == [50, 5]  # the newer of the two


def test_output_is_written_atomically(tmp_path, capsys, monkeypatch):
    paths = [fake_checkpoint(tmp_path / f"c{s}.pt", s, s) for s in (1, 2)]
    out = tmp_path / "avg.pt"
    out.write_bytes(b"previous average")

    def failing_save(obj, f):
        f.write(b"half a checkp")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("torch.save", failing_save)
    with pytest.raises(SystemExit) as exit_info:
        main(["--inputs", *map(str, paths), "--output", str(out)])
    assert exit_info.value.code == 2 and "No space left" in capsys.readouterr().err
    assert out.read_bytes() == b"previous average"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.pt", "c1.pt", "c2.pt"]


def error_cases(tmp):
    """(arguments, texts the error message must contain) for each kind of bad input."""
    empty = tmp / "empty"
    empty.mkdir()
    few = tmp / "few"
    few.mkdir()
    for epoch in (1, 2):
        fake_checkpoint(few / f"checkpoint{epoch}.pt", epoch, epoch)
    a = fake_checkpoint(tmp / "a.pt", 1, 1)
    renamed = fake_checkpoint(tmp / "renamed.pt", 2, 2, extra_param=True)
    reshaped = fake_checkpoint(tmp / "reshaped.pt", 3, 3, shape=(3, 2))
    out = str(tmp / "avg.pt")
    return {
        "no checkpoints": (["--inputs", str(empty), "--num-last", "2", "--output", out], [str(empty)]),
        "too few": (["--inputs", str(few), "--num-last", "5", "--output", out], ["only 2", "--num-last 2"]),
        "no metric": (["--inputs", str(few), "--num-best", "1", "--output", out], ["--disable-validation"]),
        "names": (["--inputs", str(a), str(renamed), "--output", out], ["decoder.extra", "a.pt", "renamed.pt"]),
        "shapes": (["--inputs", str(a), str(reshaped), "--output", out],
                   ["encoder.weight", "[2, 3]", "[3, 2]", "a.pt", "reshaped.pt"]),
        "missing file": (["--inputs", str(a), str(tmp / "gone.pt"), "--output", out], ["gone.pt"]),
    }


@pytest.mark.parametrize("case", ["no checkpoints", "too few", "no metric", "names", "shapes", "missing file"])
def test_errors_exit_2_with_a_clear_message(tmp_path, capsys, case):
    args, expected = error_cases(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "difformer-average-checkpoints: error:" in err and "Traceback" not in err
    for text in expected:
        assert text in err
    assert not (tmp_path / "avg.pt").exists()


def test_real_fairseq_checkpoints_average_and_load(tmp_path, capsys):
    """Two freshly initialised (untrained) Difformer checkpoints saved by fairseq's Trainer; the
    average loads the way fairseq-generate --path loads a model."""
    from fairseq import checkpoint_utils, options, tasks
    from fairseq.data import Dictionary
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    words = Dictionary()
    for i in range(20):
        words.add_symbol(f"w{i}")
    for lang in ("de", "en"):
        words.save(str(tmp_path / f"dict.{lang}.txt"))
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(tmp_path), "--user-dir", str(Path(fairseq_difformer.__file__).parent), "--task", "difformer",
        "--source-lang", "de", "--target-lang", "en", "--criterion", "difformer",
        "--arch", "difformer_small", "--model-dim", "16", "--latent-dim", "8",
        "--encoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2", "--encoder-layers", "1",
        "--decoder-layers", "1", "--share-all-embeddings", "--cpu", "--optimizer", "adam", "--lr", "1e-3",
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    for seed in (1, 2):
        torch.manual_seed(seed)
        trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
        trainer.consolidate_optimizer()
        trainer.save_checkpoint(str(tmp_path / f"checkpoint{seed}.pt"), {"val_loss": float(seed)})
    out = tmp_path / "averaged.pt"
    run(capsys, "--inputs", tmp_path, "--num-best", 2, "--output", out)
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(out)])
    key = "decoder.layers.0.fc1.weight"
    expected = mean_of([tmp_path / "checkpoint1.pt", tmp_path / "checkpoint2.pt"], key).float()
    assert torch.equal(models[0].state_dict()[key], expected)
