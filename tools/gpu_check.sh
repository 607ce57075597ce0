#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, builds filmgrad with CUDA for that GPU, runs the gpu-labelled
# tests one program at a time, runs each of them again under compute-sanitizer (memcheck with the caching allocator
# off, so every tensor is its own allocation, then racecheck), runs the bench_cuda_* benchmarks, and writes one
# report:
#   bench/results/<gpu>-<date>/report.md     environment, test, sanitizer and benchmark tables
#   bench/results/<gpu>-<date>/<bench>.json  Google Benchmark's JSON of each suite
#   bench/results/<gpu>-<date>/logs.tar.gz   the full logs (build, each test, each sanitizer run, each benchmark)
# The report is rewritten after every step (and copied to --copy-to DIR), so a run cut off by its time limit still
# returns what it did. Exit status 0 when every test that ran passed and the sanitizers found nothing; 1 otherwise
# (the report is written in both cases); 2 for a usage or environment error.
#
# What the machine needs: nvidia-smi, nvcc, cmake, a C++ compiler, compute-sanitizer (in the CUDA toolkit). What
# it may lack (the lent machines are not Debian) comes from .gpu/carry.tar.xz, made here beforehand by
# tools/prepare_gpu_carry.sh and carried along: GoogleTest and Google Benchmark always from there when present,
# OpenBLAS, libtiff, zlib and stb only where the system has none. cuDNN is looked for in the CUDA toolkit and in
# Python's nvidia-cudnn package (CUDNN_ROOT). Warnings are not errors here (another compiler version may warn
# differently; CI enforces -Werror on Debian).
#
# Usage: tools/gpu_check.sh [--budget [SECONDS]] [--build-dir DIR] [--skip-build] [--skip-tests] [--skip-sanitizer]
#                           [--skip-bench] [--full-bench] [--only "test_a test_b"] [--bench-min-time SECONDS]
#                           [--copy-to DIR] [--jobs N]
#   --budget [S]    the budgeted mode for a short lease (default S = 360 seconds, the build included): build the
#                   gpu tests and the short benchmark set, run every gpu test first, then the short benchmark set
#                   (the networks' real layer shapes at 128 px, each hand-written kernel beside its cuDNN/cuBLAS
#                   twin, at most about 2 minutes); no sanitizer. Each step is skipped, and the report says so,
#                   when too little of S is left for it. docs/gpu.md has the measured step times.
#   --full-bench    every benchmark of every bench_cuda_* suite (the default without --budget)
#   --only NAMES    restrict the tests (and their sanitizer runs) to these tests/gpu programs
#   --copy-to DIR   also copy report.md, logs.tar.gz and the JSON files (as bench_json.tar.gz) into DIR, e.g. the
#                   device tool's $OUT, after every step
# On a lent machine (15 minutes of device time in all, its start included): first call
#   tools/gpu_check.sh --budget --copy-to $OUT
# then, only if time is left and the machine is still warm, the sanitizer and the full benchmark set as separate
# calls: --skip-build --skip-tests --skip-bench (sanitizer), --skip-build --skip-tests --skip-sanitizer --full-bench.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=build-gpu
skip_build=0 skip_tests=0 skip_sanitizer=0 skip_bench=0 min_time=0.2 copy_to="" jobs=$(nproc) only=""
budget="" full_bench=""
call_args="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --budget)
      if [[ "${2:-}" =~ ^[0-9]+$ ]]; then budget=$2; shift 2; else budget=360; shift; fi ;;
    --full-bench) full_bench=1; shift ;;
    --build-dir) build=$2; shift 2 ;;
    --skip-build) skip_build=1; shift ;;
    --skip-tests) skip_tests=1; shift ;;
    --skip-sanitizer) skip_sanitizer=1; shift ;;
    --skip-bench) skip_bench=1; shift ;;
    --bench-min-time) min_time=$2; shift 2 ;;
    --copy-to) copy_to=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --only) only=$(echo "$2" | tr ',' ' '); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option '$1' (see tools/gpu_check.sh --help)" >&2; exit 2 ;;
  esac
done

die() { echo "gpu_check: error: $*" >&2; exit 2; }
started=$(date +%s)
# In the budgeted mode every step asks how many of the budget's seconds are left; without a budget there is no end.
if [ -n "$budget" ]; then
  [ "$budget" -ge 60 ] || die "--budget $budget: give at least 60 seconds"
  skip_sanitizer=1
  [ -n "$full_bench" ] || full_bench=0
  min_time=0.05
else
  [ -n "$full_bench" ] || full_bench=1
fi
seconds_left() { if [ -n "$budget" ]; then echo $((started + budget - $(date +%s))); else echo 100000; fi; }
elapsed() { echo $(($(date +%s) - started)); }
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: run this on a machine with an NVIDIA GPU"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
[ -n "$gpu_name" ] || die "nvidia-smi lists no GPU"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
slug=$(echo "$gpu_name" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9]\+/-/g; s/^-//; s/-$//')
out="bench/results/${slug}-$(date +%Y-%m-%d)"
# Logs and benchmark JSON live in the (git-ignored) build folder, so a later call (--skip-build ...) on the same
# machine adds to them and its report shows every phase; $out is filled from there at the end.
logs="$build/gpu_check_logs"
bench_json="$build/gpu_check_bench"
[ "$skip_build" = 1 ] && [ ! -d "$build" ] && die "--skip-build, but there is no build folder $build"
mkdir -p "$out" "$logs" "$bench_json"
echo "gpu_check: $gpu_name (sm_$arch); results in $out"

# ---- dependencies: system first, carried ones where missing ----
carry_dir="$root/.gpu/unpacked"
if [ -f .gpu/carry.tar.xz ] && [ ! -d "$carry_dir" ]; then
  mkdir -p "$carry_dir" && tar -xJf .gpu/carry.tar.xz -C "$carry_dir" || die "cannot unpack .gpu/carry.tar.xz"
fi
cmake_args=(-DFG_WITH_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DFG_WERROR=OFF -DCMAKE_BUILD_TYPE=Release)
if [ -d "$carry_dir/googletest" ]; then cmake_args+=("-DFG_GTEST_ROOT=$carry_dir/googletest"); fi
if [ -d "$carry_dir/benchmark" ]; then
  cmake_args+=("-DFG_BENCHMARK_ROOT=$carry_dir/benchmark")
  export LD_LIBRARY_PATH="$carry_dir/benchmark/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
has_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
has_header() { for d in "$@"; do [ -e "$d" ] && return 0; done; return 1; }
deps="$carry_dir/deps"
# FG_GPU_CHECK_CARRIED=1 uses the carried libraries even where the system has them (to rehearse the lent
# machine's setup on Debian).
use_carried_deps=0
force_carried=${FG_GPU_CHECK_CARRIED:-0}
need_deps() { [ -d "$deps" ] || die "$1 is missing and no .gpu/carry.tar.xz was carried (run tools/prepare_gpu_carry.sh)"; }
if [ "$force_carried" = 1 ] || ! has_lib libopenblas.so || ! has_header /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h \
     /usr/include/openblas/cblas.h /usr/include/cblas.h || ! has_header /usr/include/stb/stb_image.h; then
  need_deps "OpenBLAS or stb"
  use_carried_deps=1
  # cblas.h and stb/ are in one folder, which CMake adds to filmgrad's include path as OpenBLAS's.
  cmake_args+=("-DOPENBLAS_INCLUDE_DIR=$deps/include" "-DOPENBLAS_LIBRARY=$deps/lib/libopenblas.so")
fi
if [ "$force_carried" = 1 ] || ! has_lib libtiff.so || ! has_header /usr/include/tiffio.h /usr/include/x86_64-linux-gnu/tiffio.h; then
  need_deps libtiff
  use_carried_deps=1
  cmake_args+=("-DTIFF_INCLUDE_DIR=$deps/include" "-DTIFF_LIBRARY=$deps/lib/libtiff.so")
fi
if [ "$force_carried" = 1 ] || ! has_header /usr/include/zlib.h; then
  need_deps zlib
  use_carried_deps=1
  cmake_args+=("-DZLIB_INCLUDE_DIR=$deps/include" "-DZLIB_LIBRARY=$deps/lib/libz.so")
fi
if [ "$use_carried_deps" = 1 ]; then export LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
# CUDA libraries from Python's wheels (nvidia-cublas, ...), after everything else, for programs that load them.
site=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null || true)
if [ -n "$site" ]; then
  for d in "$site"/nvidia/*/lib; do [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"; done
fi
# cuDNN from Python's wheel: its library has no unversioned name, so link names are made in a scratch folder.
if [ -z "${CUDNN_ROOT:-}" ]; then
  wheel=$(python3 -c "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))" 2>/dev/null || true)
  if [ -n "$wheel" ] && [ -d "$wheel/lib" ]; then
    export CUDNN_ROOT=$(mktemp -d)/cudnn
    mkdir -p "$CUDNN_ROOT/lib"
    ln -s "$wheel/include" "$CUDNN_ROOT/include"
    for f in "$wheel"/lib/libcudnn*.so.*; do ln -sf "$f" "$CUDNN_ROOT/lib/$(basename "$f")"; done
    ln -sf "$(ls "$wheel"/lib/libcudnn.so.* | head -1)" "$CUDNN_ROOT/lib/libcudnn.so"
    export LD_LIBRARY_PATH="$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi

# The environment, for the report.
{
  echo "GPU:        $gpu_name (compute capability $arch)"
  echo "driver:     $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
  echo "memory:     $(nvidia-smi --query-gpu=memory.total --format=csv,noheader | head -1)"
  echo "nvcc:       $(nvcc --version 2>/dev/null | tail -1)"
  echo "compiler:   $(c++ --version 2>/dev/null | head -1)"
  echo "cmake:      $(cmake --version 2>/dev/null | head -1)"
  echo "cpu:        $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  echo "commit:     $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "carried:    $( [ -d "$carry_dir" ] && echo yes || echo no ); carried OpenBLAS/libtiff/zlib: $use_carried_deps"
  echo "cuDNN root: ${CUDNN_ROOT:-none}"
} > "$logs/environment.txt"
cat "$logs/environment.txt"

# ---- build ----
gpu_tests=${only:-$(ls tests/gpu/*.cpp | xargs -n1 basename | sed 's/\.cpp$//')}
gpu_benches=$(ls bench/bench_cuda_*.cpp 2>/dev/null | xargs -r -n1 basename | sed 's/\.cpp$//')
# The short benchmark set: each suite's hand-written kernels beside their cuDNN/cuBLAS twins on the networks' real
# shapes at 128 px (batch 16), the middle of the progressive-resizing schedule; conv2d on eight layers that cover
# the 7x7 stem, 3x3 at several widths, stride 2, the 99-channel res block and the dilated block. Pointwise and
# spatial ops have no vendor twin and run only in the full set.
short_filter() {
  case "$1" in
    bench_cuda_conv2d) echo '^conv2d_[a-z_]+/(implicit_gemm_f32|wmma_bf16|cudnn_f32|cudnn_bf16)/(r34\.conv1|r34\.layer1|r34\.layer2\.0\.conv1|r34\.layer3|unet\.block2\.conv|unet\.res|xc\.block0\.conv|xc\.dilated)@128/' ;;
    bench_cuda_matmul) echo '/(tiled_f32|wmma_bf16|cublas_f32|cublas_bf16)/[^/]*@128/' ;;
    bench_cuda_norm) echo '/(cuda_f32|cuda_bf16)/[^/]*@128/' ;;
    bench_cuda_ssim) echo '/(fused_f32|fused_bf16|five_convs_f32)/[^/]*@128/' ;;
    bench_cuda_attention) echo '/(default_f32|default_bf16)/[^/]*@128/' ;;
    *) echo "" ;;
  esac
}
if [ "$full_bench" = 0 ]; then
  short=""
  for b in $gpu_benches; do [ -n "$(short_filter "$b")" ] && short="$short $b"; done
  gpu_benches=$short
fi
[ "$skip_bench" = 1 ] && build_benches="" || build_benches=$gpu_benches

# Step log: one row per step (what, result, seconds), shown at the top of the report.
steps="$logs/steps.md"
[ "$skip_build" = 1 ] || : > "$steps"
step_row() { echo "| $1 | $2 | $3 |" >> "$steps"; }
step_row "**call**: gpu_check.sh $call_args" "started $(date -u +%H:%M:%S) UTC" ""
test_rows="$logs/test_rows.md"

write_report() {
  cp "$bench_json"/*.json "$out"/ 2>/dev/null
  {
    echo "# GPU check: $gpu_name, $(date +%Y-%m-%d)"
    echo
    echo "Written by tools/gpu_check.sh$([ -n "$budget" ] && echo " --budget $budget") (report rewritten after every step; this one after $(elapsed) s)."
    echo "Kernels: filmgrad's own (kernels/cuda/); vendor twins as FG_VENDOR=${FG_VENDOR:-} selects."
    echo
    echo "## Steps"
    echo
    echo "| step | result | seconds |"
    echo "| --- | --- | ---: |"
    cat "$steps" 2>/dev/null
    echo
    echo "## Environment"
    echo
    echo '```'
    cat "$logs/environment.txt"
    echo '```'
    echo
    echo "## Build"
    echo
    if [ "$build_status" != 0 ]; then
      echo "**The build failed (exit $build_status).** The end of its log:"; echo; echo '```'; tail -40 "$logs/build.log"; echo '```'
    elif [ "$skip_build" = 0 ]; then
      echo "Built with CUDA for sm_$arch in $build: $(echo $gpu_tests $build_benches | wc -w) targets."
    else
      echo "Not built by this call: the binaries already in $build were used."
    fi
    echo
    echo "## Tests (tests/gpu, one program at a time)"
    echo
    if [ -s "$test_rows" ]; then
      echo "| test | result | seconds | summary |"
      echo "| --- | --- | ---: | --- |"
      cat "$test_rows"
      if grep -q "FAILED\|timed out" "$test_rows"; then
        echo
        echo "Failures (first lines of each failing test's output):"
        echo
        echo '```'
        cat "$logs"/test-*.log 2>/dev/null | grep -E "^\[  FAILED|Failure|Expected|Value of|Which is|NMSE|differ|sentinel|Timeout" | head -80
        echo '```'
      fi
    else
      echo "Not run."
    fi
    echo
    echo "## compute-sanitizer"
    echo
    if [ -f "$logs/sanitizer_rows.md" ]; then
      echo "memcheck ran with FG_CUDA_NO_CACHING=1 (each tensor its own cudaMalloc of its exact size)."
      echo
      echo "| test | tool | result | summary |"
      echo "| --- | --- | --- | --- |"
      cat "$logs/sanitizer_rows.md"
    else
      echo "Not run$([ -n "$budget" ] && echo " (the budgeted mode leaves it to a separate call)")."
    fi
    echo
    echo "## Benchmarks$([ "$full_bench" = 0 ] && echo " (the short set)")"
    echo
    python3 - "$out" <<'PY' || echo "(python3 unavailable: see the JSON files)"
import json, os, sys
out = sys.argv[1]
files = sorted(f for f in os.listdir(out) if f.endswith(".json"))
if not files:
    print("Not run.")
# Google Benchmark's own fields; everything else in an entry is a counter the suite set (GB/s, %HBM, FLOP/s, ...).
known = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
         "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "error_occurred",
         "error_message", "aggregate_name", "aggregate_unit", "label"}
def fmt(v):
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
for f in files:
    with open(os.path.join(out, f)) as fh:
        data = json.load(fh)
    print(f"### {f[:-5]}\n")
    skipped = {}
    rows = []
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            reason = b.get("error_message", "")
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(b.get("time_unit", "ns"), 1e-3)
        counters = ", ".join(f"{k} {fmt(v)}" for k, v in b.items() if k not in known and isinstance(v, (int, float)))
        rows.append(f"| {b.get('name', '?')} | {b.get('real_time', 0.0) * scale:.1f} | {counters} |")
    if rows:
        print("| benchmark | time (us) | counters |")
        print("| --- | ---: | --- |")
        print("\n".join(rows))
        print()
    for reason, n in skipped.items():
        print(f"{n} benchmark(s) skipped: {reason}\n")
PY
  } > "$out/report.md.tmp" && mv "$out/report.md.tmp" "$out/report.md"
  tar -czf "$out/logs.tar.gz" -C "$build" gpu_check_logs 2>/dev/null
  if [ -n "$copy_to" ]; then
    # Three files (a device run returns at most eight): the report, the logs, and the JSON files in one archive.
    mkdir -p "$copy_to" && cp "$out"/report.md "$out"/logs.tar.gz "$copy_to"/ &&
      (cd "$out" && ls *.json >/dev/null 2>&1 && tar -czf "$copy_to/bench_json.tar.gz" *.json || true)
  fi
}

build_status=0
if [ "$skip_build" = 0 ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  t0=$(date +%s)
  echo "gpu_check: configuring and building $(echo $gpu_tests $build_benches | wc -w) targets in $build"
  # The tests first, as their own build, so a budget that runs out while the benchmarks build still tests.
  { cmake -S . -B "$build" "${generator[@]}" "${cmake_args[@]}" &&
    cmake --build "$build" -j "$jobs" --target $gpu_tests; } > "$logs/build.log" 2>&1 || build_status=$?
  step_row "build: configure + gpu tests" "$([ "$build_status" = 0 ] && echo ok || echo "FAILED (exit $build_status)")" $(($(date +%s) - t0))
  tail -5 "$logs/build.log"
  write_report
fi

# ---- tests: one program at a time, so each gets its own row, log and time limit ----
test_status=0
if [ "$build_status" = 0 ] && [ "$skip_tests" = 0 ]; then
  : > "$test_rows"
  t0=$(date +%s)
  for t in $gpu_tests; do
    left=$(seconds_left)
    if [ "$left" -lt 20 ]; then
      echo "| $t | not run: budget spent | | |" >> "$test_rows"; test_status=1; continue
    fi
    limit=$((left - 10)); [ "$limit" -gt 600 ] && limit=600
    log="$logs/test-$t.log"
    s0=$(date +%s)
    status=0
    (cd "$build" && ctest -V -R "^$t\$" --timeout "$limit") > "$log" 2>&1 || status=$?
    secs=$(($(date +%s) - s0))
    # gtest's closing counts (ctest -V prefixes each line with the test's number), and a whole program's skip reason.
    summary=$(grep -oE "\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?" "$log" | sed -E 's/\[ +//; s/ +\]//' | sort -u | tr '\n' ' ')
    reason=$(grep -m1 -oE "(no CUDA device|no GPU|CUDA is not built)[^|]{0,80}" "$log")
    summary="${summary}${reason:+($reason)}"
    if grep -q "Timeout" "$log"; then result="FAILED (timed out after $limit s)"; test_status=1
    elif [ "$status" != 0 ]; then result="FAILED"; test_status=1
    elif grep -q "(Skipped)\|\*\*\*Skipped" "$log" || { grep -q "\[  SKIPPED \]" "$log" && ! grep -q "\[  PASSED  \] [1-9]" "$log"; }; then result="skipped"
    else result="passed"; fi
    echo "| $t | $result | $secs | ${summary:-see the log} |" >> "$test_rows"
    echo "gpu_check: $t: $result ($secs s)"
    write_report
  done
  step_row "tests" "$([ "$test_status" = 0 ] && echo "all passed" || echo "FAILURES")" $(($(date +%s) - t0))
fi

# ---- compute-sanitizer: memcheck (caching off), racecheck ----
sanitizer_status=0
if [ "$build_status" = 0 ] && [ "$skip_sanitizer" = 0 ]; then
  t0=$(date +%s)
  rm -f "$logs/sanitizer_rows.md"
  if ! command -v compute-sanitizer >/dev/null; then
    for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do [ -x "$d/compute-sanitizer" ] && PATH="$d:$PATH"; done
  fi
  if ! command -v compute-sanitizer >/dev/null; then
    found=$(find /usr /opt -name compute-sanitizer -type f -perm -u+x 2>/dev/null | head -1)
    [ -n "$found" ] && PATH="$(dirname "$found"):$PATH"
  fi
  if command -v compute-sanitizer >/dev/null; then
    for t in $gpu_tests; do
      for tool in memcheck racecheck; do
        log="$logs/sanitizer-$tool-$t.log"
        status=0
        FG_CUDA_NO_CACHING=$([ "$tool" = memcheck ] && echo 1 || echo 0) \
          timeout 900 compute-sanitizer --tool "$tool" --error-exitcode 99 "$build/$t" > "$log" 2>&1 || status=$?
        summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -1)
        [ "$status" != 0 ] && sanitizer_status=1
        echo "| $t | $tool | $([ "$status" = 0 ] && echo clean || echo "FAILED (exit $status)") | ${summary:-no summary line} |" \
          >> "$logs/sanitizer_rows.md"
        echo "gpu_check: $tool $t: exit $status ${summary}"
        write_report
      done
    done
  else
    echo "| (all) | - | not run: compute-sanitizer not found | |" > "$logs/sanitizer_rows.md"
    sanitizer_status=1
  fi
  step_row "compute-sanitizer" "$([ "$sanitizer_status" = 0 ] && echo clean || echo "FINDINGS or not run")" $(($(date +%s) - t0))
fi

# ---- benchmarks ----
if [ "$build_status" = 0 ] && [ "$skip_bench" = 0 ]; then
  bench_build=0
  if [ "$skip_build" = 0 ] && [ -n "$gpu_benches" ]; then
    t0=$(date +%s)
    if [ "$(seconds_left)" -gt 60 ]; then
      timeout $(( $(seconds_left) - 30 )) cmake --build "$build" -j "$jobs" --target $gpu_benches >> "$logs/build.log" 2>&1 || bench_build=$?
      step_row "build: benchmarks" "$([ "$bench_build" = 0 ] && echo ok || echo "FAILED or cut (exit $bench_build)")" $(($(date +%s) - t0))
    else
      bench_build=1
      step_row "build: benchmarks" "not run: budget spent" 0
    fi
    write_report
  fi
  t0=$(date +%s)
  for b in $gpu_benches; do
    [ -x "$build/$b" ] || continue
    left=$(seconds_left)
    if [ "$left" -lt 30 ]; then step_row "benchmark $b" "not run: budget spent" 0; continue; fi
    filter=()
    cap=100000
    if [ "$full_bench" = 0 ]; then
      filter=("--benchmark_filter=$(short_filter "$b")")
      cap=60  # the short set: at most a minute a suite, about two in all
    fi
    limit=$((left - 15)); [ "$limit" -gt "$cap" ] && limit=$cap
    echo "gpu_check: benchmark $b (at most $limit s)"
    s0=$(date +%s)
    status=0
    timeout "$limit" "$build/$b" "${filter[@]}" --benchmark_out="$bench_json/$b.json" --benchmark_out_format=json \
      --benchmark_min_time="$min_time" --benchmark_counters_tabular=true > "$logs/$b.log" 2>&1 || status=$?
    step_row "benchmark $b" "$([ "$status" = 0 ] && echo ok || echo "exit $status$([ "$status" = 124 ] && echo ": cut at $limit s, JSON lost; see its log")")" $(($(date +%s) - s0))
    write_report
  done
fi

write_report
echo "gpu_check: report written to $out/report.md ($(elapsed) s in all)"
if [ "$build_status" != 0 ] || [ "$test_status" != 0 ] || [ "$sanitizer_status" != 0 ]; then exit 1; fi
exit 0
