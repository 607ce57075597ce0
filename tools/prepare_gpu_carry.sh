#!/usr/bin/env bash
# Packs what a lent GPU machine lacks (it is not Debian: no GoogleTest, Google Benchmark, OpenBLAS, libtiff or stb)
# into one archive, .gpu/carry.tar.xz (git-ignored), so a device run can carry the folder .gpu and
# tools/gpu_check.sh can build filmgrad there. Run it here, on Debian, after tools/install_deps.sh:
#   tools/prepare_gpu_carry.sh            writes .gpu/carry.tar.xz (about 6 MB)
# The archive holds:
#   googletest/   Debian's GoogleTest sources (/usr/src/googletest), built there through -DFG_GTEST_ROOT
#   benchmark/    Google Benchmark's headers and shared library (libbenchmark-dev), used through -DFG_BENCHMARK_ROOT
#   deps/include  cblas.h and openblas_config.h, the libtiff and zlib headers, stb/stb_image*.h
#   deps/lib      libopenblas, libtiff, libz and the shared libraries they load (libgfortran, libjpeg, ...), but
#                 not glibc or libstdc++, which the machine has in newer versions
set -euo pipefail
cd "$(dirname "$0")/.."
arch_dir=/usr/lib/x86_64-linux-gnu
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

need() { [ -e "$1" ] || { echo "prepare_gpu_carry: $1 is missing; run tools/install_deps.sh first" >&2; exit 1; }; }
need /usr/src/googletest/CMakeLists.txt
need /usr/include/benchmark/benchmark.h
need "$arch_dir/libopenblas.so.0"
need /usr/include/stb/stb_image.h

cp -r /usr/src/googletest "$stage/googletest"

mkdir -p "$stage/benchmark/include" "$stage/benchmark/lib"
cp -r /usr/include/benchmark "$stage/benchmark/include/"
cp -a "$arch_dir"/libbenchmark.so* "$stage/benchmark/lib/"

mkdir -p "$stage/deps/include/stb" "$stage/deps/lib"
cp /usr/include/x86_64-linux-gnu/openblas-pthread/{cblas.h,openblas_config.h} "$stage/deps/include/"
for h in tiff.h tiffconf.h tiffio.h tiffio.hxx tiffvers.h; do
  cp "$(ls /usr/include/x86_64-linux-gnu/$h /usr/include/$h 2>/dev/null | head -1)" "$stage/deps/include/"
done
cp /usr/include/zlib.h /usr/include/zconf.h "$stage/deps/include/"
cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h "$stage/deps/include/stb/"

# The libraries themselves (dereferenced, under their sonames) and what they load, minus the C/C++ runtime.
copy_lib() {  # $1: path of a shared library; copies it as its soname
  local soname
  soname=$(objdump -p "$1" | awk '/SONAME/ {print $2}')
  cp -L "$1" "$stage/deps/lib/${soname:-$(basename "$1")}"
}
for lib in "$arch_dir/libopenblas.so.0" "$arch_dir/libtiff.so.6" "$arch_dir/libz.so.1"; do
  copy_lib "$lib"
  ldd "$lib" | awk '/=>/ {print $3}' | while read -r dep; do
    case "$(basename "$dep")" in
      libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;
      *) copy_lib "$dep" ;;
    esac
  done
done
# Link-time names (-lopenblas, -ltiff, -lz) next to the sonames.
(cd "$stage/deps/lib" && ln -sf libopenblas.so.0 libopenblas.so && ln -sf libtiff.so.6 libtiff.so && ln -sf libz.so.1 libz.so)

mkdir -p .gpu
tar -cJf .gpu/carry.tar.xz.tmp -C "$stage" googletest benchmark deps
mv .gpu/carry.tar.xz.tmp .gpu/carry.tar.xz
echo "wrote .gpu/carry.tar.xz ($(du -h .gpu/carry.tar.xz | cut -f1)); carry the folder .gpu and run tools/gpu_check.sh there"
