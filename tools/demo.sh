#!/usr/bin/env bash
# `make demo`: the whole job on real photographs, on the CPU, in a few minutes, with the same subcommands a user
# runs at full scale:
#   0. fetch    98 photographs from Debian's packages (tools/fetch_photos.sh: MATE's, LXQt's and Ubuntu's wallpaper
#               photographs, Tux Paint's photo templates, OpenCV's, scikit-image's and Matplotlib's sample
#               photographs; KDE's are kept unseen), once, into $OUT/photos
#   1. synth    cut them into 128 px pieces (damaged/clean pairs)
#   2. train    a small-width gated Dynamic U-Net (the dissertation's network with a damage-mask head that keeps
#               the input where it sees no damage) on random 64 px crops of the clean pieces, dust synthesised
#               afresh every epoch and sized for frames of 128 to 768 px (the `demo` preset)
#   3. eval     the dissertation's tables and plots on the held-out test pieces, as one HTML report
#   4. restore  a damaged piece from the test split (--fill classical: what the network's mask marks is filled by
#               harmonic interpolation, spots whose change is not neutral put back; --flip-average), and its
#               predicted damage mask
# Everything is written under $OUT (default demo_out). Environment: BUILD (default build), OUT, PHOTOS (a folder
# of photos instead of the fetched ones), EPOCHS (training epochs; default from the preset).
set -euo pipefail

BUILD=${BUILD:-build}
OUT=${OUT:-demo_out}
# shellcheck source=tools/demo_common.sh
. "$(dirname "$0")/demo_common.sh"
demo_setup demo demo

step "1/4 synth: 128 px pieces of the photographs in $PHOTOS"
# Four pieces per photograph: 392 from the 98 fetched photos. The preset's 7 epochs of 2 crops per piece are about
# the training work of the 24 epochs it ran on the 116 pieces of the first 29 photos (docs/training.md).
"$FG" synth "$PHOTOS" -o "$OUT/pieces" --size 128 --load-size 384 --samples-per-image 4 --seed 1 \
  --log-every 0 --overwrite

step "2/4 train: a gated Dynamic U-Net at width 0.25 on the clean pieces (the demo preset)"
rm -rf "$OUT/run"
train_args=(--preset demo --data "$OUT/pieces/clean" --out "$OUT/run" --seed 1)
if [ -n "${EPOCHS:-}" ]; then train_args+=(--epochs "$EPOCHS"); fi
"$FG" train "${train_args[@]}"

step "3/4 eval: the test split, damaged and clean, as an HTML report"
"$FG" eval "$OUT/run" --data "$OUT/pieces/clean" --out "$OUT/eval" --size 128

step "4/4 restore: a damaged piece from the test split and its predicted damage mask"
first_test=$(sed -n 2p "$OUT/run/test.csv" | tr -d '"\r')
sample="$OUT/pieces/damaged/$first_test"
rm -rf "$OUT/restored"
# --fill classical: the network finds the damage, a classical fill repairs it (docs/training.md, "Finding the
# damage": on unseen photographs that restores better than the network's own image head); --flip-average: the
# mask averaged over the piece and its mirror images (docs/restore.md).
"$FG" restore "$sample" -o "$OUT/restored" --model "$OUT/run" --mask --fill classical --flip-average
"$FG" metrics "$sample" "$OUT/pieces/clean/$first_test" | grep -E '^(PSNR|SSIM)' | sed 's/^/  damaged vs clean:  /'
restored=$(find "$OUT/restored" -type f ! -name '*_mask*' | head -1)
"$FG" metrics "$restored" "$OUT/pieces/clean/$first_test" | grep -E '^(PSNR|SSIM)' | sed 's/^/  restored vs clean: /'

echo
echo "demo: done in $(( $(date +%s) - start )) s. Look at:"
echo "  $OUT/eval/report.html      the evaluation report (open it in a browser)"
echo "  $OUT/run/samples/          input | prediction | target grids, one per epoch"
echo "  $OUT/restored/             the restored test piece and its damage mask"
echo "  $OUT/run/metrics.jsonl     the training log"
