#!/usr/bin/env python
"""Train-step time and peak memory: btc pp-prop vs btc BPTT vs plain-JAX BPTT.

Network: I=100 Bernoulli(0.1) inputs -> N recurrent LIF neurons with Expon synapses -> 10-way leaky
readout, per-step cross-entropy on a fixed label per sequence, Adam, batch B=32.

For every (method, N, T) the script re-invokes itself in a fresh process (`--one METHOD N T`), so
each configuration's peak RSS (getrusage ru_maxrss) is its own. btc artifacts are compiled in yet
another process (`--compile ...`) so that compiler memory is not counted in the runtime's peak RSS;
the JAX baseline's XLA compilation necessarily runs in its own process and is counted.

    python benchmarks/bench_train.py --n 128,512 --t 100,1000 --out results.json

Methods:
  btc-pp-prop  compiled with chunk K=100; the sequence is streamed chunk by chunk through
               model.train_stream(generator), the generator drawing each chunk's Bernoulli inputs on
               the fly (the [T, B, I] input never exists), then model.apply_update(lr).
  btc-bptt     compiled with chunk = T; model.train_sequence(x, labels, mask, lr).
  jax-bptt     jax.jit(value_and_grad(btc.frontend.simulate.loss) + hand-written Adam).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

METHODS = ("btc-pp-prop", "btc-bptt", "jax-bptt")
I, B, C, K = 100, 32, 10, 100
P_SPIKE = 0.1
LR = 1e-3
ADAM = (0.9, 0.999, 1e-8)  # the betas and eps btc's Adam uses
MARK = "BENCH_RESULT "


def build(N: int):
    from btc.frontend.zoo import recurrent_lif

    return recurrent_lif(inputs=I, hidden=N, classes=C)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def estimate_gib(method: str, N: int, T: int) -> float:
    """Rough size of what BPTT keeps for the backward pass: jax ~8 float32 [B, N] values per step,
    btc ~12 (its manifest's bptt_tape_bytes_per_step is ~10 [B, N] for this network)."""
    if method == "btc-pp-prop":
        return 0.0
    per_step = 12 if method == "btc-bptt" else 8
    return (T * B * N * 4 * per_step + T * B * I * 4 * 2) / 2 ** 30


def default_repeats(T: int) -> int:
    return 10 if T <= 100 else 3 if T <= 1000 else 1


# ----------------------------------------------------------------------------- compile process
def compile_main(method: str, N: int, T: int, out_dir: str) -> None:
    from btc.driver import CompileOptions, compile_network

    algorithm, chunk = ("pp-prop", K) if method == "btc-pp-prop" else ("bptt", T)
    extra = event_options()
    t0 = time.perf_counter()
    manifest = compile_network(build(N), CompileOptions(algorithm=algorithm, batch=B, chunk=chunk,
                                                        decay=0.9, optimizer="adam", **extra), out_dir)
    print(MARK + json.dumps({"compile_s": time.perf_counter() - t0,
                             "memory_bytes": manifest["abi"]["memory_bytes"],
                             "bptt_tape_bytes_per_step": manifest["abi"]["bptt_tape_bytes_per_step"],
                             "event_driven": extra.get("event_driven"),
                             "event_plan": {p["name"]: [p["propagation"], p["weight_gradient"]]
                                            for p in manifest["abi"]["projections"]}}), flush=True)


def event_options() -> dict:
    """CompileOptions' event_driven and activity from $BENCH_BTC_EVENT_DRIVEN and $BENCH_BTC_ACTIVITY
    (JSON) when set; {} otherwise (the compiler's defaults then apply)."""
    out = {}
    if os.environ.get("BENCH_BTC_EVENT_DRIVEN"):
        out["event_driven"] = os.environ["BENCH_BTC_EVENT_DRIVEN"]
    if os.environ.get("BENCH_BTC_ACTIVITY"):
        out["activity"] = json.loads(os.environ["BENCH_BTC_ACTIVITY"])
    return out


# ----------------------------------------------------------------------------- one configuration
def _time_runs(run, warmup: int, repeats: int, budget: float) -> dict:
    """`warmup` untimed runs, then up to `repeats` timed ones, fewer when a run is slow: as many as
    fit in `budget` seconds, at least one; when the warm-up alone took longer than `budget`, its
    time is the measurement (warmup_only: the run is long enough that first-call costs vanish)."""
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        run()
        warm.append(time.perf_counter() - t0)
    if warm and warm[-1] > budget:
        return {"times": warm[-1:], "warmup_s": warm, "warmup_only": True}
    if warm:
        repeats = max(1, min(repeats, int(budget // max(warm[-1], 1e-9))))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"times": times, "warmup_s": warm, "warmup_only": False}


def one_btc(method: str, N: int, T: int, warmup: int, repeats: int, budget: float) -> dict:
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="btc-bench-") as tmp:
        art = os.path.join(tmp, "artifact")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--compile", method, str(N), str(T), art],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compile failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}\nits first errors:\n"
                               + "\n".join(_error_lines(proc.stderr)))
        info = _parse(proc.stdout)

        import btc.runtime as rt

        model = rt.load(art, hal_driver=os.environ.get("BENCH_BTC_DRIVER") or None)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, size=B).astype(np.int32)
    rss_setup = peak_rss_mib()
    res = {k: info.get(k) for k in ("compile_s", "memory_bytes", "bptt_tape_bytes_per_step", "event_driven",
                                    "event_plan")}
    res["driver"] = os.environ.get("BENCH_BTC_DRIVER") or model.manifest["hal_driver"]

    if method == "btc-pp-prop":
        if T % K:
            raise ValueError(f"btc-pp-prop streams {K}-step chunks: T={T} must be a multiple of {K}")
        mask_k = np.ones(K, np.float32)

        def chunks():
            for _ in range(T // K):
                x = (rng.random((K, B, I), dtype=np.float32) < P_SPIKE).astype(np.float32)
                yield x, labels, mask_k

        def run():
            model.train_stream(chunks())
            model.apply_update(LR)

        # cost of drawing the inputs alone (it is included in the step time above)
        t0 = time.perf_counter()
        for _ in chunks():
            pass
        res["input_gen_s"] = time.perf_counter() - t0
    else:
        x = (rng.random((T, B, I), dtype=np.float32) < P_SPIKE).astype(np.float32)
        mask = np.ones(T, np.float32)

        def run():
            model.train_sequence(x, labels, mask, lr=LR)

    res.update(_time_runs(run, warmup, repeats, budget), rss_setup_mib=rss_setup)
    if method == "btc-pp-prop":  # an event-driven module: which variant of train_chunk took the chunks
        res["chunks_by"] = dict(model.tiers.chunks_by)
    return res


def _error_lines(text: str, limit: int = 4) -> list[str]:
    """The first lines of a failed compile's stderr that name an error (its tail is often IR)."""
    return [line[:300] for line in text.splitlines() if "Error" in line or line.startswith("error:")][:limit]


def one_jax(N: int, T: int, warmup: int, repeats: int, budget: float) -> dict:
    import numpy as np

    if os.environ.get("BENCH_ONE_CORE") == "1":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import jax.numpy as jnp

    from btc.frontend import simulate

    net = build(N)
    b1, b2, eps = ADAM
    tmap = jax.tree_util.tree_map

    def train_step(params, m, v, k, x, labels, mask, lr):
        target = jnp.broadcast_to(labels, (x.shape[0], labels.shape[0]))
        loss, g = jax.value_and_grad(lambda p: simulate.loss(net, p, {"x": x}, target, mask))(params)
        k = k + 1.0
        m = tmap(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = tmap(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1, c2 = 1 - b1 ** k, 1 - b2 ** k
        params = tmap(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v)
        return params, m, v, k, loss

    rng = np.random.default_rng(0)
    labels = jnp.asarray(rng.integers(0, C, size=B).astype(np.int32))
    x = jnp.asarray((rng.random((T, B, I), dtype=np.float32) < P_SPIKE).astype(np.float32))
    mask = jnp.ones(T, jnp.float32)
    params = {n: jnp.asarray(a) for n, a in net.init_params().items()}
    state = [params, tmap(jnp.zeros_like, params), tmap(jnp.zeros_like, params), jnp.zeros((), jnp.float32)]
    lr = jnp.asarray(LR, jnp.float32)

    t0 = time.perf_counter()
    step = jax.jit(train_step, donate_argnums=(0, 1, 2)).lower(*state, x, labels, mask, lr).compile()
    compile_s = time.perf_counter() - t0
    rss_setup = peak_rss_mib()

    def run():
        out = step(*state, x, labels, mask, lr)
        jax.block_until_ready(out)
        state[:] = out[:4]

    return {"compile_s": compile_s, "rss_setup_mib": rss_setup, "jax_backend": jax.default_backend(),
            "driver": "xla-1core" if os.environ.get("BENCH_ONE_CORE") == "1" else "xla",
            **_time_runs(run, warmup, repeats, budget)}


def one_main(method: str, N: int, T: int, warmup: int, repeats: int, budget: float) -> None:
    t0 = time.perf_counter()
    res = (one_jax(N, T, warmup, repeats, budget) if method == "jax-bptt"
           else one_btc(method, N, T, warmup, repeats, budget))
    sec = statistics.median(res["times"])
    res.update(method=method, N=N, T=T, status="ok", sec_per_seq=sec, us_per_step=sec / T * 1e6,
               peak_rss_mib=peak_rss_mib(), child_wall_s=time.perf_counter() - t0)
    print(MARK + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------- parent
def _parse(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError("no result line in the child's output")


def one_cmd(method: str, N: int, T: int, warmup: int, repeats: int, budget: float) -> list[str]:
    """The command line of the child that measures one (method, N, T) (see `one_main`)."""
    return [sys.executable, os.path.abspath(__file__), "--one", method, str(N), str(T),
            "--warmup", str(warmup), "--repeats", str(repeats), "--budget", str(budget)]


def run_config(method: str, N: int, T: int, args) -> dict:
    base = {"method": method, "N": N, "T": T}
    est = estimate_gib(method, N, T)
    if est > args.max_gib:
        return {**base, "status": f"skipped (est. {est:.1f} GiB)"}
    cmd = one_cmd(method, N, T, args.warmup, args.repeats or default_repeats(T), args.budget)
    env = dict(os.environ)
    if args.jax_threads == 1 and method == "jax-bptt":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
        env["BENCH_ONE_CORE"] = "1"  # and one_jax pins the process to one core
    env.setdefault("JAX_PLATFORMS", "cpu")
    if args.btc_driver and method != "jax-bptt":
        env["BENCH_BTC_DRIVER"] = args.btc_driver
    return run_child(cmd, env, args.timeout, base)


def run_child(cmd: list[str], env: dict, timeout: float, base: dict) -> dict:
    """Run one measuring child (in its own session, killed whole on timeout) and return the result
    it printed after MARK, or `base` with a status saying why there is none."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile process, nothing else
        proc.communicate()
        return {**base, "status": f"timeout (>{timeout:.0f} s)"}
    try:
        res = _parse(out)
    except Exception as e:  # noqa: BLE001
        res = None
        if proc.returncode == 0:
            return {**base, "status": f"error ({e})", "stderr": err[-4000:]}
    if res is not None:
        if proc.returncode != 0:  # measured, then crashed on the way out (seen: IREE local-task teardown)
            res.update(exit_rc=proc.returncode, stderr=err[-4000:])
        return res
    oom = proc.returncode == -signal.SIGKILL or any(
        s in err for s in ("MemoryError", "RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "std::bad_alloc"))
    status = "out of memory" if oom else f"error (rc {proc.returncode})"
    return {**base, "status": status, "stderr": err[-4000:]}


def _fmt_table(results: list[dict]) -> str:
    head = (f"{'method':<12} {'N':>5} {'T':>6} {'s/seq':>10} {'us/step':>10} {'peak RSS MiB':>13} "
            f"{'compile s':>10} {'runs':>5}  {'driver':<10}  status")
    lines = [head, "-" * len(head)]
    for r in results:
        if r.get("status") == "ok":
            lines.append(f"{r['method']:<12} {r['N']:>5} {r['T']:>6} {r['sec_per_seq']:>10.4f} "
                         f"{r['us_per_step']:>10.1f} {r['peak_rss_mib']:>13.1f} {r['compile_s']:>10.1f} "
                         f"{len(r['times']):>4}{'w' if r.get('warmup_only') else ' '}  {r.get('driver') or '?':<10}  ok"
                         + (f" (then crashed at exit, rc {r['exit_rc']})" if r.get("exit_rc") else ""))
        else:
            lines.append(f"{r['method']:<12} {r['N']:>5} {r['T']:>6} {'-':>10} {'-':>10} {'-':>13} {'-':>10} "
                         f"{'-':>5}  {'':<10}  {r['status']}")
    lines.append("s/seq: median over `runs` timed sequences after one warm-up (w: the warm-up run itself, "
                 "being longer than --budget); compile excluded.")
    return "\n".join(lines)


def _ratios(results: list[dict]) -> dict:
    ok = {(r["method"], r["N"], r["T"]): r for r in results if r.get("status") == "ok"}
    speed, mem = [], []
    for (m, N, T), r in sorted(ok.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        j = ok.get(("jax-bptt", N, T))
        if m != "jax-bptt" and j:
            speed.append({"method": m, "N": N, "T": T, "speedup_vs_jax": j["sec_per_seq"] / r["sec_per_seq"]})
    for (m, N, T), r in ok.items():
        base = ok.get((m, N, 100))
        if m == "btc-pp-prop" and T != 100 and base:
            mem.append({"N": N, "T": T, "rss_ratio_vs_T100": r["peak_rss_mib"] / base["peak_rss_mib"],
                        "rss_mib": r["peak_rss_mib"], "rss_T100_mib": base["peak_rss_mib"]})
    return {"speed": speed, "pp_prop_memory": sorted(mem, key=lambda d: (d["N"], d["T"]))}


def _fmt_ratios(ratios: dict) -> str:
    lines = ["", "speed vs jax-bptt (jax s/seq / method s/seq; >1 means faster than JAX):"]
    lines += [f"  {d['method']:<12} N={d['N']:<5} T={d['T']:<6} {d['speedup_vs_jax']:.3g}x" for d in ratios["speed"]]
    if not ratios["speed"]:
        lines.append("  (no pairs)")
    lines.append("btc-pp-prop peak RSS relative to T=100 (target: within 10%):")
    lines += [f"  N={d['N']:<5} T={d['T']:<6} {d['rss_mib']:.1f} / {d['rss_T100_mib']:.1f} MiB = "
              f"{d['rss_ratio_vs_T100']:.3f} ({'within' if abs(d['rss_ratio_vs_T100'] - 1) <= 0.10 else 'NOT within'} 10%)"
              for d in ratios["pp_prop_memory"]]
    if not ratios["pp_prop_memory"]:
        lines.append("  (no pairs)")
    return "\n".join(lines)


def _git_rev() -> str | None:
    """The commit measured (+ '-dirty' when btc/ has uncommitted changes): btc changes under us."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "btc"], cwd=root, capture_output=True,
                               text=True).stdout.strip()
        return (rev + ("-dirty" if dirty else "")) or None
    except OSError:
        return None


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="128,512,2048", help="hidden sizes, comma-separated")
    ap.add_argument("--t", default="100,1000,10000", help="sequence lengths, comma-separated")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration (child process)")
    ap.add_argument("--max-gib", type=float, default=16.0, help="skip configs whose BPTT tape estimate exceeds this")
    ap.add_argument("--warmup", type=int, default=1, help="untimed sequences before timing")
    ap.add_argument("--repeats", type=int, default=0, help="timed sequences (median); 0: 10 / 3 / 1 for T<=100 / <=1000 / more")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds of timed runs per config: slow configs get fewer repeats (see _time_runs)")
    ap.add_argument("--jax-threads", type=int, default=0, choices=(0, 1),
                    help="1: XLA on one core (btc's local-sync runtime is single-threaded); 0: XLA default")
    ap.add_argument("--btc-driver", default=None, choices=("local-sync", "local-task"),
                    help="IREE driver for btc methods (default: the artifact's, chosen by btc from model size)")
    ap.add_argument("--one", nargs=3, metavar=("METHOD", "N", "T"), help=argparse.SUPPRESS)
    ap.add_argument("--compile", nargs=4, metavar=("METHOD", "N", "T", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.compile:
        m, N, T, d = args.compile
        compile_main(m, int(N), int(T), d)
        return 0
    if args.one:
        m, N, T = args.one
        one_main(m, int(N), int(T), args.warmup, args.repeats or default_repeats(int(T)), args.budget)
        return 0

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown methods {bad}; expected {list(METHODS)}")
    results = []
    for N in _ints(args.n):
        for T in _ints(args.t):
            for m in methods:
                t0 = time.perf_counter()
                r = run_config(m, N, T, args)
                results.append(r)
                msg = (f"{r['sec_per_seq']:.4f} s/seq, {r['us_per_step']:.1f} us/step, peak {r['peak_rss_mib']:.0f} MiB"
                       if r.get("status") == "ok" else r["status"])
                print(f"[{m} N={N} T={T}] {msg}  ({time.perf_counter() - t0:.0f} s wall)", file=sys.stderr, flush=True)
                if r.get("stderr") and r.get("status") != "ok":
                    print(r["stderr"][-2000:], file=sys.stderr, flush=True)
    ratios = _ratios(results)
    print(f"btc commit: {_git_rev()}")
    print(_fmt_table(results))
    print(_fmt_ratios(ratios))
    if args.out:
        meta = {"I": I, "B": B, "C": C, "K_pp_prop": K, "p_spike": P_SPIKE, "lr": LR,
                "jax_threads": "1" if args.jax_threads == 1 else "default", "btc_driver": args.btc_driver, "cpu_count": os.cpu_count(),
                "argv": sys.argv[1:], "git": _git_rev()}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results, "ratios": ratios}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
