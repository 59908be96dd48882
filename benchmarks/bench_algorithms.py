#!/usr/bin/env python
"""Trace memory and train-step time per online learning algorithm (pp-prop, D-RTRL, BPTT), and
each algorithm's gradient agreement with BPTT.

Part 1 (always): for every algorithm and hidden size N, network recurrent_lif(100, N, 10)
(100 Bernoulli(0.1) inputs -> N recurrent LIF neurons -> 10-way leaky readout, per-step
cross-entropy on one label per sequence), batch B, chunk K, sequences of T steps, Adam lr 1e-3.
Reported per (algorithm, N):
  trace bytes     manifest["abi"]["trace_plan"]["trace_bytes"]: all online eligibility traces (0 for BPTT)
  module bytes    sum of manifest["abi"]["memory_bytes"]: every buffer the module holds (params, grads,
                  Adam moments, states, traces, ...)
  BPTT tape (T)   manifest["abi"]["bptt_tape_bytes_per_step"] * T: what BPTT keeps for this T (for the bptt
                  row it is its real tape, held by the runtime; for the others what BPTT would need)
  s/seq, us/step  median wall time of model.train_sequence(x, labels, mask, lr) (forward, gradient,
                  optimizer update) after --warmup untimed sequences; compile excluded
  peak RSS MiB    getrusage(RUSAGE_SELF).ru_maxrss of the process that ran it
  compile s       btc compile time (in its own process)
Then: the least-squares slope of log(trace bytes) vs log(N) per algorithm (the claim to check:
D-RTRL's trace grows as N^2, pp-prop's as N), the same slope for D-RTRL's recurrent projection's
trace alone and for us/step, and each algorithm's s/seq relative to btc pp-prop at the same N
measured in this same run (ratios, not pass/fail thresholds).

Every configuration is compiled in one fresh process (`--compile ALG N DIR`, so compiler memory is
not counted) and run in another (`--one ALG N DIR`, so its peak RSS is its own); a run exceeding
--timeout is killed and reported as a timeout, its compile-time numbers (trace bytes) still kept.
All runs use the IREE driver --btc-driver (default local-sync, single-threaded: D-RTRL and BPTT
artifacts always choose it, so pp-prop uses it too for like-for-like ratios; `artifact` lets each
artifact use its own choice).

Part 2 (--gradients): recurrent_lif(100, 64, 10), B=8, T=100, one random Bernoulli(0.1) input, loss
on the last half of the steps (mask). The same network (same initial parameters) is compiled with
pp-prop, d-rtrl and bptt; each runs model.zero_grads(); model.train_sequence(x, labels, mask) (no lr:
gradients only) and model.grads is compared with BPTT's: cosine and norm ratio |g_alg| / |g_bptt|,
over all parameters concatenated and per parameter. pp-prop and D-RTRL are approximations of the
true gradient on a network with recurrence and a leaky readout, so they differ from BPTT by design:
this reports by how much.

The command whose output is in benchmarks/README.md (btc/ was being edited at the time, so the
committed btc was measured, exported to /tmp/btc_head and put first on PYTHONPATH; the first line
printed says which btc ran):

    mkdir -p /tmp/btc_head && git archive HEAD btc | tar -x -C /tmp/btc_head
    PYTHONPATH=/tmp/btc_head python benchmarks/bench_algorithms.py --n 128,512,2048 --gradients --out results.json

Without PYTHONPATH it measures the btc the environment imports (the working tree, for an editable
install).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ALGORITHMS = ("pp-prop", "d-rtrl", "bptt")
BASELINE = "pp-prop"
GRAD = {"N": 64, "B": 8, "T": 100}

# the network, the timing loop and the child-process protocol are bench_train.py's
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import C, I, LR, MARK, P_SPIKE, _parse, _time_runs, build, peak_rss_mib  # noqa: E402


# ----------------------------------------------------------------------------- compile process
def compile_main(alg: str, N: int, B: int, K: int, out_dir: str) -> None:
    from btc.driver import CompileOptions, compile_network

    t0 = time.perf_counter()
    m = compile_network(build(N), CompileOptions(algorithm=alg, batch=B, chunk=K), out_dir)
    plan = m["abi"]["trace_plan"]
    print(MARK + json.dumps({
        "compile_s": time.perf_counter() - t0,
        "trace_bytes": plan["trace_bytes"],
        "traces": {t["name"]: {"kind": t["kind"], "of": t["of"], "shape": t["shape"], "bytes": t["bytes"]}
                   for t in plan["traces"]},
        "projections": plan["projections"],
        "memory_bytes": m["abi"]["memory_bytes"],
        "module_bytes": sum(m["abi"]["memory_bytes"].values()),
        "bptt_tape_bytes_per_step": m["abi"]["bptt_tape_bytes_per_step"],
        "artifact_driver": m["hal_driver"]}), flush=True)


# ----------------------------------------------------------------------------- one configuration
def one_main(art: str, T: int, warmup: int, repeats: int, budget: float, driver: str | None) -> None:
    import numpy as np

    import btc.runtime as rt

    t0 = time.perf_counter()
    model = rt.load(art, hal_driver=driver)
    B = model.batch
    rng = np.random.default_rng(0)
    x = (rng.random((T, B, I), dtype=np.float32) < P_SPIKE).astype(np.float32)
    labels = rng.integers(0, C, size=B).astype(np.int32)
    mask = np.ones(T, np.float32)
    rss_setup = peak_rss_mib()

    def run():
        model.train_sequence(x, labels, mask, lr=LR)

    res = _time_runs(run, warmup, repeats, budget)
    sec = statistics.median(res["times"])
    res.update(status="ok", sec_per_seq=sec, us_per_step=sec / T * 1e6, rss_setup_mib=rss_setup,
               peak_rss_mib=peak_rss_mib(), driver=driver or model.manifest["hal_driver"],
               child_wall_s=time.perf_counter() - t0)
    print(MARK + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------- gradients vs BPTT
def grad_main(out_root: str) -> None:
    import numpy as np

    from btc.driver import CompileOptions, compile_network
    from btc.runtime import load

    N, B, T = GRAD["N"], GRAD["B"], GRAD["T"]
    rng = np.random.default_rng(1)
    x = (rng.random((T, B, I), dtype=np.float32) < P_SPIKE).astype(np.float32)
    labels = rng.integers(0, C, size=B).astype(np.int32)
    mask = np.zeros(T, np.float32)
    mask[T // 2:] = 1.0
    grads, init = {}, {}
    for alg in ALGORITHMS:
        d = os.path.join(out_root, alg)
        compile_network(build(N), CompileOptions(algorithm=alg, batch=B, chunk=T), d)
        model = load(d)
        init[alg] = model.params
        model.zero_grads()
        model.train_sequence(x, labels, mask)
        grads[alg] = {n: np.asarray(g, np.float64) for n, g in model.grads.items()}
    same_init = all(np.array_equal(init[a][n], init["bptt"][n]) for a in ALGORITHMS for n in init["bptt"])
    ref = grads["bptt"]
    names = list(ref)

    def compare(a, b):
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")
        return {"cosine": cos, "norm_ratio": na / nb if nb > 0 else float("nan"), "norm": na, "bptt_norm": nb}

    out = {"N": N, "B": B, "T": T, "mask": f"steps {T // 2}..{T - 1}", "same_init_params": same_init,
           "params": {n: list(ref[n].shape) for n in names}, "algorithms": {}}
    for alg in ALGORITHMS:
        if alg == "bptt":
            continue
        g = grads[alg]
        out["algorithms"][alg] = {
            "all": compare(np.concatenate([g[n].ravel() for n in names]), np.concatenate([ref[n].ravel() for n in names])),
            "per_param": {n: compare(g[n].ravel(), ref[n].ravel()) for n in names}}
    print(MARK + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- parent
def _child(args_list: list[str], timeout: float) -> tuple[str, dict | None, str]:
    """Run this script with `args_list` in a fresh process (own session: on timeout the whole group,
    and nothing else, is killed). Returns (status, parsed result or None, stderr tail)."""
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args_list], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"timeout (>{timeout:.0f} s)", None, ""
    try:
        res = _parse(out)
    except Exception:  # noqa: BLE001
        res = None
    if res is not None:
        if proc.returncode != 0:  # measured, then crashed on the way out
            res["exit_rc"] = proc.returncode
        return "ok", res, err[-4000:]
    oom = proc.returncode == -signal.SIGKILL or any(
        s in err for s in ("MemoryError", "RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "std::bad_alloc"))
    return ("out of memory" if oom else f"error (rc {proc.returncode})"), None, err[-4000:]


def run_config(alg: str, N: int, args) -> dict:
    r = {"algorithm": alg, "N": N, "B": args.b, "K": args.k, "T": args.t}
    with tempfile.TemporaryDirectory(prefix="btc-bench-alg-") as tmp:
        art = os.path.join(tmp, "artifact")
        status, info, err = _child(["--compile", alg, str(N), str(args.b), str(args.k), art], args.timeout)
        if info is None:
            return {**r, "status": f"compile {status}", "stderr": err}
        r.update(info)
        r["bptt_tape_bytes_T"] = info["bptt_tape_bytes_per_step"] * args.t
        one = ["--one", art, str(args.t), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
               "--budget", str(args.budget), "--btc-driver", args.btc_driver]
        status, res, err = _child(one, args.timeout)
    if res is None:
        return {**r, "status": status, "stderr": err}
    r.update(res)
    if res.get("exit_rc"):
        r["stderr"] = err
    return r


def _slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) vs log(x); None with fewer than two points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def _recurrent_trace_bytes(r: dict) -> int | None:
    """Bytes of the traces belonging to the recurrent projection h_to_h (D-RTRL's dense [.., B, N, N])."""
    ts = [t["bytes"] for t in r.get("traces", {}).values() if t["of"] == "h_to_h"]
    return sum(ts) if ts else None


def analyse(results: list[dict], algs: list[str]) -> dict:
    exps, ratios = {}, []
    for a in algs:
        rows = [r for r in results if r["algorithm"] == a and "trace_bytes" in r]
        Ns = [r["N"] for r in rows]
        e = {"N": Ns, "trace_bytes": _slope(Ns, [r["trace_bytes"] for r in rows]),
             "module_bytes": _slope(Ns, [r["module_bytes"] for r in rows])}
        rec = [(r["N"], _recurrent_trace_bytes(r)) for r in rows if _recurrent_trace_bytes(r)]
        if rec:
            e["recurrent_trace_bytes"] = _slope([n for n, _ in rec], [b for _, b in rec])
        ok = [r for r in rows if r.get("status") == "ok"]
        e["us_per_step"] = _slope([r["N"] for r in ok], [r["us_per_step"] for r in ok])
        e["us_per_step_N"] = [r["N"] for r in ok]
        exps[a] = e
    ok = {(r["algorithm"], r["N"]): r for r in results if r.get("status") == "ok"}
    for (a, N), r in sorted(ok.items(), key=lambda kv: (kv[0][1], algs.index(kv[0][0]))):
        base = ok.get((BASELINE, N))
        if a != BASELINE and base:
            ratios.append({"algorithm": a, "N": N, "time_ratio_vs_pp_prop": r["sec_per_seq"] / base["sec_per_seq"],
                           "rss_ratio_vs_pp_prop": r["peak_rss_mib"] / base["peak_rss_mib"]})
    return {"exponents": exps, "ratios": ratios}


def _mb(b) -> str:
    return "-" if b is None else f"{b / 1e6:.3f}" if b < 1e7 else f"{b / 1e6:.1f}"


def fmt_table(results: list[dict]) -> str:
    head = (f"{'algorithm':<9} {'N':>5} {'trace MB':>9} {'module MB':>10} {'BPTT tape(T) MB':>16} {'s/seq':>9} "
            f"{'us/step':>10} {'peak RSS MiB':>13} {'compile s':>10} {'runs':>5} {'driver':<10} status")
    lines = [head, "-" * len(head)]
    for r in results:
        tb = r.get("trace_bytes")
        common = (f"{r['algorithm']:<9} {r['N']:>5} {_mb(tb):>9} {_mb(r.get('module_bytes')):>10} "
                  f"{_mb(r.get('bptt_tape_bytes_T')):>16} ")
        if r.get("status") == "ok":
            lines.append(common + f"{r['sec_per_seq']:>9.4f} {r['us_per_step']:>10.1f} {r['peak_rss_mib']:>13.1f} "
                         f"{r['compile_s']:>10.1f} {len(r['times']):>4}{'w' if r.get('warmup_only') else ' '} "
                         f"{r.get('driver') or '?':<10} ok"
                         + (f" (then crashed at exit, rc {r['exit_rc']})" if r.get("exit_rc") else ""))
        else:
            cs = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
            lines.append(common + f"{'-':>9} {'-':>10} {'-':>13} {cs:>10} {'-':>5} {'':<10} {r['status']}")
    lines.append("MB = 1e6 bytes. s/seq: median over `runs` timed sequences of T steps (forward + gradient + Adam "
                 "update) after the warm-up (w: the warm-up itself, it being longer than --budget).")
    return "\n".join(lines)


def fmt_analysis(an: dict) -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["", "fitted exponents (least-squares slope of log(y) vs log(N)):"]
    for a, e in an["exponents"].items():
        Ns = ",".join(map(str, e["N"]))
        tb = "n/a (no trace)" if e["trace_bytes"] is None and a == "bptt" else f(e["trace_bytes"])
        s = f"  {a:<8} trace bytes {tb:<14} module bytes {f(e['module_bytes']):<6}"
        if "recurrent_trace_bytes" in e:
            s += f" h_to_h trace {f(e['recurrent_trace_bytes']):<6}"
        s += f" us/step {f(e['us_per_step'])} (N={','.join(map(str, e['us_per_step_N'])) or '-'}; bytes N={Ns})"
        lines.append(s)
    lines.append(f"time relative to {BASELINE} at the same N, this run (s/seq ratio; >1 = slower than {BASELINE}):")
    for d in an["ratios"]:
        lines.append(f"  {d['algorithm']:<8} N={d['N']:<5} time x{d['time_ratio_vs_pp_prop']:.3g}   "
                     f"peak RSS x{d['rss_ratio_vs_pp_prop']:.3g}")
    if not an["ratios"]:
        lines.append("  (no pairs)")
    return "\n".join(lines)


def fmt_gradients(g: dict) -> str:
    lines = ["", f"gradient agreement with BPTT: recurrent_lif({I}, {g['N']}, {C}), B={g['B']}, T={g['T']}, "
                 f"loss on {g['mask']}, same initial parameters: {g['same_init_params']}",
             f"  {'algorithm':<8} {'parameter':<14} {'shape':<12} {'cosine':>8} {'|g|/|g_bptt|':>13} {'|g_bptt|':>10}"]
    for a, d in g["algorithms"].items():
        rows = [("(all)", "", d["all"])] + [(n, "x".join(map(str, g["params"][n])), c) for n, c in d["per_param"].items()]
        for n, shape, c in rows:
            lines.append(f"  {a:<8} {n:<14} {shape:<12} {c['cosine']:>8.4f} {c['norm_ratio']:>13.4f} {c['bptt_norm']:>10.3g}")
    return "\n".join(lines)


def _btc_source() -> str:
    """Which btc is measured: its directory, and the git commit (+ '-dirty' when that btc/ has
    uncommitted changes) when it is a git checkout. btc changes under us; PYTHONPATH can point
    at an exported copy (e.g. `git archive HEAD btc | tar -x -C DIR`)."""
    import importlib.util

    spec = importlib.util.find_spec("btc")
    pkg = os.path.dirname(os.path.abspath(spec.origin)) if spec and spec.origin else None
    if pkg is None:
        return "btc not found"
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=pkg, capture_output=True, text=True)  # noqa: E731
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return f"{pkg} (not a git checkout)"
        rev = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", ".").stdout.strip()
        return f"{pkg} at {rev}{'-dirty' if dirty else ''}"
    except OSError:
        return pkg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="128,512,2048", help="hidden sizes, comma-separated")
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated; pp-prop is the time baseline")
    ap.add_argument("--b", type=int, default=8, help="batch")
    ap.add_argument("--k", type=int, default=20, help="chunk (compiled time-loop length)")
    ap.add_argument("--t", type=int, default=40, help="sequence length (time steps)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed sequences before timing")
    ap.add_argument("--repeats", type=int, default=5, help="timed sequences (median)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of timed runs per config (slow ones get fewer)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per child process (compile, run)")
    ap.add_argument("--btc-driver", default="local-sync", choices=("local-sync", "local-task", "artifact"),
                    help="IREE driver for every run (artifact: each artifact's own choice)")
    ap.add_argument("--gradients", action="store_true", help="also the gradient agreement with BPTT (part 2)")
    ap.add_argument("--gradients-only", action="store_true", help="only part 2")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--compile", nargs=5, metavar=("ALG", "N", "B", "K", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--one", nargs=2, metavar=("DIR", "T"), help=argparse.SUPPRESS)
    ap.add_argument("--grad-one", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.compile:
        a, N, B, K, d = args.compile
        compile_main(a, int(N), int(B), int(K), d)
        return 0
    if args.one:
        d, T = args.one
        one_main(d, int(T), args.warmup, args.repeats, args.budget,
                 None if args.btc_driver == "artifact" else args.btc_driver)
        return 0
    if args.grad_one:
        grad_main(args.grad_one)
        return 0

    algs = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    bad = [a for a in algs if a not in ALGORITHMS]
    if bad:
        ap.error(f"unknown algorithms {bad}; expected {list(ALGORITHMS)}")
    results, an, grads = [], None, None
    print(f"btc: {_btc_source()}; {os.cpu_count()} CPUs; B={args.b} K={args.k} T={args.t}; "
          f"driver {args.btc_driver}", flush=True)
    if not args.gradients_only:
        for N in [int(v) for v in args.n.split(",") if v.strip()]:
            for a in algs:
                t0 = time.perf_counter()
                r = run_config(a, N, args)
                results.append(r)
                msg = (f"{r['sec_per_seq']:.4f} s/seq, {r['us_per_step']:.1f} us/step, peak {r['peak_rss_mib']:.0f} MiB"
                       if r.get("status") == "ok" else r["status"])
                print(f"[{a} N={N}] {msg}  ({time.perf_counter() - t0:.0f} s wall)", file=sys.stderr, flush=True)
                if r.get("stderr") and r.get("status") != "ok":
                    print(r["stderr"][-2000:], file=sys.stderr, flush=True)
        an = analyse(results, algs)
        print(fmt_table(results))
        print(fmt_analysis(an), flush=True)
    if args.gradients or args.gradients_only:
        with tempfile.TemporaryDirectory(prefix="btc-bench-grad-") as tmp:
            status, grads, err = _child(["--grad-one", tmp], args.timeout)
        if grads is None:
            print(f"\ngradient agreement: {status}\n{err[-2000:]}")
        else:
            print(fmt_gradients(grads))
    if args.out:
        meta = {"I": I, "C": C, "B": args.b, "K": args.k, "T": args.t, "p_spike": P_SPIKE, "lr": LR,
                "btc_driver": args.btc_driver, "cpu_count": os.cpu_count(), "argv": sys.argv[1:], "btc": _btc_source()}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results, "analysis": an, "gradients": grads}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
