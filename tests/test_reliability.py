"""A training's save dir under interruption and contention: atomic checkpoint writes, the save-dir
lock, stale temporary files, an unloadable checkpoint_last.pt, and SIGKILL at random moments."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import REPO, USER_DIR, preprocess, run_cli, train_reranker, write_synthetic_translation
from fairseq_difformer import training_run
from difformer_core.checkpoints import checkpoint_problem, updates_of

MICRO_ARCH = [
    "--arch", "difformer_small", "--model-dim", "32", "--latent-dim", "8", "--encoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--encoder-layers", "1", "--decoder-layers", "1", "--share-all-embeddings",
]


@pytest.fixture(scope="module")
def micro_databin(tmp_path_factory):
    work = tmp_path_factory.mktemp("micro")
    prefixes = write_synthetic_translation(work, sizes=(("train", 200), ("valid", 20)))
    return preprocess(work, prefixes, "src", "tgt")


@pytest.fixture(scope="module")
def micro_run(micro_databin, tmp_path_factory):
    """A finished training of 4 updates (checkpoints at 2 and 4: checkpoint_1_2.pt, checkpoint_1_4.pt,
    checkpoint_best.pt, checkpoint_last.pt); tests work on copies of its save dir."""
    save_dir = tmp_path_factory.mktemp("micro_run") / "save"
    train(micro_databin, save_dir, 4)
    return save_dir


def copy_of(micro_run, tmp_path):
    shutil.copytree(micro_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.fixture(scope="module")
def reordered_databin(tmp_path_factory):
    """The same 88 types as ``micro_databin`` in another order (other counts): other token ids."""
    work = tmp_path_factory.mktemp("reordered")
    prefixes = write_synthetic_translation(work, seed=2, sizes=(("train", 200), ("valid", 20)))
    return preprocess(work, prefixes, "src", "tgt")


#: fairseq-train with its N-th checkpoint write killed half-way
FAULT_INJECTION = Path(__file__).with_name("fault_injection.py")


def train_command(databin, save_dir, max_update, *extra, kill_at_write=None):
    """fairseq-train of the micro model; with ``kill_at_write`` N, its N-th checkpoint write is
    killed half-way (tests/fault_injection.py)."""
    program = ["-m", "fairseq_cli.train"] if kill_at_write is None else [FAULT_INJECTION, str(kill_at_write)]
    return [
        sys.executable, *program, str(databin), "--user-dir", USER_DIR, "--task", "difformer",
        "--criterion", "difformer", *MICRO_ARCH, "--cpu", "--optimizer", "adam", "--lr", "1e-3",
        "--max-tokens", "256", "--no-progress-bar", "--log-interval", "1", "--seed", "1", "--num-workers", "0",
        "--max-update", str(max_update), "--save-interval-updates", "2", "--save-dir", str(save_dir), *extra,
    ]


def train(databin, save_dir, max_update, *extra, kill_at_write=None, check=True):
    """The finished training; its log (fairseq's, on stdout) and errors are both in ``stderr``."""
    proc = subprocess.run([str(c) for c in train_command(databin, save_dir, max_update, *extra,
                                                         kill_at_write=kill_at_write)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    proc.stderr = proc.stdout
    if check and proc.returncode != 0:
        raise AssertionError(f"fairseq-train failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def updates_in(path):
    return updates_of(str(path))


def weights(path):
    return torch.load(path, map_location="cpu")["model"]


def test_checkpoint_problem_names_what_is_wrong(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.arange(1000.0)}}, good)
    assert checkpoint_problem(str(good)) is None
    data = good.read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    torch.save({"args": None}, tmp_path / "weightless.pt")
    # Flip a byte inside the tensor's stored data: the archive is whole, its CRC is not.
    with zipfile.ZipFile(good) as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith("/data/0"))
    offset = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra) + 100
    flipped = bytearray(data)
    flipped[offset] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    assert checkpoint_problem(str(tmp_path / "empty.pt")) == "it is empty (0 bytes)"
    assert checkpoint_problem(str(tmp_path / "half.pt")) == (
        f"it is truncated ({len(data) // 2} bytes: a torch zip archive without its end)")
    assert checkpoint_problem(str(tmp_path / "text.pt")).startswith("it is not a torch checkpoint (")
    assert checkpoint_problem(str(tmp_path / "missing.pt")) == "no such file"
    assert checkpoint_problem(str(tmp_path / "weightless.pt")) == "it holds no model weights (not a fairseq checkpoint)"
    assert checkpoint_problem(str(tmp_path / "flipped.pt")) == f"its member {member.filename} fails its CRC check"


def test_atomic_file_keeps_the_old_content_when_the_write_fails(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with training_run.atomic_file(str(path)) as out:
            out.write(b"new, half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["checkpoint_last.pt"]
    with training_run.atomic_file(str(path)) as out:
        out.write(b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["checkpoint_last.pt"]
    fresh = tmp_path / "fresh"
    fresh.write_bytes(b"")  # open() gives a new file 0o666 less the umask; atomic_file's is the same
    assert oct(path.stat().st_mode & 0o777) == oct(fresh.stat().st_mode & 0o777)


def test_a_second_training_on_a_save_dir_fails_at_once(micro_databin, micro_run, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from fairseq_difformer import training_run; "
         "lock = training_run.lock_save_dir(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = train(micro_databin, tmp_path, 4, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"train.py: error: --save-dir {tmp_path} is in use by another training (process {holder.pid}, holding "
        f"{tmp_path / 'train.lock'}): wait for it to end, or give this run another --save-dir"
    )
    assert not any(name.endswith(".pt") for name in os.listdir(tmp_path))
    # The OS released the lock with the process: the same command now runs.
    copy_of(micro_run, tmp_path)
    proc = train(micro_databin, tmp_path, 6)
    assert updates_in(tmp_path / "checkpoint_last.pt") == 6


def test_an_unloadable_checkpoint_last_is_replaced_by_the_newest_that_loads(micro_databin, micro_run, tmp_path):
    copy_of(micro_run, tmp_path)
    last = tmp_path / "checkpoint_last.pt"
    data = last.read_bytes()
    last.write_bytes(data[:1000])
    (tmp_path / "checkpoint_best.pt").write_bytes(b"")
    (tmp_path / "checkpoint_1_4.pt.tmp").write_bytes(data[:10])  # fairseq's own temporary name
    (tmp_path / "checkpoint_last.pt.abc123.tmp").write_bytes(data[:10])
    proc = train(micro_databin, tmp_path, 6)
    assert f"removed {tmp_path / 'checkpoint_1_4.pt.tmp'}, left by an interrupted checkpoint write" in proc.stderr
    assert f"removed {tmp_path / 'checkpoint_last.pt.abc123.tmp'}" in proc.stderr
    assert f"{last} does not load (it is truncated (1000 bytes: a torch zip archive without its end))" in proc.stderr
    assert (f"kept as {last}.unloadable; resuming from {tmp_path / 'checkpoint_1_4.pt'} (update 4), the newest "
            f"checkpoint in {tmp_path} that loads") in proc.stderr
    assert "Loaded checkpoint" in proc.stderr and "(epoch 1 @ 4 updates)" in proc.stderr
    assert (tmp_path / "checkpoint_last.pt.unloadable").read_bytes() == data[:1000]
    assert updates_in(last) == 6
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_no_loadable_checkpoint_stops_with_the_command_to_start_fresh(micro_databin, micro_run, tmp_path):
    copy_of(micro_run, tmp_path)
    for name in os.listdir(tmp_path):
        if name.endswith(".pt"):
            (tmp_path / name).write_bytes(b"")
    proc = train(micro_databin, tmp_path, 6, check=False)
    last = tmp_path / "checkpoint_last.pt"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"train.py: error: {last} does not load (it is empty (0 bytes)) and no other checkpoint in {tmp_path} "
        f"does: to start this training fresh, move it away (mv {last} {last}.unloadable) and run the same command"
    )


def test_a_complete_training_run_again_changes_nothing(micro_databin, micro_run, tmp_path):
    """fairseq tests --max-update after a step: a finished training started again would train one
    more update over its checkpoints."""
    copy_of(micro_run, tmp_path)
    before = (tmp_path / "checkpoint_last.pt").read_bytes()
    proc = train(micro_databin, tmp_path, 4)
    assert f"{tmp_path / 'checkpoint_last.pt'} is at update 4, --max-update 4: the training is complete" in proc.stderr
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == before


def run_and_kill_while_training(command, delay, log):
    """Start the training, wait until it trains (its first update is logged), then SIGKILL it after
    ``delay`` seconds; whether it was still running then."""
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    while child.poll() is None and "num_updates=" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        child.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()
        return True


def test_sigkill_at_random_moments_loses_nothing(micro_databin, tmp_path):
    """Four SIGKILLs, half of them inside a checkpoint write (tests/fault_injection.py), half at a random
    moment of the training from outside; each time the same command resumes. The training ends at
    its planned update with every checkpoint loadable and the same weights as an uninterrupted
    run: fairseq reseeds every update from --seed and the update number (dropout and the diffusion
    noise come from that seed) and restores the optimizer and the place in the epoch.

    fairseq makes the batches once per process, from the seed plus the epoch it starts in, so a
    run resumed in epoch 2 or later would see other batches than one that started in epoch 1;
    fairseq's --update-epoch-batch-itr True makes each epoch's batches from that epoch's seed, and
    with it the resumed training is exactly the uninterrupted one."""
    max_update, exact = 80, ("--update-epoch-batch-itr", "True")
    reference = tmp_path / "reference"
    train(micro_databin, reference, max_update, *exact)
    save_dir = tmp_path / "interrupted"
    rng = random.Random(0)
    kills, logs = [], []
    for attempt in range(4):
        if attempt % 2 == 0:
            write = rng.randint(1, 6)
            proc = train(micro_databin, save_dir, max_update, *exact, kill_at_write=write, check=False)
            assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-3000:]
            killed, how = proc.returncode == -signal.SIGKILL, f"inside checkpoint write {write}"
            logs.append(proc.stderr)
        else:
            delay = rng.uniform(0.0, 0.4)
            command = train_command(micro_databin, save_dir, max_update, *exact)
            killed = run_and_kill_while_training(command, delay, tmp_path / "log")
            logs.append((tmp_path / "log").read_text())
            how = f"{delay:.2f} s into training"
        last = save_dir / "checkpoint_last.pt"
        at = updates_in(last) if last.exists() and checkpoint_problem(str(last)) is None else None
        kills.append((how, killed, at))
    assert sum(killed for _, killed, _ in kills) >= 3, kills
    logs.append(train(micro_databin, save_dir, max_update, *exact).stderr)
    # The writes are atomic: no start ever found checkpoint_last.pt unloadable, only temporaries.
    assert not [log for log in logs if "does not load" in log], kills
    assert any("left by an interrupted checkpoint write" in log for log in logs), kills
    print("kills (how, killed, update of checkpoint_last.pt after):", kills)
    assert updates_in(save_dir / "checkpoint_last.pt") == max_update, kills
    names = sorted(os.listdir(save_dir))
    assert not [n for n in names if n.endswith(".tmp")], names
    for name in names:
        if name.endswith(".pt"):
            assert checkpoint_problem(str(save_dir / name)) is None, name
    ours, theirs = weights(save_dir / "checkpoint_last.pt"), weights(reference / "checkpoint_last.pt")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), kills


@pytest.fixture(scope="module")
def truncated_checkpoint(difformer_checkpoint, tmp_path_factory):
    """The Difformer checkpoint cut in half, as an interrupted copy leaves it."""
    path = tmp_path_factory.mktemp("truncated") / "checkpoint_best.pt"
    data = difformer_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncation_of(path):
    return f"does not load: it is truncated ({path.stat().st_size} bytes: a torch zip archive without its end)"


@pytest.mark.parametrize("tool", ["fairseq-generate", "fairseq-generate reranker", "fairseq-interactive",
                                  "difformer-average-checkpoints", "difformer-convert-checkpoint"])
def test_a_truncated_checkpoint_is_one_line_naming_it(tool, databin, difformer_checkpoint, truncated_checkpoint,
                                                      tmp_path):
    common = [databin, "--user-dir", USER_DIR, "--task", "difformer", "--cpu"]
    commands = {
        "fairseq-generate": ["fairseq-generate", *common, "--path", truncated_checkpoint, "--gen-subset", "valid"],
        "fairseq-generate reranker": ["fairseq-generate", *common, "--path",
                                      f"{difformer_checkpoint}:{truncated_checkpoint}", "--gen-subset", "valid"],
        "fairseq-interactive": ["fairseq-interactive", *common, "--path", truncated_checkpoint],
        "difformer-average-checkpoints": ["difformer-average-checkpoints", "--inputs", difformer_checkpoint,
                                          truncated_checkpoint, "--output", tmp_path / "avg.pt"],
        "difformer-convert-checkpoint": ["difformer-convert-checkpoint", truncated_checkpoint, tmp_path / "out.pt"],
    }
    proc = run_cli(*commands[tool], check=False, input="ein hund .\n")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{tool.split()[0]}: error: ") and "\n" not in last
    assert f"checkpoint {truncated_checkpoint} {truncation_of(truncated_checkpoint)}" in last, last


def test_from_pretrained_names_a_truncated_checkpoint_or_reranker(databin, difformer_checkpoint, truncated_checkpoint):
    from fairseq_difformer import DifformerModel
    from difformer_core.errors import DifformerError

    with pytest.raises(DifformerError) as error:
        DifformerModel.from_pretrained(truncated_checkpoint.parent, checkpoint_file=truncated_checkpoint.name,
                                       data_name_or_path=str(databin), bpe=None)
    assert str(error.value) == f"checkpoint {truncated_checkpoint} {truncation_of(truncated_checkpoint)}"
    with pytest.raises(DifformerError) as error:
        DifformerModel.from_pretrained(difformer_checkpoint.parent, checkpoint_file=difformer_checkpoint.name,
                                       data_name_or_path=str(databin), bpe=None, reranker=str(truncated_checkpoint))
    assert str(error.value) == f"reranker checkpoint {truncated_checkpoint} {truncation_of(truncated_checkpoint)}"


def generate(databin, path):
    return run_cli("fairseq-generate", databin, "--user-dir", USER_DIR, "--task", "difformer", "--cpu",
                   "--path", path, "--gen-subset", "valid", check=False)


def test_a_dictionary_of_the_same_size_with_other_tokens_is_refused(micro_databin, micro_run, reordered_databin,
                                                                   tmp_path):
    """Only sizes were compared: a model decoded with another data-bin's token ids gave garbage."""
    assert (micro_databin / "dict.src.txt").read_text() != (reordered_databin / "dict.src.txt").read_text()
    copy_of(micro_run, tmp_path / "model")
    checkpoint = tmp_path / "model" / "checkpoint_last.pt"
    recorded = torch.load(checkpoint, map_location="cpu")["cfg"]["model"].dictionary_fingerprints
    assert recorded["source"]["file"] == str(micro_databin / "dict.src.txt") and recorded["source"]["types"] == 88
    mismatch = (f"the Difformer model was trained on the source dictionary {micro_databin / 'dict.src.txt'} "
                f"(fingerprint {recorded['source']['sha256'][:12]}), and {reordered_databin / 'dict.src.txt'} has "
                f"the same 88 types but other tokens")
    proc = generate(reordered_databin, checkpoint)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"fairseq-generate: error: {mismatch}")
    assert generate(micro_databin, checkpoint).returncode == 0
    # A training resumed on the other data-bin: refused before any update, naming the checkpoint.
    resumed = train(reordered_databin, tmp_path / "model", 6, check=False)
    assert resumed.returncode == 1
    assert (f"train.py: error: the checkpoint {checkpoint} was trained on the source dictionary "
            f"{micro_databin / 'dict.src.txt'}") in resumed.stderr
    assert updates_in(checkpoint) == 4
    # An AR reranker trained on the other data-bin (--task translation records no fingerprint: its
    # recorded data-bin's dictionary is compared).
    reranker = train_reranker(reordered_databin, tmp_path / "ar", "--disable-validation")
    proc = generate(micro_databin, f"{checkpoint}:{reranker}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"fairseq-generate: error: the reranker (second --path) was trained on the source dictionary "
        f"{reordered_databin / 'dict.src.txt'}")


def test_a_checkpoint_without_fingerprint_is_compared_through_its_data_bin_or_warned_about(
        micro_databin, micro_run, reordered_databin, tmp_path):
    copy_of(micro_run, tmp_path / "model")
    state = torch.load(tmp_path / "model" / "checkpoint_last.pt", map_location="cpu")
    del state["cfg"]["model"].dictionary_fingerprints  # as written before fingerprints were recorded
    old = tmp_path / "old.pt"
    torch.save(state, old)
    proc = generate(reordered_databin, old)  # its recorded data-bin is here: compared through it
    assert proc.returncode == 1 and "other tokens" in proc.stderr.strip().splitlines()[-1]
    state["cfg"]["model"].data = str(tmp_path / "gone")
    torch.save(state, old)
    proc = generate(micro_databin, old)
    assert proc.returncode == 0
    assert (f"the Difformer model records no dictionary fingerprint and its data-bin ({tmp_path / 'gone'}) is not "
            f"here: only the source dictionary's size is compared, not its tokens") in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def prepared_model(tmp_path_factory):
    """A micro model on raw, cased Multi30k prepared by difformer-prepare --lowercase (which records
    its preprocessing in bin/preprocessing.json)."""
    work = tmp_path_factory.mktemp("recorded")
    data = REPO.parent / "shared" / "data" / "multi30k"
    for lang in ("de", "en"):
        lines = (data / f"train.raw.{lang}").read_text(encoding="utf-8").splitlines()[:300]
        (work / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_cli("difformer-prepare", "--source-lang", "de", "--target-lang", "en", "--lowercase", "--bpe-merges", "200",
            "--trainpref", work / "train", "--validpref", work / "train", "--destdir", work / "data")
    train(work / "data" / "bin", work / "model", 2)
    return work / "data" / "bin", work / "model" / "checkpoint_last.pt"


MIXED_CASE, LOWERCASED = "Zwei Männer spielen Fußball im Park.", "zwei männer spielen fußball im park ."


def test_raw_mixed_case_text_is_prepared_as_the_training_data_by_default(prepared_model):
    from fairseq_difformer import DifformerModel

    databin, checkpoint = prepared_model
    hub = DifformerModel.from_pretrained(checkpoint.parent, checkpoint_file=checkpoint.name,
                                         data_name_or_path=str(databin))
    assert torch.equal(hub.encode(MIXED_CASE), hub.encode(LOWERCASED))
    assert hub.src_dict.unk() not in hub.encode(MIXED_CASE).tolist()
    outputs = []
    for sentence in (MIXED_CASE, LOWERCASED):
        torch.manual_seed(1)
        outputs.append(hub.translate(sentence))
    assert outputs[0] == outputs[1]
    said = []
    for sentence in (MIXED_CASE, LOWERCASED):  # one run each: the same seed, the same noise
        proc = run_cli("fairseq-interactive", databin, "--user-dir", USER_DIR, "--task", "difformer", "--cpu",
                       "--path", checkpoint, input=sentence + "\n")
        said.append([line.split("\t", 1)[1] for line in proc.stdout.splitlines() if line[:2] in ("S-", "D-")])
    assert said[0] == said[1] and len(said[0]) == 2, said
    assert (f"tokenizer moses_lowercase {{'moses_no_dash_splits': True, 'moses_no_escape': True}}, as "
            f"{databin / 'preprocessing.json'} records") in proc.stdout + proc.stderr
    # difformer-trajectory on raw lines: the same record.
    tables = []
    for name, sentence in (("mixed", MIXED_CASE), ("lower", LOWERCASED)):
        (checkpoint.parent / f"{name}.de").write_text(sentence + "\n", encoding="utf-8")
        proc = run_cli("difformer-trajectory", databin, "--path", checkpoint, "--input", checkpoint.parent / f"{name}.de",
                       "--decoding-steps", "3")
        tables.append(proc.stdout)
    assert tables[0] == tables[1] and "S-0\tzwei männer" in tables[0] and "<unk>" not in tables[0], tables


def test_explicit_preprocessing_wins_with_a_warning(prepared_model, caplog):
    from fairseq_difformer import DifformerModel

    databin, checkpoint = prepared_model
    hub = DifformerModel.from_pretrained(checkpoint.parent, checkpoint_file=checkpoint.name,
                                         data_name_or_path=str(databin), tokenizer="moses")
    assert hub.src_dict.unk() in hub.encode(MIXED_CASE).tolist()  # "Zwei" is not a word of the data
    assert (f"tokenizer moses is used, and {databin / 'preprocessing.json'} records moses_lowercase: the model "
            f"reads text prepared otherwise than its training data") in caplog.text


def test_bytes_that_are_not_utf8_are_reported_with_their_line(prepared_model):
    from fairseq_difformer import DifformerModel
    from difformer_core.errors import DifformerError

    databin, checkpoint = prepared_model
    latin1 = "zwei männer spielen .".encode("latin-1")
    proc = subprocess.run([
        "fairseq-interactive", str(databin), "--user-dir", USER_DIR, "--task", "difformer", "--cpu",
        "--path", str(checkpoint)], input=b"ein hund .\n" + latin1 + b"\n", capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONWARNINGS": "ignore"})
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    assert proc.returncode == 1 and err[-1] == (
        "fairseq-interactive: error: input line 2, column 7: byte 0xe4, which is not UTF-8; convert the input "
        "to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    hub = DifformerModel.from_pretrained(checkpoint.parent, checkpoint_file=checkpoint.name,
                                         data_name_or_path=str(databin))
    with pytest.raises(DifformerError, match=r"^sentence 2, column 7: byte 0xe4, which is not UTF-8"):
        hub.translate(["ein hund .", latin1.decode("utf-8", "surrogateescape")])
    with pytest.raises(DifformerError, match=r"^sentence 1, column 7: U\+FFFD, a replaced byte"):
        hub.translate(latin1.decode("utf-8", "replace"))


def test_a_max_tokens_below_a_sentence_is_one_line_or_skips_with_the_flag(micro_databin, tmp_path):
    proc = train(micro_databin, tmp_path / "a", 2, "--max-tokens", "6", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "train.py: error: --max-tokens 6 is smaller than 8 valid sentences (the longest has 9 tokens, sentence ")
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "): give --max-tokens 9 or more, or skip them with --skip-invalid-size-inputs-valid-test")
    proc = train(micro_databin, tmp_path / "b", 2, "--max-tokens", "8", "--skip-invalid-size-inputs-valid-test")
    assert "skipping 3 valid sentences longer than --max-tokens 8 (the longest has 9 tokens)" in proc.stderr
    assert updates_of(str(tmp_path / "b" / "checkpoint_last.pt")) == 2
    proc = run_cli("fairseq-generate", micro_databin, "--user-dir", USER_DIR, "--task", "difformer", "--cpu",
                   "--path", tmp_path / "b" / "checkpoint_last.pt", "--gen-subset", "valid", "--max-tokens", "6",
                   check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "fairseq-generate: error: --max-tokens 6 is smaller than 8 valid sentences" in proc.stderr


def test_no_batch_size_is_one_line(micro_databin, tmp_path):
    proc = run_cli("fairseq-train", micro_databin, "--user-dir", USER_DIR, "--task", "difformer", "--arch",
                   "difformer_small", "--criterion", "difformer", "--cpu", "--save-dir", tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "fairseq-train: error: give a batch size: --max-tokens N (tokens per batch, e.g. 4096 on a GPU, 1024 "
        "on a CPU) or --batch-size N (sentences per batch)")
