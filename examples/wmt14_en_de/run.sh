#!/usr/bin/env bash
# WMT14 en→de with the published Difformer hyperparameters. See README.md.
# Usage: run.sh RAW_DIR WORK_DIR [GPUS]   (RAW_DIR: train/valid/test.{en,de}, Moses-tokenised)
set -euo pipefail
raw=$1; work=$2; gpus=${3:-4}
user_dir=$(difformer-user-dir)

difformer-prepare --source-lang en --target-lang de --no-tokenize --bpe-merges 40000 --workers 16 \
  --trainpref "$raw/train" --validpref "$raw/valid" --testpref "$raw/test" --destdir "$work/data"

difformer-distill "$work/data/bin" --destdir "$work/kd" --max-tokens 16000 --teacher-args "--arch transformer_wmt_en_de \
  --share-all-embeddings --optimizer adam --adam-betas (0.9,0.98) --clip-norm 0.0 --lr 7e-4 \
  --lr-scheduler inverse_sqrt --warmup-updates 4000 --dropout 0.1 --weight-decay 0.0 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --max-tokens 8192 \
  --update-freq $((8 / gpus > 0 ? 8 / gpus : 1)) --max-update 300000 --fp16"

fairseq-train "$work/kd/bin" --user-dir "$user_dir" --task difformer --criterion difformer \
  --arch difformer --share-all-embeddings --apply-bert-init \
  --diffusion-steps 2000 --noise-schedule sqrt --rescaling-factor 3.5 --latent-dim 128 \
  --embed-norm --embed-norm-affine --self-cond --rescale-timesteps --pred-length-offset \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 5e-4 --lr-scheduler inverse_sqrt \
  --warmup-updates 10000 --warmup-init-lr 1e-7 --weight-decay 0.01 --clip-norm 1 \
  --label-smoothing 0.1 --dropout 0.1 --max-tokens 16384 --update-freq $((4 / gpus > 0 ? 4 / gpus : 1)) \
  --max-update 300000 --fp16 \
  --eval-bleu --eval-bleu-remove-bpe --eval-tokenized-bleu --eval-bleu-args '{"decoding_steps": 20}' \
  --best-checkpoint-metric bleu --maximize-best-checkpoint-metric --keep-best-checkpoints 5 \
  --validate-interval-updates 5000 --save-interval-updates 5000 --keep-interval-updates 5 \
  --no-epoch-checkpoints --log-format simple --log-interval 100 --save-dir "$work/checkpoints"

difformer-average-checkpoints --inputs "$work/checkpoints" --num-best 5 --output "$work/checkpoints/average5.pt"

fairseq-generate "$work/kd/bin" --user-dir "$user_dir" --task difformer --gen-subset test \
  --path "$work/checkpoints/average5.pt:$work/kd/teacher/checkpoint_best.pt" --ppl-mbr \
  --decoding-steps 20 --decoding-early-stopping 5 --length-beam-size 7 --noise-beam-size 3 --decoding-length-offset 0 \
  --batch-size 50 --remove-bpe > "$work/generate-test.txt"
grep '^H-' "$work/generate-test.txt" | sort -t- -k2 -n | cut -f3 > "$work/hyp.tok"
grep '^T-' "$work/generate-test.txt" | sort -t- -k2 -n | cut -f2 > "$work/ref.tok"
split_compounds() { perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g'; }
echo "tokenised BLEU:"; sacrebleu "$work/ref.tok" -i "$work/hyp.tok" -tok none -b
echo "tokenised BLEU, compound-split:"
sacrebleu <(split_compounds < "$work/ref.tok") -i <(split_compounds < "$work/hyp.tok") -tok none -b
echo "SacreBLEU (detokenised; pass the raw newstest2014.de with --sacrebleu-ref for the official number):"
difformer-score --generate-output "$work/generate-test.txt" --detok de --metrics bleu
