#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) in build-fuzz/ with clang, ASan and UBSan, and runs each
# over its committed seed corpus (fuzz/corpus/<target>/) for SECONDS seconds, one process each.
#   tools/run_fuzz.sh [SECONDS]       default 30 per target; CI runs 'bash tools/run_fuzz.sh 20'
#   tools/run_fuzz.sh --corpus        rewrite the seed corpus with fg_make_corpus (then review and commit it)
# Exits non-zero on any finding (a crash, a sanitizer report, a leak, an input slower than 10 s or one needing
# more than 2 GB), naming the target and the file that reproduces it: rerun it with
#   build-fuzz/fuzz/fuzz_<target> FILE
# New inputs the fuzzers find go to build-fuzz/corpus/<target>/ (kept between runs, never committed by this).
# FUZZ_TARGETS="json cmdline" limits the run to those targets.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=run
seconds=30
case "${1:-}" in
  --corpus) mode=corpus ;;
  "") ;;
  *)
    if ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
      echo "filmgrad: error: run_fuzz.sh takes a number of seconds per target or --corpus, got '$1'" >&2
      exit 2
    fi
    seconds=$1
    ;;
esac
targets=(${FUZZ_TARGETS:-image safetensors checkpoint json cmdline})

bash tools/install_deps.sh --fuzz

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
jobs=$(nproc)
start=$(date +%s)
# Portable code (FG_NATIVE=OFF): see FG_CPU_KERNELS below. Warnings are not errors in this build: CI's -Werror
# build is the gcc one, and clang under ASan warns about
# optimisations it cannot make (e.g. an `omp simd` loop it does not vectorise once instrumented).
CC=clang CXX=clang++ cmake -S . -B build-fuzz "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DFG_FUZZ=ON -DFG_NATIVE=OFF -DFG_WERROR=OFF -DFG_WITH_CUDA=OFF -DFG_BUILD_BENCH=OFF -DFG_BUILD_TESTS=OFF >/dev/null
build_targets=(fg_make_corpus)
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build build-fuzz -j "$jobs" --target "${build_targets[@]}"
echo "filmgrad: fuzz build done in $(( $(date +%s) - start )) s"

if [ "$mode" = corpus ]; then
  build-fuzz/fuzz/fg_make_corpus fuzz/corpus
  du -sh fuzz/corpus
  exit 0
fi

# The runtime's own threads (OpenMP, OpenBLAS) stay single: the fuzzers measure coverage, not speed.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# The same code on every CPU, so that coverage, and with it what a seeded run tries, does not depend on the machine:
# the build is portable (-DFG_NATIVE=OFF above) and the GEMM takes its portable path instead of the one cpuid picks.
export FG_CPU_KERNELS=generic
# CI fuzzes a fixed number of inputs per target from a fixed seed (-runs, -seed=1): libFuzzer then tries the same
# inputs in the same order on any machine, so a submission is failed only by what its own code changed, never by
# how fast the machine happened to be (a time limit with a fixed seed is not enough: a faster run goes further).
# Six times SECONDS is then the cap, for a slow machine. By hand (CI unset) each run explores afresh for
# SECONDS. FUZZ_SEED=N sets the seed either way; FUZZ_RUNS=N sets the count for every target.
seed=()
if [ -n "${FUZZ_SEED:-}" ]; then seed=(-seed="$FUZZ_SEED"); elif [ "${CI:-}" = true ]; then seed=(-seed=1); fi
# About 15 s each on an idle development machine. Inputs per second change as a run goes (fuzz_image fell from
# about 2,000 to 240 once it reached large images), so the counts are set well inside the cap.
declare -A ci_runs=([image]=10000 [safetensors]=300000 [checkpoint]=8000 [json]=100000 [cmdline]=200000)
failed=()
for t in "${targets[@]}"; do
  findings="build-fuzz/findings/$t"
  scratch="build-fuzz/corpus/$t"
  mkdir -p "$findings" "$scratch"
  dict=()
  if [ -f "fuzz/dictionaries/$t.dict" ]; then dict=(-dict="fuzz/dictionaries/$t.dict"); fi
  log="build-fuzz/findings/$t.log"
  set +e
  runs_limit=()
  if [ -n "${FUZZ_RUNS:-}" ]; then runs_limit=(-runs="$FUZZ_RUNS")
  elif [ "${CI:-}" = true ]; then runs_limit=(-runs="${ci_runs[$t]}"); fi
  cap=$seconds
  if [ ${#runs_limit[@]} -ne 0 ]; then cap=$(( 6 * seconds )); fi
  echo "filmgrad: fuzzing $t for ${runs_limit[0]:+${runs_limit[0]#-runs=} inputs, at most }$cap s"
  "build-fuzz/fuzz/fuzz_$t" "${runs_limit[@]}" -max_total_time="$cap" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    "${seed[@]}" "${dict[@]}" -artifact_prefix="$findings/" "$scratch" "fuzz/corpus/$t" >"$log" 2>&1
  status=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "filmgrad: FINDING in fuzz_$t (status $status): ${artifact:-no input written}; log: $log" >&2
    grep -m 5 -E 'ERROR|FUZZ FINDING|runtime error|deadly signal|out-of-memory|timeout' "$log" >&2 || true
    failed+=("$t")
  else
    echo "filmgrad: fuzz_$t: ${runs:-?} runs, ${cov:-cov: ?}, no findings"
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "filmgrad: error: the fuzzers found problems in: ${failed[*]} (inputs under build-fuzz/findings/)" >&2
  exit 1
fi
echo "filmgrad: fuzzing done in $(( $(date +%s) - start )) s, no findings"
