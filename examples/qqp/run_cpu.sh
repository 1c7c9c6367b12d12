#!/usr/bin/env bash
# Question paraphrasing on QQP (../shared/data/qqp: train 23k, valid 2k) with difformer_small on CPU.
# Validation reports BLEU and ROUGE-L; the best checkpoint by BLEU decodes the valid set (5 × 2 beams).
# Usage: run_cpu.sh [WORK_DIR]   env: MINUTES (training budget, default 20), MAX_UPDATE, SUBSET (train lines)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${QQP:-$here/../shared/data/qqp}
work=${1:-$here/work/qqp}
minutes=${MINUTES:-20}
mkdir -p "$work"
train=$data/train valid=$data/valid
if [ -n "${SUBSET:-}" ]; then  # a quick check: SUBSET training pairs, a tenth of that for valid
  for side in src tgt; do
    head -n "$SUBSET" "$data/train.$side" > "$work/train.subset.$side"
    head -n $((SUBSET / 10)) "$data/valid.$side" > "$work/valid.subset.$side"
  done
  train=$work/train.subset valid=$work/valid.subset
fi

difformer-prepare --trainpref "$train" --validpref "$valid" --testpref "$valid" \
  --source-lang src --target-lang tgt --lowercase --bpe-merges "${BPE_MERGES:-8000}" --workers 2 \
  --destdir "$work/data"

fairseq-train "$work/data/bin" --user-dir "$here/fairseq_difformer" --task difformer --criterion difformer \
  --arch difformer_small --share-all-embeddings --rescaling-factor 4 --dropout 0.1 \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 400 \
  --warmup-init-lr 1e-7 --weight-decay 0.01 --clip-norm 1 --max-tokens 4096 --cpu --num-workers 0 \
  --eval-bleu --eval-rouge --eval-bleu-detok moses --eval-bleu-remove-bpe --eval-bleu-args '{"decoding_steps": 10}' \
  --best-checkpoint-metric bleu --maximize-best-checkpoint-metric --max-valid-steps "${MAX_VALID_STEPS:-20}" \
  --validate-interval-updates "${VALIDATE_EVERY:-300}" --save-interval-updates "${VALIDATE_EVERY:-300}" \
  --keep-interval-updates 3 --no-epoch-checkpoints --log-format simple --log-interval 50 \
  --stop-time-hours "$(python3 -c "print($minutes / 60)")" --max-update "${MAX_UPDATE:-1000000}" \
  --save-dir "$work/checkpoints"

fairseq-generate "$work/data/bin" --user-dir "$here/fairseq_difformer" --task difformer --cpu \
  --path "$work/checkpoints/checkpoint_best.pt" --gen-subset test --batch-size 100 --remove-bpe \
  --decoding-steps 20 --length-beam-size 5 --noise-beam-size 2 > "$work/generate-valid.txt"
difformer-score --generate-output "$work/generate-valid.txt" --detok en --metrics bleu,tok-bleu,rouge
