#!/usr/bin/env bash
# Runs bench_distributed (data-parallel costs, docs/distributed.md) on 1 rank with 1 and 2 OpenMP threads and on 2
# ranks with 1 thread each (the same 2 cores), writing Google Benchmark JSON to bench/results/dist-<date>/.
#   tools/run_dist_bench.sh [BUILD]
set -euo pipefail
build=${1:-build}
command -v mpirun >/dev/null || { echo "run_dist_bench: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
[ -x "$build/bench_distributed" ] || { echo "run_dist_bench: $build/bench_distributed not built (needs MPI)" >&2; exit 1; }
out="bench/results/dist-$(date +%Y-%m-%d)"
mkdir -p "$out"
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
for threads in 1 2; do
  echo "== 1 rank, $threads thread(s)"
  OMP_NUM_THREADS=$threads mpirun "${root[@]}" -np 1 -x OMP_NUM_THREADS "$build/bench_distributed" \
    --benchmark_out="$out/bench_distributed_1rank_${threads}threads.json" --benchmark_out_format=json
done
echo "== 2 ranks, 1 thread each"
OMP_NUM_THREADS=1 mpirun "${root[@]}" --oversubscribe -np 2 -x OMP_NUM_THREADS "$build/bench_distributed" \
  --benchmark_out="$out/bench_distributed_2ranks_1thread.json" --benchmark_out_format=json
echo "results in $out"
