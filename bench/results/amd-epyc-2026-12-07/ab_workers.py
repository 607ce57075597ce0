#!/usr/bin/env python3
# Usage: OMP_NUM_THREADS=1 python3 ab_workers.py OLD/compare_worker NEW/compare_worker REPS <compare_worker args>
# (docs/cpu_kernels.md, "Convolution around the GEMM"). Prints one JSON line.
# A/B of two compare_worker builds, alternating one repetition at a time (same protocol as tools/bench_compare.py).
import json, os, subprocess, sys, statistics
base, new, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
wargs = sys.argv[4:]
env = dict(os.environ)
env.setdefault("OMP_NUM_THREADS", "1"); env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"]
def start(binary):
    p = subprocess.Popen([binary] + wargs, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    json.loads(p.stdout.readline()); return p
def step(p):
    p.stdin.write("step\n"); p.stdin.flush(); return json.loads(p.stdout.readline())["seconds"]
ws = {"base": start(base), "new": start(new)}
for k in ws: step(ws[k])  # warm-up
t = {"base": [], "new": []}
loads = [os.getloadavg()[0]]
for r in range(reps):
    for k in ("base", "new"):
        t[k].append(step(ws[k]))
    loads.append(os.getloadavg()[0])
for p in ws.values():
    p.stdin.write("quit\n"); p.stdin.flush(); p.wait()
mb, mn = statistics.median(t["base"]), statistics.median(t["new"])
print(json.dumps({"args": " ".join(wargs), "threads": env["OMP_NUM_THREADS"], "base": t["base"], "new": t["new"],
                  "median_base": mb, "median_new": mn, "new_over_base": round(mn / mb, 3),
                  "pair_ratios": [round(b2 / b1, 3) for b1, b2 in zip(t["base"], t["new"])],
                  "load1": [round(l, 2) for l in loads]}))
