"""The second system: a text-free Difformer (--task difformer_lm) and classification heads over its
frozen features (--arch difformer_fusion with fairseq's sentence_prediction task).

A toy corpus of colour sentences and animal sentences: the text model is trained on all of them
without labels, then heads learn to tell the two kinds apart."""

import random
import re
from argparse import Namespace

import pytest
import torch
from conftest import TRAIN_COMMON, USER_DIR, run_cli

import fairseq_difformer  # noqa: F401
from fairseq.data import Dictionary
from fairseq.tasks.sentence_prediction import SentencePredictionTask
from difformer_core.errors import DifformerError
from fairseq_difformer.models.difformer_fusion import DifformerFusionModel

WORDS = {"0": ["red", "blue", "green", "yellow", "white"], "1": ["dog", "cat", "horse", "bird", "fish"]}
FILLER = ["the", "a", "and", "with", "of"]
LM_ARCH = [
    "--arch", "difformer_small", "--model-dim", "32", "--latent-dim", "16", "--encoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--encoder-layers", "1", "--decoder-layers", "2",
    "--share-all-embeddings", "--diffusion-steps", "200",
]
HEAD = ["--head-dim", "16", "--head-layers", "1", "--head-attention-heads", "2"]


def toy_sentence(rng, label):
    words = [rng.choice(WORDS[label] if rng.random() < 0.6 else FILLER) for _ in range(rng.randint(3, 8))]
    words[rng.randrange(len(words))] = rng.choice(WORDS[label])  # at least one word of its kind
    return " ".join(words)


def write_toy(folder, n, seed, labelled):
    rng = random.Random(seed)
    rows = [(toy_sentence(rng, label), label) for label in (rng.choice("01") for _ in range(n))]
    path = folder / (f"toy{seed}.tsv" if labelled else f"toy{seed}.txt")
    if labelled:
        path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{lab}\n" for s, lab in rows))
    else:
        path.write_text("".join(f"{s}\n" for s, _ in rows))
    return path


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A text-free Difformer trained briefly on unlabelled toy sentences: (prepared folder, checkpoint)."""
    work = tmp_path_factory.mktemp("difformer_lm")
    text = write_toy(work, 800, 1, labelled=False)
    run_cli("difformer-prepare-text", "--text", text, "--destdir", work / "lm", "--bpe-merges", "100",
            "--valid-lines", "50", "--no-tokenize")
    run_cli("fairseq-train", work / "lm" / "bin", "--user-dir", USER_DIR, "--task", "difformer_lm",
            "--criterion", "difformer", *LM_ARCH, *TRAIN_COMMON, "--max-update", "60",
            "--save-dir", work / "ckpt", "--no-epoch-checkpoints", "--disable-validation")
    return work / "lm", work / "ckpt" / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def labelled_bin(text_model, tmp_path_factory):
    lm, _ = text_model
    work = tmp_path_factory.mktemp("toy_labels")
    run_cli("difformer-prepare-text", "--labelled", "--train", write_toy(work, 300, 2, labelled=True),
            "--valid", write_toy(work, 100, 3, labelled=True), "--bpe-codes", lm / "codes",
            "--srcdict", lm / "bin" / "dict.txt", "--destdir", work / "bin", "--no-tokenize")
    return work / "bin"


def build(labelled_bin, checkpoint, **options):
    task = SentencePredictionTask.setup_task(Namespace(data=str(labelled_bin), num_classes=2, regression_target=False))
    args = Namespace(difformer_checkpoint=str(checkpoint), max_positions=512, **options)
    model = DifformerFusionModel.build_model(args, task)
    model.register_classification_head("head", num_classes=2)
    return model, task


def batch(task, *sentences):
    """Sentences as the sentence_prediction task feeds them: words and </s>, right-padded."""
    d = task.source_dictionary
    rows = [d.encode_line(s, add_if_not_exist=False) for s in sentences]
    tokens = torch.full((len(rows), max(map(len, rows))), d.pad())
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    return tokens


def test_running_standardisation_is_the_cumulative_average_in_training_as_in_evaluation():
    from fairseq_difformer.models.fusion_heads import RunningStandardisation

    torch.manual_seed(0)
    norm = RunningStandardisation(3).train()
    first, second = torch.randn(5, 3) + 4, 2 * torch.randn(9, 3) - 1  # two batches of different makeup
    norm(first)
    out = norm(second)
    mean = (first.mean(0) + second.mean(0)) / 2
    var = (first.var(0) + second.var(0)) / 2  # unbiased, as BatchNorm tracks it
    torch.testing.assert_close(norm.running_mean, mean)
    torch.testing.assert_close(norm.running_var, var)
    torch.testing.assert_close(out, (second - mean) / torch.sqrt(var + norm.eps))
    # a row is standardised alike whatever its batch holds, and evaluation gives the same map
    alone = norm.eval()(second[:1])
    torch.testing.assert_close(alone, out[:1])
    assert norm.num_batches_tracked.item() == 2


def test_difformer_lm_samples_sentences(text_model):
    lm, checkpoint = text_model
    out = run_cli("fairseq-generate", lm / "bin", "--user-dir", USER_DIR, "--task", "difformer_lm",
                  "--path", checkpoint, "--gen-subset", "valid", "--batch-size", "25", "--cpu",
                  "--decoding-oracle-length", "--decoding-keep-repeats").stdout
    sources = re.findall(r"^S-\d+\t(.*)$", out, re.M)
    refs = {int(i): t for i, t in re.findall(r"^T-(\d+)\t(.*)$", out, re.M)}
    hyps = {int(i): h for i, h in re.findall(r"^H-(\d+)\t\S+\t(.*)$", out, re.M)}
    assert len(hyps) == 50 and all(s == "" for s in sources)  # nothing to condition on
    for i, hyp in hyps.items():
        assert len(hyp.split()) == len(refs[i].split())  # sampled at the sentence's length
    # Words of the corpus only: never a special symbol or one of the dictionary's fillers.
    words = set(Dictionary.load(str(lm / "bin" / "dict.txt")).symbols[4:]) | {"<unk>"}
    tokens = [w for h in hyps.values() for w in h.split()]
    assert tokens and all(w in words and not w.startswith("madeupword") for w in tokens)


@pytest.mark.parametrize("head, layers, timesteps", [
    ("linear", "1", "10"), ("attention", "2", "10"), ("fusion", "0,1,2", "10,100"), ("feedback", "1,2", "10,100"),
])
def test_shapes_and_frozen_denoiser(labelled_bin, text_model, head, layers, timesteps):
    _, checkpoint = text_model
    model, task = build(labelled_bin, checkpoint, head=head, feature_layers=layers, feature_timesteps=timesteps,
                        head_dim=16, head_layers=1, head_attention_heads=2)
    before = {k: v.clone() for k, v in model.difformer.state_dict().items()}
    tokens = batch(task, "red blue the", "dog and a cat horse")
    features = model.extract_features(tokens)
    assert len(features) == len(timesteps.split(",")) and all(len(f) == len(layers.split(",")) for f in features)
    assert all(f.shape == (2, tokens.size(1), model.feature_dim) for per_t in features for f in per_t)

    model.train()
    assert not model.difformer.training  # no dropout in the features
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    logits, _ = model(tokens, classification_head_name="head")
    assert logits.shape == (2, 2)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    optimizer.step()
    assert all(not p.requires_grad and p.grad is None for p in model.difformer.parameters())
    assert all(p.grad is not None for p in model.classification_heads.parameters())
    if head == "feedback":
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.feedback.parameters())
    for key, value in model.difformer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_features_are_deterministic_and_independent_of_the_batch(labelled_bin, text_model):
    _, checkpoint = text_model
    model, task = build(labelled_bin, checkpoint, head="fusion", feature_layers="1,2", feature_timesteps="50,150")
    alone = model.extract_features(batch(task, "red blue"))
    again = model.extract_features(batch(task, "red blue"))
    padded = model.extract_features(batch(task, "red blue", "dog and a cat with the horse"))
    for k in range(2):
        for layer in range(2):
            assert torch.equal(alone[k][layer], again[k][layer])
            torch.testing.assert_close(padded[k][layer][:1, :3], alone[k][layer], atol=1e-5, rtol=1e-5)
    # A different seed draws different noise: different features.
    other, _ = build(labelled_bin, checkpoint, head="fusion", feature_layers="1,2", feature_timesteps="50,150",
                     feature_seed=2)
    assert not torch.allclose(other.extract_features(batch(task, "red blue"))[0][0], alone[0][0])


def test_the_untrained_control_has_the_checkpoints_shape_and_fresh_weights(labelled_bin, text_model):
    """The diffssl benchmark's control probes the checkpoint's architecture with fresh weights."""
    from benchmarks.diffssl.probe import probe_grid
    from fairseq_difformer.models.difformer_fusion import load_difformer

    _, checkpoint = text_model
    dictionary = Dictionary.load(str(labelled_bin / "input0" / "dict.txt"))
    trained = load_difformer(str(checkpoint), dictionary).state_dict()
    fresh = load_difformer(str(checkpoint), dictionary, weights=False).state_dict()
    assert trained.keys() == fresh.keys() and all(trained[k].shape == fresh[k].shape for k in trained)
    assert not torch.equal(trained["decoder.layers.0.fc1.weight"], fresh["decoder.layers.0.fc1.weight"])
    layers, accuracy = probe_grid(checkpoint, labelled_bin, (0,), trained=False)
    assert layers == [0, 1, 2] and [len(row) for row in accuracy] == [1, 1, 1]
    assert all(0 <= row[0] <= 100 for row in accuracy)


def test_feedback_changes_the_second_pass_from_its_layer_on(labelled_bin, text_model):
    _, checkpoint = text_model
    model, task = build(labelled_bin, checkpoint, head="feedback", feature_layers="0,1,2", feature_timesteps="30",
                        feedback="2:1")
    plain, _ = build(labelled_bin, checkpoint, head="fusion", feature_layers="0,1,2", feature_timesteps="30")
    tokens = batch(task, "red blue the", "dog and a cat horse")
    with torch.no_grad():
        fed = model.extract_features(tokens)[0]
        first = plain.extract_features(tokens)[0]
    keep = ~tokens.eq(task.source_dictionary.pad())
    assert torch.equal(fed[0], first[0])  # the layers' input: before any feedback
    for layer in (1, 2):  # layer 1's output gets Feedback(f_2); layer 2 reads it
        assert (fed[layer] - first[layer])[keep].abs().max() > 1e-3


def test_bad_options_name_the_flag(labelled_bin, text_model, tmp_path):
    _, checkpoint = text_model
    fusion = dict(head="fusion", feature_layers="1", feature_timesteps="10")
    for options, flag in [
        (dict(fusion, feature_layers="3"), "--feature-layers"),
        (dict(fusion, feature_timesteps="200"), "--feature-timesteps"),
        (dict(fusion, feature_timesteps="-1"), "--feature-timesteps"),
        (dict(fusion, feature_layers="a,b"), "--feature-layers"),
        (dict(fusion, head="linear", feature_layers="1,2"), "--head linear"),
        (dict(fusion, head="feedback", feedback="1:2"), "--feedback"),
        (dict(fusion, head="feedback", feedback="5:1"), "--feedback"),
    ]:
        with pytest.raises(DifformerError, match=flag):
            build(labelled_bin, checkpoint, **options)
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(DifformerError, match="not a fairseq checkpoint"):
        build(labelled_bin, not_a_checkpoint, **fusion)
    with pytest.raises(DifformerError, match="no such file"):
        build(labelled_bin, tmp_path / "missing.pt", **fusion)


def test_a_dictionary_other_than_the_checkpoints_is_refused(labelled_bin, text_model, tmp_path):
    lm, checkpoint = text_model
    other = tmp_path / "dict.txt"
    other.write_text((lm / "bin" / "dict.txt").read_text() + "zebra 1\n")
    run_cli("difformer-prepare-text", "--labelled", "--train", write_toy(tmp_path, 50, 4, labelled=True),
            "--valid", write_toy(tmp_path, 20, 5, labelled=True), "--bpe-codes", lm / "codes",
            "--srcdict", other, "--destdir", tmp_path / "bin", "--no-tokenize")
    with pytest.raises(DifformerError, match="dictionary"):
        build(tmp_path / "bin", checkpoint, head="fusion", feature_layers="1", feature_timesteps="10")


def train_head(labelled_bin, checkpoint, save_dir, task, *options):
    out = run_cli(
        "fairseq-train", labelled_bin, "--user-dir", USER_DIR, "--task", task,
        "--num-classes", "2", "--criterion", "sentence_prediction", "--arch", "difformer_fusion",
        "--difformer-checkpoint", checkpoint, *options, "--optimizer", "adam",
        "--batch-size", "32", "--max-epoch", "20", "--cpu", "--no-progress-bar", "--log-format", "simple",
        "--seed", "1", "--num-workers", "0", "--save-dir", save_dir, "--no-epoch-checkpoints",
    )
    accuracies = [float(a) for a in re.findall(r"valid on 'valid' subset.*?accuracy (\d+\.?\d*)", out.stdout + out.stderr)]
    return accuracies


@pytest.mark.parametrize("task, head, options", [
    ("sentence_prediction", "linear", ["--feature-layers", "2", "--feature-timesteps", "5", "--lr", "3e-3"]),
    ("sentence_prediction_by_length", "feedback", ["--feature-layers", "1,2", "--feature-timesteps", "5,50",
                                                   "--feedback", "2:1", *HEAD, "--lr", "1e-3", "--head-dropout", "0"]),
])
def test_sentence_prediction_learns_a_separable_set(labelled_bin, text_model, tmp_path, task, head, options):
    _, checkpoint = text_model
    accuracies = train_head(labelled_bin, checkpoint, tmp_path / "ckpt", task, "--head", head, *options)
    assert len(accuracies) == 20
    assert accuracies[-1] >= 90, accuracies
    # The saved model carries the denoiser's weights unchanged.
    trained = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=False)["model"]
    original = torch.load(checkpoint, weights_only=False)["model"]
    for key, value in original.items():
        assert torch.equal(trained["difformer." + key], value), key


@pytest.mark.parametrize("no_shuffle", [False, True])
def test_sentence_prediction_by_length_batches_sentences_of_one_length(labelled_bin, no_shuffle):
    """Examples ordered by length, ties in the seeded permutation; --no-shuffle keeps the file's order."""
    from fairseq_difformer.tasks.sentence_prediction_by_length import (SentencePredictionByLengthConfig,
                                                                        SentencePredictionByLengthTask)

    cfg = SentencePredictionByLengthConfig(data=str(labelled_bin), num_classes=2, seed=1, no_shuffle=no_shuffle)
    task = SentencePredictionByLengthTask.setup_task(cfg)
    task.load_dataset("train")
    dataset = task.dataset("train")
    order, lengths = dataset.ordered_indices(), dataset.sizes[0]
    assert sorted(order.tolist()) == list(range(len(dataset)))
    if no_shuffle:
        assert order.tolist() == list(range(len(dataset)))
        return
    assert (lengths[order][1:] >= lengths[order][:-1]).all()
    assert len(set(lengths.tolist())) > 3  # the toy set has several lengths to sort
    plain = SentencePredictionTask.setup_task(cfg)
    plain.load_dataset("train")
    shuffled = plain.dataset("train").ordered_indices()  # fairseq's: the permutation alone
    for length in set(lengths.tolist()):  # within a length, the permutation's order
        assert order[lengths[order] == length].tolist() == shuffled[lengths[shuffled] == length].tolist()

    def padded_positions(t):
        batches = t.get_batch_iterator(dataset=t.dataset("train"), max_sentences=16).next_epoch_itr(shuffle=True)
        return sum(sample["net_input"]["src_tokens"].numel() for sample in batches)

    assert padded_positions(task) < 0.9 * padded_positions(plain)


def test_sentence_prediction_by_length_batches_every_sentence(labelled_bin):
    """fairseq 0.12.3 drops the last n mod 8 sentences of an epoch (a split of fewer than 8 would
    be empty: the 1 % label fraction of a small subset); here every sentence is in a batch."""
    from fairseq_difformer.tasks.sentence_prediction_by_length import (SentencePredictionByLengthConfig,
                                                                        SentencePredictionByLengthTask)

    cfg = SentencePredictionByLengthConfig(data=str(labelled_bin), num_classes=2, seed=1)
    task, plain = SentencePredictionByLengthTask.setup_task(cfg), SentencePredictionTask.setup_task(cfg)
    seen = {}
    for name, t in (("by_length", task), ("plain", plain)):
        t.load_dataset("train")
        batches = t.get_batch_iterator(dataset=t.dataset("train"), max_sentences=64,
                                       required_batch_size_multiple=8).next_epoch_itr(shuffle=True)
        seen[name] = sorted(i for sample in batches for i in sample["id"].tolist())
    n = len(task.dataset("train"))
    assert n % 8 and len(seen["plain"]) < n  # the loss this guards against
    assert seen["by_length"] == list(range(n))


def test_fairseq_train_states_a_bad_option_in_one_line(labelled_bin, text_model, tmp_path):
    _, checkpoint = text_model
    proc = run_cli(
        "fairseq-train", labelled_bin, "--user-dir", USER_DIR, "--task", "sentence_prediction",
        "--num-classes", "2", "--criterion", "sentence_prediction", "--arch", "difformer_fusion",
        "--difformer-checkpoint", checkpoint, "--feature-layers", "7", "--cpu", "--batch-size", "8",
        "--save-dir", tmp_path, check=False,
    )
    assert proc.returncode != 0
    assert "--feature-layers 7" in proc.stderr and "Traceback" not in proc.stderr


def test_prepare_text_keeps_a_fraction_of_each_label(tmp_path, text_model):
    lm, _ = text_model
    train = write_toy(tmp_path, 400, 6, labelled=True)
    run_cli("difformer-prepare-text", "--labelled", "--train", train, "--valid", write_toy(tmp_path, 20, 7, labelled=True),
            "--bpe-codes", lm / "codes", "--srcdict", lm / "bin" / "dict.txt", "--destdir", tmp_path / "bin",
            "--no-tokenize", "--label-fraction", "0.1")
    import json

    counts = json.loads((tmp_path / "bin" / "manifest.json").read_text())["counts"]
    labels = [line.split("\t")[1] for line in train.read_text().splitlines()[1:]]
    assert counts["train"] == sum(round(0.1 * labels.count(lab)) for lab in set(labels))
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nred\t0\n")
    proc = run_cli("difformer-prepare-text", "--labelled", "--train", bad, "--valid", bad, "--bpe-codes",
                   lm / "codes", "--srcdict", lm / "bin" / "dict.txt", "--destdir", tmp_path / "b2", check=False)
    assert proc.returncode == 2 and "no sentence column" in proc.stderr and "Traceback" not in proc.stderr
