# Sourced by tools/demo.sh and tools/demo_negative.sh: the program check, the step timer and the training
# photographs. Reads BUILD, OUT and PHOTOS (a folder of photographs; empty: fetched into $OUT/photos, or Debian's
# installed mate-backgrounds when offline). Sets FG, start and PHOTOS; defines step.

# demo_setup NAME TARGET: NAME is the script's name in messages, TARGET the make target that builds and runs it.
demo_setup() {
  local name=$1 target=$2
  FG="$BUILD/filmgrad"
  if [ ! -x "$FG" ]; then
    echo "$name: error: $FG is not built; run 'make $target' (it builds first)" >&2
    exit 1
  fi
  mkdir -p "$OUT"
  start=$(date +%s)
  if [ -z "${PHOTOS:-}" ]; then
    PHOTOS="$OUT/photos"
    if [ -z "$(find "$PHOTOS" -type f 2>/dev/null | head -1)" ]; then
      step "0/4 fetch: photographs from Debian's wallpaper packages"
      if ! bash "$(dirname "${BASH_SOURCE[0]}")/fetch_photos.sh" "$PHOTOS"; then
        # Offline: the mate-backgrounds nature photos that tools/install_deps.sh --demo installs.
        PHOTOS=/usr/share/backgrounds/mate/nature
        echo "$name: fetching failed; using the installed $PHOTOS instead" >&2
      fi
    fi
  fi
  if [ ! -d "$PHOTOS" ]; then
    echo "$name: error: no photos in '$PHOTOS'; install them with 'tools/install_deps.sh --demo' (Debian's" \
         "mate-backgrounds), run tools/fetch_photos.sh, or set PHOTOS to a folder of photographs" >&2
    exit 1
  fi
}

step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }
