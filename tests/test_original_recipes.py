"""The original code's published IWSLT14 train and evaluate commands run here with only the data
paths and --user-dir changed (and, on this CPU machine, --fp16 → --cpu, a few updates)."""

import re
import shutil

from conftest import USER_DIR, run_cli

# scripts/iwslt14_de_en/train.sh of the original repository, flag for flag.
ORIGINAL_TRAIN = """
    --ddp-backend no_c10d --task difformer --criterion nat_loss --arch difformer_iwslt_de_en
    --share-all-embeddings --diffusion-steps 2000 --noise-schedule sqrt --rescaling-factor 4
    --embed-norm --embed-norm-affine --self-cond --rescale-timesteps
    --optimizer adam --adam-betas (0.9,0.98) --lr 5e-4 --lr-scheduler inverse_sqrt
    --min-lr 1e-09 --warmup-updates 10000 --warmup-init-lr 1e-07 --label-smoothing 0.1
    --clip-norm 1 --dropout 0.3 --weight-decay 0.01 --decoder-learned-pos --encoder-learned-pos
    --pred-length-offset --length-loss-factor 0.1 --apply-bert-init
    --log-format json --log-interval 100 --fixed-validation-seed 7 --decoding-steps 20
    --eval-bleu --eval-tokenized-bleu --eval-bleu-remove-bpe --validate-interval 5
    --best-checkpoint-metric bleu --maximize-best-checkpoint-metric --max-tokens 8000
    --keep-last-epochs 10 --keep-best-checkpoints 5 --num-workers 20
""".split()
# scripts/iwslt14_de_en/evaluate.sh
ORIGINAL_EVALUATE = """
    --gen-subset test --task difformer --decoding-steps 20 --decoding-early-stopping 5
    --length-beam-size 7 --noise-beam-size 3 --ppl-mbr --remove-bpe --batch-size 50
""".split()
# The only changes: the size (a tiny model and 2 updates on the CPU), --cpu for --fp16.
ON_THIS_MACHINE = ["--cpu", "--max-update", "2", "--model-dim", "32", "--latent-dim", "16",
                   "--encoder-ffn-embed-dim", "64", "--encoder-layers", "1", "--decoder-layers", "1",
                   "--max-valid-steps", "1"]


def test_original_iwslt14_train_and_evaluate_commands(databin, reranker_checkpoint, tmp_path):
    model_dir = tmp_path / "models"
    train = run_cli("fairseq-train", databin, "--save-dir", model_dir, "--user-dir", USER_DIR,
                    "--tensorboard-logdir", model_dir / "tb", *ORIGINAL_TRAIN, *ON_THIS_MACHINE)
    log = train.stdout + train.stderr
    assert "--criterion nat_loss (the original recipes' name) trains with --criterion difformer" in log
    assert "--min-lr 1e-09 is ignored" in log
    assert re.search(r'"valid_bleu": "[\d.]+"', log), log[-2000:]
    shutil.copy(model_dir / "checkpoint_best.pt", model_dir / "difformer.pt")
    shutil.copy(reranker_checkpoint, model_dir / "transformer.pt")

    out = run_cli("fairseq-generate", databin, "--user-dir", USER_DIR,
                  "--path", f"{model_dir / 'difformer.pt'}:{model_dir / 'transformer.pt'}",
                  *ORIGINAL_EVALUATE, "--cpu").stdout
    assert out.count("\nH-") == 40
    # The summary line counts the 7 × 3 candidates searched per sentence.
    assert re.search(r"Generate test with beam=21: BLEU4 = [\d.]+", out)
