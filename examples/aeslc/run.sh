#!/usr/bin/env bash
# Email → subject line summarization on AESLC (../shared/data/aeslc) with difformer_small on CPU.
# Sources are cut to 200 words when preparing and to their first 64 tokens when training and
# decoding (--truncate-source); ROUGE-L on dev picks the best checkpoint; dev is decoded and scored.
# Usage: run.sh [WORK_DIR]   env: MINUTES (training budget, default 20), MAX_UPDATE, SUBSET (train records)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${AESLC:-$here/../shared/data/aeslc}
work=${1:-$here/work/aeslc}
minutes=${MINUTES:-20}
mkdir -p "$work"
train=$data/train.jsonl dev=$data/dev.jsonl
if [ -n "${SUBSET:-}" ]; then  # a quick check: SUBSET training records, a tenth of that for dev
  head -n "$SUBSET" "$data/train.jsonl" > "$work/train.subset.jsonl"; train=$work/train.subset.jsonl
  head -n $((SUBSET / 10)) "$data/dev.jsonl" > "$work/dev.subset.jsonl"; dev=$work/dev.subset.jsonl
fi

difformer-prepare --train-jsonl "$train" --valid-jsonl "$dev" --test-jsonl "$dev" \
  --source-field body --target-field subject --source-lang body --target-lang subject \
  --max-source-words 200 --bpe-merges "${BPE_MERGES:-8000}" --workers 2 --destdir "$work/data"

# The project's summarization recipe (difformer_cli/recipes.py): the translation recipe with sources
# cut to their first 64 tokens, 4,096-token batches and 150 warm-up updates.
recipe=$(cd "$here" && python3 -c "from difformer_cli.recipes import summarization_recipe; print(' '.join(summarization_recipe('difformer')))")
# shellcheck disable=SC2086  # the recipe is a list of options
fairseq-train "$work/data/bin" --user-dir "$here/fairseq_difformer" $recipe \
  --eval-rouge --eval-bleu-detok moses --eval-bleu-remove-bpe --eval-bleu-args '{"decoding_steps": 10}' \
  --best-checkpoint-metric rougeL --maximize-best-checkpoint-metric --max-valid-steps "${MAX_VALID_STEPS:-20}" \
  --validate-interval-updates "${VALIDATE_EVERY:-300}" --save-interval-updates "${VALIDATE_EVERY:-300}" \
  --keep-interval-updates 3 --no-epoch-checkpoints --log-format simple --log-interval 50 \
  --stop-time-hours "$(python3 -c "print($minutes / 60)")" --max-update "${MAX_UPDATE:-1000000}" \
  --save-dir "$work/checkpoints"

fairseq-generate "$work/data/bin" --user-dir "$here/fairseq_difformer" --task difformer --cpu \
  --path "$work/checkpoints/checkpoint_best.pt" --gen-subset test --batch-size 100 --remove-bpe \
  --truncate-source --max-source-positions 64 \
  --decoding-steps 20 --length-beam-size 3 --noise-beam-size 2 > "$work/generate-dev.txt"
difformer-score --generate-output "$work/generate-dev.txt" --detok en --metrics rouge,bleu
