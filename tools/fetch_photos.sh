#!/usr/bin/env bash
# Fetches the photographs `make demo` trains on from Debian's packages (wallpapers, sample data), without
# installing anything: `apt-get download` of each package (no root needed), `dpkg-deb -x` into a temporary folder,
# and a copy of the photographs (not the drawings, patterns or SVGs) into DEST/<package>/. Nothing of it belongs in git (DEST
# defaults to demo_out/photos, which .gitignore keeps out).
#
#   tools/fetch_photos.sh [DEST]           the training photographs (below)
#   tools/fetch_photos.sh --unseen DEST    KDE's plasma-workspace-wallpapers (its JPEG photographs), the outside
#                                          check: photographs no demo network is trained on
#
# The training packages, and what is taken from each (checked with `apt-cache show` and `dpkg-deb -c` on
# Debian 12, every picture looked at):
#   mate-backgrounds         usr/share/backgrounds/mate/nature/*.jpg   nature photographs (12)
#   lomiri-wallpapers-16.04  usr/share/backgrounds/*.jpg               Ubuntu's photograph contest pictures (15)
#   lomiri-wallpapers-20.04  Kleiber_*.jpg, Infinite-Sea_*.jpg          two photographs (the others are drawings)
#   lxqt-themes              usr/share/lxqt/wallpapers/ (11 named)     landscapes, flowers, butterflies, clouds
#   tuxpaint-data            usr/share/tuxpaint/templates/*.jpg        Tux Paint's photo templates (19): bark,
#                                                                      rocks, sea, trees, sheep, a lighthouse
#   opencv-doc               examples/ (26 named)                      OpenCV's sample photographs: streets,
#                                                                      signs, fruit, animals, aerial views
#   python3-skimage          skimage/data/ (11 named)                  scikit-image's photographs (astronaut,
#                                                                      coffee, cat...; six of them greyscale)
#   python-matplotlib-data   sample_data/grace_hopper.jpg              a portrait
#   afterstep-data           desktop/tiles/rose512.jpg                 a rose
# Looked at and not used: gnome-backgrounds (43), desktop-base, debian-edu-artwork-*, xfdesktop4-data,
# lxde-common, sway-backgrounds, ukui-wallpapers, lomiri-wallpapers (drawings and renderings only);
# gcompris-qt-data (its pictures are inside Qt resource files); stellarium-data (246 MB for panorama strips with
# a transparent sky); python3-scipy (its one colour photograph, face.dat, is raw bzip2-compressed pixels that
# filmgrad cannot read); tuxpaint-stamps-default (cut-out pictures on transparency).
# KDE's plasma-workspace-wallpapers is never among them: it is kept unseen for the outside check.
# When a package cannot be downloaded (no network), an installed copy under /usr/share is used if there is one.
set -euo pipefail

unseen=0
if [ "${1:-}" = "--unseen" ]; then
  unseen=1
  shift
  if [ -z "${1:-}" ]; then
    echo "fetch_photos: error: --unseen needs a destination folder" >&2
    exit 2
  fi
fi
DEST=${1:-demo_out/photos}
case "$DEST" in -*) echo "fetch_photos: error: unknown option '$DEST' (use [DEST] or --unseen DEST)" >&2; exit 2 ;; esac

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch_photos: error: $tool is missing (a Debian system is needed)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch PACKAGE GLOB...: the package's files matching the globs (relative to its root) into DEST/PACKAGE/.
fetch() {
  local pkg=$1
  shift
  local root="$work/$pkg"
  mkdir -p "$root"
  if (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    dpkg-deb -x "$work/${pkg}"_*.deb "$root"
  elif dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "fetch_photos: cannot download $pkg; using the installed copy" >&2
    root=/
  else
    echo "fetch_photos: error: cannot download $pkg (apt-get download $pkg failed: no network or no such" \
         "package) and it is not installed; skipped" >&2
    return 1
  fi
  mkdir -p "$DEST/$pkg"
  local n=0 f
  for pattern in "$@"; do
    for f in "$root"/$pattern; do
      [ -f "$f" ] || continue
      cp "$f" "$DEST/$pkg/"
      n=$((n + 1))
    done
  done
  echo "fetch_photos: $pkg: $n photographs in $DEST/$pkg"
  [ "$n" -gt 0 ]
}

mkdir -p "$DEST"
ok=0
if [ "$unseen" -eq 1 ]; then
  # KDE's wallpapers are folders per picture with the image in several sizes: the largest of each. Only the JPEGs
  # are photographs (18 in Plasma 5.27; the PNGs are renderings and drawings).
  pkg=plasma-workspace-wallpapers
  mkdir -p "$work/$pkg"
  if ! (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    echo "fetch_photos: error: cannot download $pkg (apt-get download $pkg failed)" >&2
    exit 1
  fi
  dpkg-deb -x "$work/${pkg}"_*.deb "$work/$pkg"
  mkdir -p "$DEST/$pkg"
  n=0
  for dir in "$work/$pkg"/usr/share/wallpapers/*/contents/images; do
    [ -d "$dir" ] || continue
    name=$(basename "$(dirname "$(dirname "$dir")")")
    largest=$(ls -S "$dir"/*.jpg 2>/dev/null | head -1 || true)
    [ -n "$largest" ] || continue
    cp "$largest" "$DEST/$pkg/$name.${largest##*.}"
    n=$((n + 1))
  done
  echo "fetch_photos: $pkg: $n pictures in $DEST/$pkg (unseen: never train on them)"
  [ "$n" -gt 0 ] || exit 1
  exit 0
fi

fetch mate-backgrounds 'usr/share/backgrounds/mate/nature/*.jpg' && ok=$((ok + 1)) || true
fetch lomiri-wallpapers-16.04 'usr/share/backgrounds/*.jpg' && ok=$((ok + 1)) || true
fetch lomiri-wallpapers-20.04 'usr/share/backgrounds/Kleiber_*.jpg' 'usr/share/backgrounds/Infinite-Sea_*.jpg' &&
  ok=$((ok + 1)) || true
lxqt=usr/share/lxqt/wallpapers
fetch lxqt-themes "$lxqt/Butterfly-Kenneth-Wimer.jpg" "$lxqt/Valendas.png" "$lxqt/after-the-rain.jpg" \
  "$lxqt/appleflower.png" "$lxqt/beam.png" "$lxqt/butterfly.png" "$lxqt/cloud.png" "$lxqt/drop.png" \
  "$lxqt/flowers.png" "$lxqt/fog.jpg" "$lxqt/this-is-not-windows.jpg" && ok=$((ok + 1)) || true
fetch tuxpaint-data 'usr/share/tuxpaint/templates/*.jpg' && ok=$((ok + 1)) || true
# OpenCV's sample data: the photographs only (not the drawings, renderings, calibration boards, the painting, the
# greyscale video frames or the second image of each stereo and motion pair).
cv=usr/share/doc/opencv-doc/examples
cv_photos=()
for name in aero1.jpg aero3.jpg aloeL.jpg apple.jpg baboon.jpg board.jpg building.jpg butterfly.jpg chicky_512.png \
  ela_original.jpg fruits.jpg home.jpg left.jpg leuvenA.jpg messi5.jpg orange.jpg rubberwhale1.png \
  squirrel_cls.jpg stuff.jpg; do
  cv_photos+=("$cv/data/$name")
done
fetch opencv-doc "${cv_photos[@]}" "$cv/text/scenetext0[1-6].jpg" "$cv/alphamat/input_images/plant.jpg" &&
  ok=$((ok + 1)) || true
# scikit-image's photographs (its others are drawings, microscopy, astronomy or synthetic; motorcycle_right is
# the other half of a stereo pair).
sk=usr/lib/python3/dist-packages/skimage/data
fetch python3-skimage "$sk/astronaut.png" "$sk/coffee.png" "$sk/chelsea.png" "$sk/rocket.jpg" \
  "$sk/motorcycle_left.png" "$sk/camera.png" "$sk/coins.png" "$sk/moon.png" "$sk/grass.png" "$sk/gravel.png" \
  "$sk/brick.png" && ok=$((ok + 1)) || true
fetch python-matplotlib-data 'usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg' && ok=$((ok + 1)) || true
fetch afterstep-data 'usr/share/afterstep/desktop/tiles/rose512.jpg' && ok=$((ok + 1)) || true
if [ "$ok" -eq 0 ]; then
  echo "fetch_photos: error: no photographs fetched into $DEST" >&2
  exit 1
fi
