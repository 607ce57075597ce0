#!/usr/bin/env bash
# Installs the Debian packages filmgrad needs, only those that are missing. Safe to run again.
# CUDA (nvcc) is optional and never installed here: filmgrad builds without it.
#   tools/install_deps.sh           what building and testing need
#   tools/install_deps.sh --golden  also PyTorch, torchvision and scikit-image, which only the golden-file scripts use
#   tools/install_deps.sh --demo    also mate-backgrounds: nature photographs, what `make demo` trains on when
#                                   tools/fetch_photos.sh cannot download its photographs (offline)
#   tools/install_deps.sh --score   also scikit-image, SciPy and Pillow, for the outside check of a dust model
#                                   (tools/check_unseen.sh, tools/score_restoration.py)
#   tools/install_deps.sh --fuzz    also clang, its libFuzzer and sanitizer runtimes (libclang-rt-dev: on Debian
#                                   bookworm clang only recommends it), clang's OpenMP (libomp-dev) and ninja,
#                                   for tools/run_fuzz.sh
set -euo pipefail

packages=(cmake g++ make libgtest-dev libbenchmark-dev libopenblas-dev libstb-dev libtiff-dev zlib1g-dev
          openmpi-bin libopenmpi-dev)
case "${1:-}" in
  --golden) packages+=(python3-torch python3-torchvision python3-skimage) ;;
  --demo) packages+=(mate-backgrounds) ;;
  --score) packages+=(python3-skimage python3-scipy python3-pil) ;;
  --fuzz) packages+=(clang libclang-rt-dev libomp-dev ninja-build) ;;
  "") ;;
  *) echo "filmgrad: error: unknown option '$1' (use --golden, --demo, --score or --fuzz)" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "filmgrad: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "filmgrad: error: need root to install ${missing[*]}; run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
