"""difformer-distill end to end on a tiny data-bin (teacher trained a few updates in the test)."""

from conftest import run_cli

TINY_TEACHER = (
    "--arch transformer --encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32 "
    "--encoder-ffn-embed-dim 64 --encoder-attention-heads 2 --decoder-attention-heads 2 "
    "--share-all-embeddings --optimizer adam --lr 1e-3 --criterion label_smoothed_cross_entropy "
    "--max-tokens 1024 --num-workers 0 --seed 1"
)


def sentences(databin, split, lang):
    """The token ids of every sentence of a binarised split, in order."""
    from fairseq.data import data_utils

    dataset = data_utils.load_indexed_dataset(str(databin / f"{split}.de-en.{lang}"), None)
    return [dataset[i].tolist() for i in range(len(dataset))]


def test_distill_trains_a_teacher_and_builds_a_databin_with_the_same_dictionary(databin, tmp_path):
    dest = tmp_path / "kd"
    proc = run_cli("difformer-distill", databin, "--destdir", dest, "--teacher-args", TINY_TEACHER,
                   "--teacher-max-update", "2", "--beam", "2", "--cpu")
    assert "distilled data-bin" in proc.stdout
    kd = dest / "bin"
    assert (kd / "dict.en.txt").read_bytes() == (databin / "dict.en.txt").read_bytes()
    # Every training source, in its place, paired with the teacher's translation instead of its
    # reference (a teacher of 2 updates translates none of them right); valid is the original.
    assert sentences(kd, "train", "de") == sentences(databin, "train", "de")
    distilled, references = sentences(kd, "train", "en"), sentences(databin, "train", "en")
    assert len(distilled) == len(references)
    assert sum(d != r for d, r in zip(distilled, references)) > 0.9 * len(references)
    assert sentences(kd, "valid", "en") == sentences(databin, "valid", "en")
    assert (dest / "teacher" / "checkpoint_best.pt").exists()
    assert not (dest / ".tmp").exists()

    again = run_cli("difformer-distill", databin, "--destdir", dest, "--teacher-args", TINY_TEACHER, "--cpu",
                    "--beam", "2")
    assert "already distilled" in again.stdout

    other = run_cli("difformer-distill", databin, "--destdir", dest, "--beam", "3", "--cpu", check=False)
    assert other.returncode == 2 and "holds a different distillation" in other.stderr


def test_distill_reports_bad_input(databin, tmp_path):
    missing = run_cli("difformer-distill", databin, "--destdir", tmp_path / "a", "--teacher", tmp_path / "nope.pt",
                      check=False)
    assert missing.returncode == 2 and "nope.pt does not exist" in missing.stderr
    not_a_bin = run_cli("difformer-distill", tmp_path, "--destdir", tmp_path / "b", check=False)
    assert not_a_bin.returncode == 2 and "not a fairseq data-bin" in not_a_bin.stderr
    assert "Traceback" not in missing.stderr + not_a_bin.stderr
