#!/usr/bin/env bash
# Checks the installed filmgrad as an embedding program sees it (docs/embedding.md), without rebuilding it:
#   1. `cmake --install BUILD --prefix TMP/prefix` (BUILD must already be built: the libraries and the program);
#   2. the installed files: the C header, libfilmgrad.a and .so, the CMake package, the pkg-config file, the program;
#   3. a small model (2 training steps of a narrow tiny_unet on generated photos, by the installed program) and a
#      small test image;
#   4. examples/embed_c (shared and static) and examples/embed_cpp configured and built out of tree against
#      TMP/prefix with find_package, and embed_c once more with pkg-config alone;
#   5. each program run on the test image; its outputs must be images of the input's size (read back by the
#      installed `filmgrad metrics`).
# usage: tools/check_install.sh [BUILD]     (default: build). Exit status 0 when every step passed.
# CHECK_INSTALL_KEEP=1 keeps the temporary folder (logs, outputs) and prints where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "check_install: '$build' is not a configured build folder" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fg_check_install.XXXXXX")
if [ "${CHECK_INSTALL_KEEP:-0}" = 1 ]; then
  echo "check_install: keeping $tmp (CHECK_INSTALL_KEEP=1)"
else
  trap 'rm -rf "$tmp"' EXIT
fi
prefix=$tmp/prefix
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
step() { echo "== check_install: $*"; }
fail() { echo "check_install: FAILED: $*" >&2; exit 1; }

step "install $build to a temporary prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in include/filmgrad/filmgrad.h include/filmgrad/apps/restore.h include/filmgrad/tensor/tensor.h \
         lib/libfilmgrad.a lib/libfilmgrad.so lib/cmake/filmgrad/filmgradConfig.cmake \
         lib/cmake/filmgrad/filmgradConfigVersion.cmake lib/pkgconfig/filmgrad.pc bin/filmgrad; do
  [ -e "$prefix/$f" ] || fail "the install has no $f"
done
fg=$prefix/bin/filmgrad

step "a small model and a test image"
mkdir -p "$tmp/photos"
# Twelve 64x48 TGA photos and one 200x136 test image of colour waves with texture (perl is in every Debian base).
make_tga() {
  perl -e '
    my ($w, $h, $seed, $path) = @ARGV;
    open(my $f, ">", $path) or die "$path: $!";
    binmode $f;
    print $f pack("CCCvvCvvvvCC", 0, 0, 2, 0, 0, 0, 0, 0, $w, $h, 24, 0x20);
    for my $y (0 .. $h - 1) {
      for my $x (0 .. $w - 1) {
        for my $c (2, 1, 0) {
          my $v = 128 + 90 * sin(0.13 * ($x + 5 * $c + $seed) + 0.07 * $y * ($seed % 3 + 1))
                  + (($x * 7 + $y * 13 + $seed * 31 + $c * 3) % 41) - 20;
          print $f pack("C", $v < 0 ? 0 : $v > 255 ? 255 : int($v));
        }
      }
    }' "$@"
}
for i in $(seq 1 12); do make_tga 64 48 "$i" "$tmp/photos/photo$i.tga"; done
make_tga 200 136 99 "$tmp/scan.tga"
"$fg" train --data "$tmp/photos" --out "$tmp/run" --model tiny_unet --width 0.25 --sizes 32 --batches 4 --epochs 1 \
  --max-steps 2 --no-progress --workers 0 >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; fail "filmgrad train"; }
[ -f "$tmp/run/model.safetensors" ] || fail "filmgrad train wrote no model.safetensors"

build_example() {  # NAME BUILD_DIR [cmake options...]
  local name=$1 dir=$2
  shift 2
  cmake -S "$src/examples/$name" -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" "$@" \
    >"$dir.log" 2>&1 && cmake --build "$dir" >>"$dir.log" 2>&1 || { cat "$dir.log"; fail "building examples/$name $*"; }
}
step "build examples/embed_c (shared and static) and examples/embed_cpp out of tree"
build_example embed_c "$tmp/embed_c"
build_example embed_c "$tmp/embed_c_static" -DEMBED_STATIC=ON
build_example embed_cpp "$tmp/embed_cpp"
if command -v pkg-config >/dev/null; then
  step "build examples/embed_c with pkg-config"
  # shellcheck disable=SC2046  # the flags are words
  cc -std=c99 -Wall -Wextra -pedantic -o "$tmp/embed_c_pc" "$src/examples/embed_c/embed_c.c" \
    $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs filmgrad) -Wl,-rpath,"$prefix/lib" \
    || fail "building embed_c with pkg-config"
fi

# OUTPUT must be an image of the scan's size: `filmgrad metrics` reads both and compares them pixel by pixel.
check_image() {
  [ -s "$1" ] || fail "$2 wrote no $1"
  "$fg" metrics "$tmp/scan.tga" "$1" >"$tmp/metrics.log" 2>&1 || { cat "$tmp/metrics.log"; fail "$2's $1 is not a valid image of the input's size"; }
  grep -q -i psnr "$tmp/metrics.log" || { cat "$tmp/metrics.log"; fail "filmgrad metrics printed no PSNR for $1"; }
}
step "run them on a 200x136 image"
for prog in embed_c embed_c_static embed_c_pc; do
  exe=$tmp/$prog/embed_c
  [ "$prog" = embed_c_pc ] && exe=$tmp/embed_c_pc
  [ -x "$exe" ] || continue
  "$exe" "$tmp/run" "$tmp/scan.tga" "$tmp/$prog.png" "$tmp/${prog}_mask.png" >"$tmp/$prog.run.log" 2>&1 \
    || { cat "$tmp/$prog.run.log"; fail "$prog"; }
  check_image "$tmp/$prog.png" "$prog"
  [ -s "$tmp/${prog}_mask.png" ] || fail "$prog wrote no mask"
done
"$tmp/embed_cpp/embed_cpp" "$tmp/run" "$tmp/out_cpp" "$tmp/scan.tga" >"$tmp/embed_cpp.run.log" 2>&1 \
  || { cat "$tmp/embed_cpp.run.log"; fail "embed_cpp"; }
check_image "$tmp/out_cpp/scan_restored.tga" embed_cpp
[ -s "$tmp/out_cpp/scan_restored_mask.png" ] || fail "embed_cpp wrote no mask"
# A failure is one line on stderr and a nonzero exit.
if "$tmp/embed_c/embed_c" "$tmp/no_such_run" "$tmp/scan.tga" "$tmp/x.png" 2>"$tmp/err.log"; then
  fail "embed_c succeeded with a missing model"
fi
grep -q "does not exist" "$tmp/err.log" || { cat "$tmp/err.log"; fail "embed_c's error does not say what was wrong"; }
step "passed"
