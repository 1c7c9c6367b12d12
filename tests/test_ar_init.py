"""--init-from-ar: a Difformer started from a fairseq AR Transformer checkpoint."""

import math
import shutil

import pytest
import torch
from fairseq.modules import SinusoidalPositionalEmbedding

from conftest import TINY_ARCH, TRAIN_COMMON, USER_DIR, run_cli, train_difformer
from difformer_core.errors import DifformerError

#: an AR Transformer of TINY_ARCH's sizes (width 64, FFN 128, 2 heads, 1 + 1 layers, one table)
AR_SIZE = [
    "--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
    "--decoder-ffn-embed-dim", "128", "--encoder-layers", "1", "--decoder-layers", "1",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def train_ar(databin, save_dir, *extra):
    run_cli("fairseq-train", databin, "--task", "translation", "--arch", "transformer", *AR_SIZE,
            "--criterion", "label_smoothed_cross_entropy", *TRAIN_COMMON, "--max-update", "3",
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--disable-validation", *extra)
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def ar_checkpoint(databin, tmp_path_factory):
    return train_ar(databin, tmp_path_factory.mktemp("ar_shared"), "--share-all-embeddings")


@pytest.fixture(scope="module")
def ar_separate_tables(databin, tmp_path_factory):
    """An AR model with separate encoder, decoder-input and output tables (no sharing at all)."""
    return train_ar(databin, tmp_path_factory.mktemp("ar_separate"))


def build(databin, save_dir, *extra):
    """The model fairseq-train would build and initialise (same parser, same task call)."""
    import fairseq_difformer  # noqa: F401
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(databin), "--user-dir", USER_DIR, "--task", "difformer", "--criterion", "difformer",
        *TINY_ARCH, "--cpu", "--save-dir", str(save_dir), *map(str, extra)])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(1)  # as fairseq-train seeds before building
    return task.build_model(cfg.model)


def ar_weights(path):
    return torch.load(path, map_location="cpu")["model"]


def truncated_svd(table, k):
    u, s, vh = torch.linalg.svd(table.double(), full_matrices=False)
    return (u[:, :k] * s[:k]) @ vh[:k]


def test_layers_and_positions_are_the_ar_models(databin, ar_checkpoint, tmp_path):
    model = build(databin, tmp_path, "--init-from-ar", ar_checkpoint)
    ar = ar_weights(ar_checkpoint)
    own = model.state_dict()
    layer_names = [n for n in own if n.startswith(("encoder.layers.", "decoder.layers."))]
    assert any(".encoder_attn." in n for n in layer_names) and any(".fc1." in n for n in layer_names)
    for name in layer_names:
        assert torch.equal(own[name], ar[name]), name
    # The AR's sinusoidal positions (fairseq's table, same padding offset) in the learned tables.
    for side in ("encoder", "decoder"):
        table = own[f"{side}.embed_positions.weight"]
        padding = getattr(model, side).embed_positions.padding_idx
        expected = SinusoidalPositionalEmbedding.get_embedding(table.size(0), table.size(1), padding)
        assert torch.allclose(table, expected)
    # Parts with no AR counterpart keep their own initialisation.
    fresh = build(databin, tmp_path / "fresh")
    for name in ("decoder.time_embed.ffn.0.weight", "decoder.embed_length.weight",
                 "decoder.latent_input.self_cond_proj.0.weight"):
        assert torch.equal(fresh.state_dict()[name], own[name]), name


@pytest.mark.parametrize("latent_dim", [16, 64])
def test_embeddings_are_the_documented_factorisation(databin, ar_checkpoint, tmp_path, latent_dim):
    """ẑ0 · Eᵀ = h · (rank-k SVD of the AR table)ᵀ and the encoder's input is the AR encoder's
    √d · O[w] to that rank; exact at k = d_model (64)."""
    model = build(databin, tmp_path, "--latent-dim", latent_dim, "--init-from-ar", ar_checkpoint)
    table = ar_weights(ar_checkpoint)["decoder.embed_tokens.weight"]
    low_rank = truncated_svd(table, latent_dim)
    h = torch.randn(5, 64, dtype=torch.float64)
    decoder = model.decoder
    logits = decoder.output_layer(decoder.project_out_dim(h.float())).double()
    assert torch.allclose(logits, h @ low_rank.t(), atol=1e-4)
    tokens = torch.arange(4, len(decoder.dictionary))
    encoder_input = model.encoder.embed_tokens(tokens).double()
    assert torch.allclose(encoder_input, 8.0 * low_rank[tokens], atol=1e-4)  # √64 = 8
    # The latent table has a fresh table's scale: RMS(E) = k^(-1/2).
    rms = decoder.embed_tokens.weight.double().pow(2).mean().sqrt().item()
    assert rms == pytest.approx(1 / math.sqrt(latent_dim), rel=1e-4)
    if latent_dim == 64:
        assert torch.allclose(low_rank, table.double(), atol=1e-5)


def test_separate_ar_tables_map_to_each_projection(databin, ar_separate_tables, tmp_path):
    """An AR model without --share-all-embeddings: the shared latent table factorises its output
    table (exact at k = d), the encoder and decoder input projections are the least-squares fits
    to its encoder and decoder input tables (normal equations: Aᵀ(A Pᵀ − B) = 0)."""
    model = build(databin, tmp_path, "--latent-dim", "64", "--init-from-ar", ar_separate_tables)
    ar = ar_weights(ar_separate_tables)
    assert not torch.equal(ar["encoder.embed_tokens.weight"], ar["decoder.embed_tokens.weight"])
    h = torch.randn(3, 64)
    logits = model.decoder.output_layer(model.decoder.project_out_dim(h))
    assert torch.allclose(logits, h @ ar["decoder.output_projection.weight"].t(), atol=1e-4)
    a = 8.0 * model.decoder.embed_tokens.weight.double()                      # √k E, k = 64
    for projection, table in ((model.encoder.embed_tokens.project_in, "encoder.embed_tokens.weight"),
                              (model.decoder.latent_input.project_in, "decoder.embed_tokens.weight")):
        residual = a @ projection.weight.double().t() - 8.0 * ar[table].double()
        assert (a.t() @ residual).abs().max() < 1e-3 * (a.t() @ (8.0 * ar[table].double())).abs().max(), table


def test_latent_dim_equal_to_model_width_keeps_a_trained_output_map(databin, tmp_path):
    """--latent-dim equal to the width: P_out is still a map of its own, a parameter that trains
    and is saved (fairseq's decoder leaves project_out_dim None at equal widths)."""
    assert build(databin, tmp_path / "built", "--latent-dim", "64").decoder.project_out_dim is not None
    train_difformer(databin, tmp_path, 2, "--latent-dim", "64", "--disable-validation", "--no-epoch-checkpoints")
    saved = torch.load(tmp_path / "checkpoint_last.pt", map_location="cpu")["model"]
    assert saved["decoder.project_out_dim.weight"].shape == (64, 64)


def test_training_starts_from_the_ar_model_and_a_resumed_run_keeps_its_own_weights(databin, ar_checkpoint, tmp_path):
    ar_copy = tmp_path / "ar.pt"
    shutil.copy(ar_checkpoint, ar_copy)
    save_dir = tmp_path / "ckpt"
    first = train_difformer(databin, save_dir, 2, "--init-from-ar", ar_copy, "--no-epoch-checkpoints",
                            "--disable-validation")
    line = next(line for line in (first.stdout + first.stderr).splitlines() if "--init-from-ar" in line)
    assert f"--init-from-ar {ar_copy}: copied" in line and "kept their own initialisation" in line
    trained = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu")["model"]
    # The AR file is gone: a resumed run must not need it, and must continue from its own weights.
    ar_copy.unlink()
    second = train_difformer(databin, save_dir, 3, "--init-from-ar", ar_copy, "--no-epoch-checkpoints",
                             "--disable-validation", "--lr", "1e-12", "--warmup-updates", "1")
    assert "not applied, the run resumes from its own checkpoint" in second.stdout + second.stderr
    resumed = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu")["model"]
    name = "encoder.layers.0.fc1.weight"
    assert torch.allclose(resumed[name], trained[name], atol=1e-6)


def test_ar_model_of_another_size_is_refused_naming_each_option(databin, reranker_checkpoint, tmp_path):
    with pytest.raises(DifformerError, match=r"encoder-embed-dim 32 \(this Difformer: 64\).*encoder-ffn-embed-dim 64"):
        build(databin, tmp_path, "--init-from-ar", reranker_checkpoint)
    with pytest.raises(DifformerError, match=r"encoder-layers 1 \(this Difformer: 2\)"):
        ar = tmp_path / "ar"
        build(databin, tmp_path, "--encoder-layers", "2", "--init-from-ar", train_ar(databin, ar, "--share-all-embeddings"))


def test_dictionary_with_other_words_of_the_same_size_is_refused(databin, ar_checkpoint, tmp_path):
    other = tmp_path / "bin"
    shutil.copytree(databin, other)
    for lang in ("de", "en"):
        lines = (other / f"dict.{lang}.txt").read_text().splitlines()
        lines[0], lines[1] = lines[1], lines[0]
        (other / f"dict.{lang}.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DifformerError, match=r"source dictionary .*dict\.de\.txt differs from the data-bin .*entry 4"):
        build(other, tmp_path, "--init-from-ar", ar_checkpoint)


def test_dictionary_of_another_size_is_refused(databin, other_dict_reranker, tmp_path):
    with pytest.raises(DifformerError, match=r"source dictionary has \d+ types, the data-bin .* has \d+"):
        build(databin, tmp_path, "--init-from-ar", other_dict_reranker)


def test_missing_truncated_and_foreign_checkpoints_fail_in_one_line(databin, ar_checkpoint, difformer_checkpoint,
                                                                    tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ar_checkpoint.read_bytes()[: ar_checkpoint.stat().st_size // 2])
    cases = {tmp_path / "missing.pt": ": file not found",
             truncated: f" does not load: it is truncated ({truncated.stat().st_size} bytes: a torch zip archive",
             difformer_checkpoint: ": not an AR Transformer translation checkpoint (it holds difformer_small)"}
    for path, message in cases.items():
        proc = train_difformer(databin, tmp_path / "ckpt", 1, "--init-from-ar", path, check=False)
        assert proc.returncode != 0
        assert f"error: --init-from-ar {path}{message}" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_init_from_ar_and_finetune_from_model_are_exclusive(databin, ar_checkpoint, difformer_checkpoint, tmp_path):
    with pytest.raises(DifformerError, match="give one"):
        build(databin, tmp_path, "--init-from-ar", ar_checkpoint, "--finetune-from-model", difformer_checkpoint)


def test_hub_loads_the_model_with_the_ar_model_it_started_from_as_reranker(databin, multi30k_bpe, ar_checkpoint,
                                                                           difformer_checkpoint, tmp_path):
    from fairseq_difformer import DifformerModel
    from difformer_core.errors import DifformerError

    train_difformer(databin, tmp_path, 2, "--init-from-ar", ar_checkpoint, "--no-epoch-checkpoints",
                    "--disable-validation")
    options = dict(checkpoint_file="checkpoint_last.pt", data_name_or_path=str(databin),
                   bpe_codes=str(multi30k_bpe / "codes"), tokenizer="moses_lowercase")
    hub = DifformerModel.from_pretrained(tmp_path, reranker=True, **options)
    assert [type(m).__name__ for m in hub.models] == ["DifformerModel", "TransformerModel"]
    assert hub.task.build_generator(hub.models, hub.cfg.generation).config.selection == "reranker"
    assert isinstance(hub.translate("Ein Hund rennt über die Wiese.", length_beam_size=2), str)
    with pytest.raises(DifformerError, match="was not trained with --init-from-ar"):
        DifformerModel.from_pretrained(difformer_checkpoint.parent, reranker=True,
                                       **{**options, "checkpoint_file": difformer_checkpoint.name})



def test_ar_freeze_keeps_the_copied_weights_through_a_real_training(databin, ar_checkpoint, tmp_path):
    """fairseq-train (in this process) with --ar-freeze-updates beyond its updates: every copied layer
    is still the AR model's (test_model.py checks that the new parts get their gradients)."""
    proc = train_difformer(databin, tmp_path, 2, "--init-from-ar", ar_checkpoint, "--ar-freeze-updates", "5",
                           "--no-epoch-checkpoints", "--disable-validation", in_process=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = torch.load(tmp_path / "checkpoint_last.pt", map_location="cpu")["model"]
    ar = torch.load(ar_checkpoint, map_location="cpu")["model"]
    layers = [name for name in trained if name.startswith(("encoder.layers.", "decoder.layers."))]
    assert layers and all(torch.equal(trained[name], ar[name]) for name in layers)
