#!/usr/bin/env bash
# The outside check of a dust model (issue 11): restoration of photographs no demo network is trained on (KDE's
# plasma-workspace-wallpapers), at 256 px and at full resolution, scored independently with scikit-image
# (tools/score_restoration.py) against the damaged input, a 3x3 median filter and biharmonic inpainting of the
# network's own mask; clean photographs are restored too (they must come back clean).
#
#   tools/check_unseen.sh RUN [OUT]      RUN: a dust run folder or checkpoint; OUT default unseen_out
# Environment: BUILD (default build), UNSEEN (a folder of photos instead of the fetched KDE ones), FULL=0 to skip
# the full-resolution half, SEED (damage seed, default 11, as issue 11 measured), RESTORE_ARGS (more `filmgrad
# restore` options, e.g. "--fill classical --flip-average": the network finds the damage and a classical fill
# repairs it, what make demo restores with; "--work-size 768").
# Writes OUT/score-256.md and OUT/score-full.md (+ per-image CSVs).
set -euo pipefail
RUN=${1:?usage: tools/check_unseen.sh RUN [OUT]}
OUT=${2:-unseen_out}
BUILD=${BUILD:-build}
FG="$BUILD/filmgrad"
SEED=${SEED:-11}
PY=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$FG" ] || { echo "check_unseen: error: $FG is not built; run 'make build' first" >&2; exit 1; }
"$PY" -c "import skimage, scipy, PIL" 2>/dev/null ||
  { echo "check_unseen: error: $PY lacks scikit-image, SciPy or Pillow; run tools/install_deps.sh --score" >&2; exit 1; }
mkdir -p "$OUT"
UNSEEN=${UNSEEN:-$OUT/photos}
if [ -z "$(find "$UNSEEN" -type f 2>/dev/null | head -1)" ]; then
  bash "$here/fetch_photos.sh" --unseen "$UNSEEN"
fi

# score LABEL PIECES
score() {
  local label=$1 pieces=$2
  rm -rf "$pieces.restored" "$pieces.restored_clean"
  # shellcheck disable=SC2086 # RESTORE_ARGS is a list of options
  "$FG" restore "$pieces/damaged" -o "$pieces.restored" --model "$RUN" --mask ${RESTORE_ARGS:-} >"$pieces.restore.log"
  # shellcheck disable=SC2086
  "$FG" restore "$pieces/clean" -o "$pieces.restored_clean" --model "$RUN" ${RESTORE_ARGS:-} >>"$pieces.restore.log"
  tail -1 "$pieces.restore.log"
  "$PY" "$here/score_restoration.py" "$pieces" "$pieces.restored" "$pieces.restored_clean" \
    --out "$OUT/score-$label.md" --csv "$OUT/score-$label.csv" --label "$label: $RUN on $UNSEEN, seed $SEED" \
    --picture "$OUT/picture-$label.png"
}

echo "== 256 px: two 256 px crops of each photo resized to a shorter side of 512 (issue 11's own cut)"
"$FG" synth "$UNSEEN" -o "$OUT/pieces-256" --size 256 --load-size 512 --samples-per-image 2 --seed "$SEED" \
  --log-every 0 --overwrite
score 256 "$OUT/pieces-256"

if [ "${FULL:-1}" != 0 ]; then
  echo "== full resolution: each photo whole, dust sized for its own frame"
  "$FG" synth "$UNSEEN" -o "$OUT/pieces-full" --size 0 --seed "$SEED" --log-every 0 --overwrite
  score full "$OUT/pieces-full"
fi
