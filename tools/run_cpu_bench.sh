#!/usr/bin/env bash
# Runs every CPU benchmark of BUILD (default: build) with 1 and 2 threads and writes Google Benchmark JSON to
# bench/results/cpu-<date>/. When Debian's python3-torch is present, PyTorch's training step is timed first on
# the same shapes so bench_train_step can report both. bench_cuda_* (GPU suites: tools/gpu_check.sh) are left out;
# bench_restore_memory (a 24-megapixel restore, about a quarter of an hour) runs only with FG_BENCH_MEMORY=1.
set -euo pipefail
build=${1:-build}
out="bench/results/cpu-$(date +%Y-%m-%d)"
mkdir -p "$out"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 tools/bench_torch_step.py --out "$out/torch_train_step.json"
  export FG_TORCH_STEP_JSON="$out/torch_train_step.json"
else
  echo "run_cpu_bench: python3-torch not installed, PyTorch comparison skipped (apt-get install python3-torch)"
fi
lscpu > "$out/cpu.txt"
for b in "$build"/bench_*; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  case "$name" in
    bench_cuda_*) continue ;;
    bench_restore_memory) [ "${FG_BENCH_MEMORY:-0}" = 1 ] || { echo "== $name skipped (FG_BENCH_MEMORY=1 runs it)"; continue; } ;;
  esac
  echo "== $name"
  "$b" --benchmark_out="$out/$name.json" --benchmark_out_format=json --benchmark_min_time=0.2 \
       --benchmark_counters_tabular=true
done
echo "results in $out"
