#!/usr/bin/env bash
# A short end-to-end run on Multi30k de→en (the data copy beside the project, ../shared/data):
# joint BPE → fairseq-preprocess → fairseq-train difformer_small for DEMO_MINUTES (default 5) →
# fairseq-generate on test2016 with 3×2 beams → BLEU and a few translations.
# Re-running it reuses the data-bin and resumes training from checkpoint_last.pt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${DIFFORMER_MULTI30K:-$here/../shared/data/multi30k}
work=${DEMO_DIR:-$here/work/demo}
minutes=${DEMO_MINUTES:-5}
user_dir=$here/fairseq_difformer
[ -f "$data/train.de" ] || { echo "demo: Multi30k not found at $data (set DIFFORMER_MULTI30K)" >&2; exit 1; }
mkdir -p "$work"

if [ ! -f "$work/bin/.done" ]; then
  echo "[demo] learning a joint BPE (4k merges) and binarising"
  cat "$data/train.de" "$data/train.en" | subword-nmt learn-bpe -s 4000 > "$work/codes" 2> "$work/bpe.log"
  for split in train:train val:valid test_2016_flickr:test; do
    for lang in de en; do
      subword-nmt apply-bpe -c "$work/codes" < "$data/${split%%:*}.$lang" > "$work/${split##*:}.$lang"
    done
  done
  rm -rf "$work/bin"
  fairseq-preprocess --source-lang de --target-lang en --joined-dictionary --workers 2 \
    --trainpref "$work/train" --validpref "$work/valid" --testpref "$work/test" --destdir "$work/bin" \
    > "$work/preprocess.log" 2>&1
  touch "$work/bin/.done"
fi

echo "[demo] training difformer_small for $minutes minutes (fairseq's log below)"
fairseq-train "$work/bin" --user-dir "$user_dir" --task difformer --criterion difformer \
  --arch difformer_small --share-all-embeddings --rescaling-factor 4 --dropout 0.1 \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler inverse_sqrt \
  --warmup-updates 500 --warmup-init-lr 1e-7 --weight-decay 0.01 --clip-norm 1 \
  --max-tokens 4096 --cpu --num-workers 0 --log-format simple --log-interval 25 \
  --stop-time-hours "$(python3 -c "print($minutes / 60)")" --max-update 100000 \
  --disable-validation --no-epoch-checkpoints --save-interval-updates 200 \
  --save-dir "$work/checkpoints" 2>&1 | grep -E "train_inner|done training|Loaded checkpoint"

echo "[demo] translating test2016 (20 steps, early stopping 5, 3 lengths × 2 noises)"
fairseq-generate "$work/bin" --user-dir "$user_dir" --task difformer --cpu \
  --path "$work/checkpoints/checkpoint_last.pt" --gen-subset test --batch-size 100 --remove-bpe \
  --decoding-steps 20 --decoding-early-stopping 5 --length-beam-size 3 --noise-beam-size 2 \
  > "$work/generate.txt" 2> "$work/generate.log"
grep -E "^(S|T|H)-" "$work/generate.txt" > "$work/examples.txt" || true
sed -n '1,9{s/^H-\([0-9]*\)\t[^\t]*\t/H-\1\t/;p}' "$work/examples.txt"
grep "^H-" "$work/generate.txt" | sort -t- -k2 -n | cut -f3 > "$work/hyp.txt"
grep "^T-" "$work/generate.txt" | sort -t- -k2 -n | cut -f2 > "$work/ref.txt"
echo "[demo] tokenised BLEU on test2016: $(sacrebleu "$work/ref.txt" -i "$work/hyp.txt" -tok none -b)"
