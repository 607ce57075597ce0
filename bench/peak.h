// The rate counters every CPU benchmark reports against the CPU's f32 FMA peak (measured by apps/bench_peak.h,
// which `filmgrad bench` shares; see there for how the peak is derived).
#pragma once
#include <benchmark/benchmark.h>

#include "apps/bench_peak.h"

namespace fg::bench {

// Counters of one benchmark iteration doing `flops` flops and moving at least `bytes` bytes, against `peak` flop/s:
// FLOP/s, bytes/s, and pct_peak (100 * achieved flop/s / peak). All are rates over the iterations' (real) time.
inline void report_rates(benchmark::State& state, double flops, double bytes, double peak) {
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] = benchmark::Counter(100.0 * flops / peak, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace fg::bench
