#!/usr/bin/env bash
# IWSLT14 de→en with the published Difformer hyperparameters (one GPU). See README.md.
# Usage: run.sh RAW_DIR WORK_DIR   (RAW_DIR holds train/valid/test.{de,en}, lowercased and tokenised)
set -euo pipefail
raw=$1; work=$2
user_dir=$(difformer-user-dir)

difformer-prepare --source-lang de --target-lang en --no-tokenize --bpe-merges 10000 --workers 8 \
  --trainpref "$raw/train" --validpref "$raw/valid" --testpref "$raw/test" --destdir "$work/data"

difformer-distill "$work/data/bin" --destdir "$work/kd" --teacher-args "--arch transformer_iwslt_de_en \
  --share-all-embeddings --optimizer adam --adam-betas (0.9,0.98) --clip-norm 0.0 --lr 5e-4 \
  --lr-scheduler inverse_sqrt --warmup-updates 4000 --dropout 0.3 --weight-decay 0.0001 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --max-tokens 4096 --max-epoch 300 --fp16"

fairseq-train "$work/kd/bin" --user-dir "$user_dir" --task difformer --criterion difformer \
  --arch difformer_iwslt_de_en --share-all-embeddings --apply-bert-init \
  --diffusion-steps 2000 --noise-schedule sqrt --rescaling-factor 4 --latent-dim 128 \
  --embed-norm --embed-norm-affine --self-cond --rescale-timesteps --pred-length-offset \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 5e-4 --lr-scheduler inverse_sqrt \
  --warmup-updates 10000 --warmup-init-lr 1e-7 --weight-decay 0.01 --clip-norm 1 \
  --label-smoothing 0.1 --dropout 0.3 --max-tokens 8192 --max-update 300000 --fp16 \
  --eval-bleu --eval-bleu-remove-bpe --eval-tokenized-bleu --eval-bleu-args '{"decoding_steps": 20}' \
  --best-checkpoint-metric bleu --maximize-best-checkpoint-metric --keep-best-checkpoints 5 \
  --validate-interval-updates 5000 --save-interval-updates 5000 --keep-interval-updates 5 \
  --no-epoch-checkpoints --log-format simple --log-interval 100 --save-dir "$work/checkpoints"

difformer-average-checkpoints --inputs "$work/checkpoints" --num-best 5 --output "$work/checkpoints/average5.pt"

fairseq-generate "$work/kd/bin" --user-dir "$user_dir" --task difformer --gen-subset test \
  --path "$work/checkpoints/average5.pt:$work/kd/teacher/checkpoint_best.pt" --ppl-mbr \
  --decoding-steps 20 --decoding-early-stopping 5 --length-beam-size 7 --noise-beam-size 3 --decoding-length-offset 0 \
  --batch-size 50 --remove-bpe > "$work/generate-test.txt"
difformer-score --generate-output "$work/generate-test.txt" --detok en
