#!/usr/bin/python3
"""filmgrad against PyTorch on the CPU, side by side: `make bench-compare` (docs/cpu_kernels.md, "Comparing with
PyTorch").

For every row (a network, a workload, a shape) and every thread count, two long-lived workers build the same
network: filmgrad's (build/compare_worker, bench/compare_worker.cpp) and PyTorch's twin (this script with
--torch-worker, the networks of tools/torch_twins.py). Their parameter counts (total and trainable) must agree.
After a warm-up the runner asks them for one repetition at a time, alternately (filmgrad, PyTorch, filmgrad,
PyTorch, ...), so that both see the same machine load; an idle worker waits on its stdin and takes no CPU. It
writes one table, markdown and JSON, with the median, the spread and the ratio filmgrad / PyTorch (below 1:
filmgrad is faster), and records the CPU, the kernels each side runs, the thread counts and the load average at
the start and end of the run and of every row.

Rows (ids for --filter):
  train/dynamic_unet_frozen/<S>px_b<N>   training step: forward, MSE in ImageNet-normalised space, backward, AdamW
                                         (lr 1e-3, weight decay 1e-3); the encoder frozen except its BatchNorms
  train/dynamic_unet/<S>px_b<N>          the same, nothing frozen
  train/cross_channel/<S>px_b<N>         the full cross-channel network, BCE(mask) + MSE(B') + MSE(B''), AdamW
                                         (lr 1e-4, weight decay 1e-2)
  infer/dynamic_unet/<S>px_b1            eval mode, no gradients: normalise, network, de-normalise
  infer/cross_channel/<S>px_b1           eval mode, no gradients: the three sub-networks
Training at 64 px batch 8 and 128 px batch 4; inference at 256, 512 and 1024 px batch 1 (--quick: training at
64 px batch 8 and inference at 256 px only, fewer repetitions).

Usage (Debian's Python, which has python3-torch; `make bench-compare` builds the worker first):
    /usr/bin/python3 tools/bench_compare.py [--quick] [--filter REGEX] [--threads 1,2] [--reps N]
                                            [--build build] [--out DIR] [--width 1.0]
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's, as apps/task.cpp normalises the Dynamic U-Net's input
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------------------------
# The rows.

def all_rows():
    rows = []
    for size, batch in ((64, 8), (128, 4)):
        for model, frozen in (("dynamic_unet", True), ("dynamic_unet", False), ("cross_channel", False)):
            name = model + ("_frozen" if frozen else "")
            rows.append({"id": "train/%s/%dpx_b%d" % (name, size, batch), "mode": "train", "model": model,
                         "frozen": frozen, "size": size, "batch": batch})
    for size in (256, 512, 1024):
        for model in ("dynamic_unet", "cross_channel"):
            rows.append({"id": "infer/%s/%dpx_b1" % (model, size), "mode": "infer", "model": model, "frozen": False,
                         "size": size, "batch": 1})
    return rows


QUICK_ROWS = re.compile(r"^(train/.*/64px_b8|infer/.*/256px_b1)$")


def describe(row):
    what = {"dynamic_unet": "Dynamic U-Net", "cross_channel": "cross-channel"}[row["model"]]
    if row["mode"] == "train":
        what += " training step" + (", encoder frozen except BN" if row["frozen"] else
                                    (", all trainable" if row["model"] == "dynamic_unet" else ""))
    else:
        what += " inference"
    return "%s, %d px, batch %d" % (what, row["size"], row["batch"])


# ---------------------------------------------------------------------------------------------------------------
# The PyTorch worker (runs in its own process: --torch-worker).

def torch_worker(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    sys.path.insert(0, TOOLS)
    from torch_twins import CrossChannelNet, DynamicUNet, combined_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    start = time.perf_counter()
    if args.model == "dynamic_unet":
        net = DynamicUNet(args.width)
        # filmgrad's freeze_encoder(): the encoder's convolutions frozen, its BatchNorms trainable.
        for p in net.encoder.parameters():
            p.requires_grad_(not args.frozen)
        for m in net.encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                for p in m.parameters():
                    p.requires_grad_(True)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out_channels, lr, weight_decay = 3, 1e-3, 1e-3
    else:
        net = CrossChannelNet("full", args.width)
        out_channels, lr, weight_decay = 1, 1e-4, 1e-2
    x = torch.rand(args.batch, 3, args.size, args.size)
    trainable = [p for p in net.parameters() if p.requires_grad]
    if args.mode == "train":
        net.train()
        opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
        target = torch.rand(args.batch, out_channels, args.size, args.size)
        mask = torch.rand(args.batch, 1, args.size, args.size)

        def run_once():
            opt.zero_grad()
            if args.model == "dynamic_unet":
                loss = F.mse_loss(net((x - mean) / std), (target - mean) / std)
            else:
                loss = combined_loss(net.forward_all(x), mask, target)
            loss.backward()
            opt.step()
            return loss.item()
    else:
        net.eval()

        def run_once():
            with torch.no_grad():
                if args.model == "dynamic_unet":
                    y = net((x - mean) / std) * std + mean
                else:
                    y = net.forward_all(x)["b_final"]
            return float(y.numel())

    ready = {"ready": True, "parameters": sum(p.numel() for p in net.parameters()),
             "trainable": sum(p.numel() for p in trainable) if args.mode == "train" else 0,
             "threads": torch.get_num_threads(), "setup_s": round(time.perf_counter() - start, 3)}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            break
        if line != "step":
            sys.exit("bench_compare.py --torch-worker: unknown command '%s' (step or quit)" % line)
        t0 = time.perf_counter()
        check = run_once()
        print(json.dumps({"seconds": time.perf_counter() - t0, "check": check}), flush=True)


def torch_info():
    """What the PyTorch side runs: version, build configuration, and OpenBLAS's core when PyTorch loaded OpenBLAS."""
    import ctypes

    import torch

    info = {"torch_version": torch.__version__, "mkldnn_available": torch.backends.mkldnn.is_available(),
            "parallel_info": torch.__config__.parallel_info().strip()}
    try:
        torch.zeros(64, 64) @ torch.zeros(64, 64)  # makes PyTorch load its BLAS
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "openblas" in line.split()[-1].lower()})
        if libs:
            lib = ctypes.CDLL(libs[0])
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            info["openblas"] = "%s, core %s (%s)" % (lib.openblas_get_config().decode(),
                                                    lib.openblas_get_corename().decode(), libs[0])
        else:
            info["openblas"] = "not loaded"
    except (OSError, AttributeError) as e:
        info["openblas"] = "unknown (%s)" % e
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    info["blas_info"] = blas.group(1) if blas else "unknown"
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------------------------------
# The runner.

class WorkerError(Exception):
    pass


class Worker:
    def __init__(self, name, argv, threads):
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(threads)
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        self.name = name
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)
        self.ready = self._read()
        if not self.ready.get("ready"):
            raise WorkerError("%s: unexpected first line %r" % (name, self.ready))

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip()
            self.proc.wait()
            sys.stderr.write(err + "\n")
            # The last line says what went wrong (a Python traceback's last line is the exception).
            raise WorkerError("%s exited (status %s): %s; command: %s" %
                              (self.name, self.proc.returncode, err.splitlines()[-1] if err else "no message",
                               shlex.join(self.argv)))
        return json.loads(line)

    def step(self):
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return self._read()["seconds"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.processor() or "unknown", []
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    family = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M)
    number = re.search(r"^model\s*:\s*(\d+)$", text, re.M)
    name = model.group(1).strip() if model else "unknown"
    if family and number:
        name += " (family %s model %s)" % (family.group(1), number.group(1))
    wanted = ("avx512f", "avx512_fp16", "amx_tile", "avx2", "fma")
    have = flags.group(1).split() if flags else []
    return name, [f for f in wanted if f in have]


def machine_slug(model):
    words = re.sub(r"\(.*?\)|\b(processor|cpu|with|radeon|graphics|\d+-core)\b|@.*", " ", model.lower())
    slug = "-".join(w for w in re.split(r"[^a-z0-9]+", words) if w)
    return slug[:40] or "cpu"


def run_capture(argv, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return "unavailable (%s)" % e


def filmgrad_openblas(filmgrad_bin):
    """The OpenBLAS filmgrad links (its twin GEMM), from `FG_CPU_GEMM=openblas filmgrad version`."""
    text = run_capture([filmgrad_bin, "version"], {"FG_CPU_GEMM": "openblas"})
    line = [l for l in text.splitlines() if l.startswith("cpu gemm:")]
    return line[0][len("cpu gemm:"):].strip() if line else text


def summarise(times):
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times),
            "spread_pct": 100.0 * (max(times) - min(times)) / med if med > 0 else 0.0, "all_s": times}


def time_row(row, threads, args, worker_bin):
    fg_argv = [worker_bin, "--model", row["model"], "--mode", row["mode"], "--size", str(row["size"]),
               "--batch", str(row["batch"]), "--width", repr(args.width)] + (["--frozen"] if row["frozen"] else [])
    pt_argv = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--model", row["model"], "--mode",
               row["mode"], "--size", str(row["size"]), "--batch", str(row["batch"]), "--width", repr(args.width),
               "--threads", str(threads)] + (["--frozen"] if row["frozen"] else [])
    result = {"id": row["id"], "what": describe(row), "threads": threads, "load_start": loadavg()}
    workers = []
    try:
        # One at a time: their set-ups (tens of seconds for the big networks) do not overlap the other's timing.
        fg = Worker("filmgrad (compare_worker)", fg_argv, threads)
        workers.append(fg)
        pt = Worker("PyTorch (bench_compare.py --torch-worker)", pt_argv, threads)
        workers.append(pt)
        result["parameters"] = {"filmgrad": [fg.ready["parameters"], fg.ready["trainable"]],
                                "pytorch": [pt.ready["parameters"], pt.ready["trainable"]]}
        result["gemm"] = fg.ready.get("gemm")
        result["ready"] = {"filmgrad": fg.ready, "pytorch": pt.ready}  # each side's own thread count and set-up time
        if fg.ready.get("threads") != threads or pt.ready.get("threads") != threads:
            raise WorkerError("a worker runs another thread count than %d: filmgrad %s, PyTorch %s" %
                              (threads, fg.ready.get("threads"), pt.ready.get("threads")))
        if result["parameters"]["filmgrad"] != result["parameters"]["pytorch"]:
            raise WorkerError("the two networks differ: filmgrad has %d parameters (%d trainable), PyTorch %d (%d)" %
                              tuple(result["parameters"]["filmgrad"] + result["parameters"]["pytorch"]))
        for _ in range(args.warmup):
            fg.step()
            pt.step()
        fg_times, pt_times = [], []
        for _ in range(args.reps):
            fg_times.append(fg.step())
            pt_times.append(pt.step())
    except WorkerError as e:
        result["error"] = str(e)
        print("  error: %s" % e, file=sys.stderr)
        return result
    finally:
        for w in workers:
            w.close()
    result["filmgrad"] = summarise(fg_times)
    result["pytorch"] = summarise(pt_times)
    result["ratio"] = result["filmgrad"]["median_s"] / result["pytorch"]["median_s"]
    pair = [a / b for a, b in zip(fg_times, pt_times)]
    result["pair_ratio"] = {"median": statistics.median(pair), "min": min(pair), "max": max(pair)}
    result["load_end"] = loadavg()
    return result


def fmt_s(seconds):
    return "%.3f s" % seconds if seconds < 10 else "%.1f s" % seconds


def fmt_load(load):
    return "%.2f %.2f %.2f" % tuple(load)


def markdown(report):
    m = report["machine"]
    lines = []
    title = "filmgrad vs PyTorch on the CPU" + (" (QUICK run: subset, few repetitions)" if report["quick"] else "")
    lines.append("# " + title)
    lines.append("")
    if not report["complete"]:
        lines.append("**Incomplete**: the run stopped (or is still running) after the rows below.")
        lines.append("")
    lines.append("Written by `%s` on %s (%s to %s UTC)." % (report["command"], m["hostname"], report["started_utc"],
                                                          report["finished_utc"]))
    lines.append("")
    if report["busy"]:
        lines.append("**The machine was busy** (other jobs were running: load average %s at the start, %s at the end, "
                     "on %d CPUs; this run itself adds about its thread count). These are NOT idle-machine figures: "
                     "absolute times are inflated, and the ratios are only as good as the alternation makes them."
                     % (fmt_load(report["load_start"]), fmt_load(report["load_end"]), m["cpus"]))
    else:
        lines.append("Load average %s at the start, %s at the end, on %d CPUs." %
                     (fmt_load(report["load_start"]), fmt_load(report["load_end"]), m["cpus"]))
    lines.append("")
    lines.append("| | |")
    lines.append("| --- | --- |")
    lines.append("| CPU | %s; %s |" % (m["cpu"], " ".join(m["cpu_flags"]) or "no AVX2/AVX-512 flags"))
    # Without "openmp threads": that is the runner's default, not the workers' (the threads row below).
    version = [l for l in report["filmgrad"]["version"].splitlines() if not l.startswith("openmp threads")]
    lines.append("| filmgrad | %s |" % "; ".join(version))
    lines.append("| filmgrad's OpenBLAS (not used unless FG_CPU_GEMM=openblas) | %s |" %
                 report["filmgrad"]["openblas"])
    t = report["pytorch"]
    lines.append("| PyTorch | %s, BLAS %s, mkldnn %s |" % (t.get("torch_version"), t.get("blas_info"),
                                                           "available" if t.get("mkldnn_available") else "absent"))
    lines.append("| PyTorch's OpenBLAS | %s |" % t.get("openblas"))
    lines.append("| threads | %s (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS of both workers; PyTorch also "
                 "torch.set_num_threads) |" % ", ".join(str(x) for x in report["threads"]))
    lines.append("| repetitions | %d timed per side and row, after %d warm-up, alternating filmgrad / PyTorch |" %
                 (report["reps"], report["warmup"]))
    lines.append("| network width | %g |" % report["width"])
    lines.append("")
    lines.append("Times are the wall time of one repetition: median (min-max) over the repetitions. ratio = filmgrad "
                 "median / PyTorch median: below 1 filmgrad is faster. pairs: the range of filmgrad / PyTorch over "
                 "adjacent repetitions. parameters: total / trainable, the same on both sides (checked).")
    lines.append("")
    lines.append("| row | threads | filmgrad | PyTorch | ratio | pairs | parameters | load at row start |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in report["rows"]:
        if "error" in r:
            lines.append("| %s | %d | error: %s | | | | | %s |" % (r["what"], r["threads"],
                                                                r["error"].replace("\n", " ").replace("|", "/"),
                                                                fmt_load(r["load_start"])))
            continue
        f, p = r["filmgrad"], r["pytorch"]
        params = r["parameters"]["filmgrad"]
        lines.append("| %s | %d | %s (%s-%s) | %s (%s-%s) | **%.2f** | %.2f-%.2f | %s / %s | %s |" % (
            r["what"], r["threads"], fmt_s(f["median_s"]), fmt_s(f["min_s"]), fmt_s(f["max_s"]),
            fmt_s(p["median_s"]), fmt_s(p["min_s"]), fmt_s(p["max_s"]), r["ratio"], r["pair_ratio"]["min"],
            r["pair_ratio"]["max"], "{:,}".format(params[0]), "{:,}".format(params[1]) if params[1] else "-",
            fmt_load(r["load_start"])))
    lines.append("")
    return "\n".join(lines)


def write_report(report, out_dir, stem, threads, done):
    report["load_end"] = loadavg()
    report["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    report["complete"] = done
    # Busy: the 1-minute load before this run started is half a CPU or more, or at some row's start it exceeds
    # this run's own threads by that much.
    report["busy"] = (report["load_start"][0] >= 0.5 or
                      any(r["load_start"][0] - max(threads) >= 0.5 for r in report["rows"]))
    write_atomic(os.path.join(out_dir, stem + ".json"), json.dumps(report, indent=1) + "\n")
    write_atomic(os.path.join(out_dir, stem + ".md"), markdown(report))


def write_atomic(path, text):
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="training at 64 px and inference at 256 px only, 3 reps")
    ap.add_argument("--filter", default=None, help="a regular expression the row ids must match (re.search)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per side (default 5; --quick 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed repetitions per side first (default 1)")
    ap.add_argument("--width", type=float, default=1.0, help="network width multiplier (default 1: the real ones)")
    ap.add_argument("--build", default="build", help="the build folder holding compare_worker and filmgrad")
    ap.add_argument("--out", default=None, help="output folder (default bench/results/<machine>-<date>)")
    ap.add_argument("--list", action="store_true", help="print the row ids and exit")
    # The PyTorch worker and the PyTorch description (internal).
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-info", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--frozen", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.torch_worker:
        args.threads = int(args.threads)
        torch_worker(args)
        return
    if args.torch_info:
        torch_info()
        return

    try:
        threads = [int(t) for t in args.threads.split(",")]
        if not threads or min(threads) < 1:
            raise ValueError
    except ValueError:
        sys.exit("bench_compare.py: error: --threads needs positive integers separated by commas, got '%s'" %
                 args.threads)
    args.reps = reps = args.reps if args.reps is not None else (3 if args.quick else 5)
    if reps < 1 or args.warmup < 0:
        sys.exit("bench_compare.py: error: --reps must be >= 1 and --warmup >= 0")
    try:
        pattern = re.compile(args.filter) if args.filter else None
    except re.error as e:
        sys.exit("bench_compare.py: error: --filter '%s' is not a regular expression: %s" % (args.filter, e))
    rows = [r for r in all_rows() if (not args.quick or QUICK_ROWS.match(r["id"]))
            and (pattern is None or pattern.search(r["id"]))]
    if args.list:
        for r in rows:
            print("%-34s %s" % (r["id"], describe(r)))
        return
    if not rows:
        sys.exit("bench_compare.py: error: no row matches --filter '%s' (see --list)" % args.filter)

    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    worker_bin = os.path.join(build, "compare_worker")
    filmgrad_bin = os.path.join(build, "filmgrad")
    for b in (worker_bin, filmgrad_bin):
        if not os.access(b, os.X_OK):
            sys.exit("bench_compare.py: error: %s is missing; build it first (make bench-compare builds it, or "
                     "cmake --build %s --target compare_worker filmgrad_app)" % (b, args.build))
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    if probe.returncode != 0:
        sys.exit("bench_compare.py: error: this Python (%s) has no PyTorch; run it with /usr/bin/python3 after "
                 "'bash tools/install_deps.sh --golden' (Debian's python3-torch)" % sys.executable)

    cpu, flags = cpu_model()
    started = datetime.datetime.now(datetime.timezone.utc)
    out_dir = args.out or os.path.join(ROOT, "bench", "results",
                                       "%s-%s" % (machine_slug(cpu), started.strftime("%Y-%m-%d")))
    os.makedirs(out_dir, exist_ok=True)
    stem = "compare.quick" if args.quick else "compare"
    if args.filter:
        stem += ".filtered"

    report = {
        "command": "tools/bench_compare.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "started_utc": started.strftime("%Y-%m-%d %H:%M"), "quick": args.quick, "filter": args.filter,
        "threads": threads, "reps": reps, "warmup": args.warmup, "width": args.width,
        "machine": {"cpu": cpu, "cpu_flags": flags, "cpus": os.cpu_count(), "hostname": socket.gethostname(),
                    "kernel": platform.release()},
        "load_start": loadavg(),
        "filmgrad": {"version": run_capture([filmgrad_bin, "version"]),
                     "openblas": filmgrad_openblas(filmgrad_bin)},
        "pytorch": json.loads(run_capture([sys.executable, os.path.abspath(__file__), "--torch-info"]) or "{}"),
        "rows": [],
    }
    print("bench_compare: %d rows x threads %s, %d reps; load %s; writing %s/%s.{md,json}" %
          (len(rows), args.threads, reps, fmt_load(report["load_start"]), os.path.relpath(out_dir, ROOT), stem))
    for row in rows:
        for t in threads:
            print("== %s, %d thread%s" % (row["id"], t, "" if t == 1 else "s"), flush=True)
            r = time_row(row, t, args, worker_bin)
            report["rows"].append(r)
            if "ratio" in r:
                print("   filmgrad %s  PyTorch %s  ratio %.2f  (load %s)" % (
                    fmt_s(r["filmgrad"]["median_s"]), fmt_s(r["pytorch"]["median_s"]), r["ratio"],
                    fmt_load(r["load_start"])), flush=True)
            # After every row, so that an interrupted run still leaves the rows it finished.
            write_report(report, out_dir, stem, threads, done=len(report["rows"]) == len(rows) * len(threads))
    print(markdown(report))
    if any("error" in r for r in report["rows"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
