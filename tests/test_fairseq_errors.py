"""The one-line explanations of errors fairseq raises while it reads the checkpoints of --path,
checked in-process on fairseq's own loading functions (test_reliability.py runs the real tools)."""

import sys

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_difformer.fairseq_errors import command_line_paths, explain_unreadable_checkpoint

ADVICE = "copy it again, or give another checkpoint of the training (checkpoint_best.pt, checkpoint_last.pt, …)"


def raised_by(load, *args):
    """What ``load(*args)`` raises, whatever its type (fairseq's and torch's own)."""
    try:
        load(*args)
    except Exception as exc:
        return exc
    pytest.fail(f"{load.__name__} loaded {args}")


def explained(monkeypatch, argv, load, *args):
    monkeypatch.setattr(sys, "argv", ["fairseq-generate", "data-bin", *argv])
    exc = raised_by(load, *args)
    return explain_unreadable_checkpoint(exc, exc.__traceback__)


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": {}}, good)  # a torch checkpoint with weights, without fairseq's other keys
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    return good, truncated, tmp_path / "missing.pt"


def test_command_line_paths_are_fairseqs_split_of_path():
    assert command_line_paths(["data", "--path", "a.pt:b.pt", "--beam", "1"]) == ["a.pt", "b.pt"]
    assert command_line_paths(["data", "--path=a.pt"]) == ["a.pt"]
    assert command_line_paths(["data", "--max-tokens", "10"]) == []


def test_the_first_unreadable_file_of_path_is_named_with_its_problem(monkeypatch, files):
    good, truncated, _ = files
    size = truncated.stat().st_size
    message = explained(monkeypatch, ["--path", f"{good}:{truncated}"],
                        checkpoint_utils.load_checkpoint_to_cpu, str(truncated))
    assert message == (f"checkpoint {truncated} does not load: it is truncated ({size} bytes: a torch zip "
                       f"archive without its end); {ADVICE}")


def test_a_missing_file_of_path_is_not_found(monkeypatch, files):
    _, _, missing = files
    message = explained(monkeypatch, ["--path", str(missing)],
                        checkpoint_utils.load_model_ensemble_and_task, [str(missing)])
    assert message == f"checkpoint {missing} not found (--path)"


def test_a_readable_checkpoint_without_what_fairseq_needs(monkeypatch, files):
    good, _, _ = files
    message = explained(monkeypatch, ["--path", str(good)], checkpoint_utils.load_checkpoint_to_cpu, str(good))
    assert message.startswith(f"checkpoint {good} does not load: its content is not what fairseq expects (KeyError: ")
    assert message.endswith(ADVICE)
    several = explained(monkeypatch, ["--path", f"{good}:{good}"], checkpoint_utils.load_checkpoint_to_cpu, str(good))
    assert several.startswith(f"one of the checkpoints {good}:{good} (--path) does not load: its content")


def test_errors_outside_fairseqs_loading_or_without_path_are_left_alone(monkeypatch, files):
    good, truncated, _ = files
    assert explained(monkeypatch, ["--path", str(truncated)], torch.load, str(truncated)) is None
    assert explained(monkeypatch, [], checkpoint_utils.load_checkpoint_to_cpu, str(truncated)) is None
