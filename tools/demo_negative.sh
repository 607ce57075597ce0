#!/usr/bin/env bash
# `make demo-negative`: the cross-channel task (a damaged blue layer of an old negative restored from the clean red
# and green) at demo scale, on the CPU, with the same subcommands a user runs at full scale:
#   0. fetch    the demo's photographs (tools/fetch_photos.sh), once, into $OUT/photos
#   1. synth    cut them into 128 px pieces
#   2. train    a gated cross-channel network (SPEC A's three sub-U-Nets at width 0.25; the mask net's prediction
#               gates the blue channel, b = m B'' + (1 - m) B_damaged) on 64 px crops, the blue-layer damage
#               synthesised afresh every epoch: Adam, constant lr 1e-3, 30 epochs
#   3. eval     the held-out test pieces against the baselines (identity, 3x3 median, diffusion inpainting of
#               the network's own mask), as one HTML report and summary.csv
#   4. unseen   (UNSEEN=1, the default) the same evaluation on KDE's photographs, which no demo trains on, cut
#               at 256 px as issue 11 cut them for the dust task
# Everything is written under $OUT (default demo_negative_out). Environment: BUILD (default build), OUT, PHOTOS
# (a folder of photos instead of the fetched ones), EPOCHS (default 30), UNSEEN (0 skips step 4).
set -euo pipefail

BUILD=${BUILD:-build}
OUT=${OUT:-demo_negative_out}
EPOCHS=${EPOCHS:-30}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/demo_common.sh
. "$here/demo_common.sh"
demo_setup demo_negative demo-negative

step "1/4 synth: 128 px pieces of the photographs in $PHOTOS"
"$FG" synth "$PHOTOS" -o "$OUT/pieces" --task negative --size 128 --load-size 384 --samples-per-image 4 --seed 1 \
  --log-every 0 --overwrite

step "2/4 train: a gated cross-channel network at width 0.25 on the clean pieces"
rm -rf "$OUT/run"
"$FG" train --preset cross-channel --gated --width 0.25 --sizes 64 --batches 8 --epochs "$EPOCHS" --lr 1e-3 \
  --data "$OUT/pieces/clean" --out "$OUT/run" --seed 1 --no-progress

step "3/4 eval: the test split against the baselines"
"$FG" eval "$OUT/run" --data "$OUT/pieces/clean" --out "$OUT/eval" --size 128

if [ "${UNSEEN:-1}" != 0 ]; then
  step "4/4 unseen: KDE's photographs, two 256 px pieces of each, blue-layer damage seed 11"
  unseen="$OUT/unseen"
  if [ -z "$(find "$unseen/photos" -type f 2>/dev/null | head -1)" ]; then
    bash "$here/fetch_photos.sh" --unseen "$unseen/photos"
  fi
  "$FG" synth "$unseen/photos" -o "$unseen/pieces" --task negative --size 256 --load-size 512 \
    --samples-per-image 2 --seed 11 --log-every 0 --overwrite
  # eval reads a split: every unseen piece is a test image; train and validation name one stand-in each (a copy
  # of the first piece under another name), which eval does not score.
  split="$unseen/split"
  mkdir -p "$split" "$unseen/pieces/clean/split-stand-ins"
  first=$(cd "$unseen/pieces/clean" && find . -path ./split-stand-ins -prune -o -type f -print | sort | head -1)
  cp "$unseen/pieces/clean/$first" "$unseen/pieces/clean/split-stand-ins/train.png"
  cp "$unseen/pieces/clean/$first" "$unseen/pieces/clean/split-stand-ins/validation.png"
  printf 'path\nsplit-stand-ins/train.png\n' >"$split/train.csv"
  printf 'path\nsplit-stand-ins/validation.png\n' >"$split/validation.csv"
  { echo path; (cd "$unseen/pieces/clean" && find . -path ./split-stand-ins -prune -o -type f -print | sed 's|^\./||' | sort); } \
    >"$split/test.csv"
  "$FG" eval "$OUT/run" --data "$unseen/pieces/clean" --split "$split" --out "$OUT/eval-unseen" --size 256
fi

echo
echo "demo_negative: done in $(( $(date +%s) - start )) s. Look at:"
echo "  $OUT/eval/report.html          the test split against the baselines (open it in a browser)"
[ "${UNSEEN:-1}" != 0 ] && echo "  $OUT/eval-unseen/report.html   KDE's photographs, never trained on"
echo "  $OUT/run/metrics.jsonl         the training log"
