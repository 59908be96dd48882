#!/usr/bin/env python
"""btc vs braintrace, dense and event-driven, on one network, measured in one run.

Network: btc.frontend.zoo.recurrent_lif(inputs=100, hidden=N, classes=10): 100 Bernoulli(0.1) inputs ->
N recurrent LIF neurons -> 10-way leaky readout, batch 32, T steps (default 100), pp-prop (decay 0.9),
Adam, one update per sequence. The braintrace model is the rebuild in bench_braintrace.py.

Configurations, each measured in its own child process (so its peak RSS, getrusage ru_maxrss, is its
own; btc's compiler runs in a further process and is not counted):

  braintrace-dense  bench_braintrace.py --projection dense: braintrace.nn.Linear input and recurrent
                    projections (XLA dense matmul), braintrace.pp_prop.
  braintrace-event  bench_braintrace.py --projection event: the same model, the input and recurrent
                    projections computed by brainevent's binary-event x dense-matrix product
                    (`brainevent.BinaryArray(x) @ W`, numba kernel, parallel over the batch) inside an
                    ETP primitive made with `braintrace.register_primitive` that reuses braintrace's
                    dense-matmul trace rules, so pp-prop trains it the same way.
  btc-dense         bench_train.py --one btc-pp-prop with CompileOptions(event_driven="off").
  btc-event         the same with CompileOptions(event_driven="auto", activity=--activity): by default
                    {"x": 0.1, "*": 0.02}, the inputs' known rate and issue 9's premise of ~2 % firing.

Both braintrace configurations run under the side environment's Python (--bt-python); without it the
run goes on with btc only. What is timed: one training sequence of T steps including its inputs' draw
and the optimizer update; braintrace: median of the timed sequences after two untimed warm-ups (the
second jit call is also slow); btc: after one. us/step = seconds per sequence / T.

Printed: per configuration and N, us/step, peak RSS MiB and hidden firing rate; then ratios, all from
numbers measured in this run: btc-event speed vs braintrace's best (the faster of its dense / event
us/step), btc-event vs btc-dense, peak RSS braintrace-best / btc-event, and with --t-long, btc-event's
peak RSS at T=t_long vs T (memory independent of sequence length).

    python benchmarks/bench_events.py --n 2048,8192 --out results.json
    python benchmarks/bench_events.py --n 256 --repeats 2            # quick smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_braintrace as bt  # noqa: E402  (stdlib-only at import)
import bench_train as tr  # noqa: E402  (stdlib-only at import)

BT_PYTHON = "/tmp/venv/bt12/bin/python"
# what a user knows of this network: Bernoulli(0.1) inputs; hidden firing "about 2 %" (issue 9's premise)
DEFAULT_ACTIVITY = '{"x": 0.1, "*": 0.02}'
BTC_MODES = {"btc-dense": "off", "btc-event": "auto"}
CONFIGS = ("braintrace-dense", "braintrace-event", "btc-dense", "btc-event")


# ----------------------------------------------------------------------------- children
def default_repeats(N: int) -> int:
    """Timed sequences: fewer for big N (N=8192 dense takes ~30 s a sequence)."""
    return 5 if N <= 2048 else 2


def run_braintrace(proj: str, N: int, T: int, args) -> dict:
    cmd = bt.one_cmd(N, T, proj, args.repeats or default_repeats(N), args.numba_parallel, python=args.bt_python)
    res = tr.run_child(cmd, bt.child_env(0), args.timeout_bt, {})
    return {**res, "config": f"braintrace-{proj}", "N": N, "T": T}


def run_btc(config: str, N: int, T: int, args, warmup: int = 1, repeats: int | None = None) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if config in BTC_MODES:
        env["BENCH_BTC_EVENT_DRIVEN"] = BTC_MODES[config]
        env["BENCH_BTC_ACTIVITY"] = args.activity
    cmd = tr.one_cmd("btc-pp-prop", N, T, warmup, repeats or args.repeats or default_repeats(N), args.budget)
    res = tr.run_child(cmd, env, args.timeout_btc, {})
    if res.get("status") == "ok":
        res["s_per_seq"] = res["sec_per_seq"]
        if config in BTC_MODES and res.get("event_driven") != BTC_MODES[config]:
            res["status"] = f"ok, but event_driven={res.get('event_driven')!r} was compiled"
    return {**res, "config": config, "N": N, "T": T}


def btc_location() -> str:
    import btc

    return os.path.dirname(os.path.dirname(os.path.abspath(btc.__file__)))


def rate_main(N: int, T: int) -> None:
    """Child: btc's network (initial weights) simulated in JAX for T steps; the mean hidden firing rate."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from btc.frontend import simulate

    net = tr.build(N)
    params = {n: jnp.asarray(a) for n, a in net.init_params().items()}
    x = (np.random.default_rng(0).random((T, tr.B, tr.I), dtype=np.float32) < tr.P_SPIKE).astype(np.float32)
    _, rec = jax.jit(lambda p, x: simulate.run(net, p, {"x": x}))(params, jnp.asarray(x))
    print(tr.MARK + json.dumps({"status": "ok", "firing_rate": float(jnp.mean(rec["spikes"]["h"]))}), flush=True)


def btc_firing_rate(N: int, T: int, args) -> float | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--rate", str(N), str(T)]
    res = tr.run_child(cmd, dict(os.environ, JAX_PLATFORMS="cpu"), args.timeout_btc, {})
    return res.get("firing_rate")


# ----------------------------------------------------------------------------- one N
def plan(N: int, args, have_bt: bool) -> list[str]:
    configs = [c for c in args.configs if f"{c}@{N}" not in args.skip]
    return configs if have_bt else [c for c in configs if not c.startswith("braintrace")]


def measure_n(N: int, args, have_bt: bool) -> list[dict]:
    rows = []
    for config in plan(N, args, have_bt):
        t0 = time.perf_counter()
        if config.startswith("braintrace-"):
            r = run_braintrace(config.split("-", 1)[1], N, args.t, args)
        else:
            r = run_btc(config, N, args.t, args)
        r["wall_s"] = time.perf_counter() - t0
        rows.append(r)
        print(f"[{config} N={N} T={args.t}] {_short(r)}  ({r['wall_s']:.0f} s wall)", file=sys.stderr, flush=True)
    event_row = "btc-event" if "btc-event" in [r["config"] for r in rows] else None
    if args.t_long and event_row:
        r = run_btc(event_row, N, args.t_long, args, warmup=0, repeats=1)
        rows.append(r)
        print(f"[{event_row} N={N} T={args.t_long}] {_short(r)}", file=sys.stderr, flush=True)
        # the same steps as that one sequence, in sequences of T: the peak RSS to compare it with. (Six short
        # sequences ran 6 chunks; the resident size settles over the first ~10 chunks a process runs, 285 ->
        # 361 MiB at N=2048, then stays: the long run's 100 chunks counted against the short run's 6.)
        r = run_btc(event_row, N, args.t, args, warmup=0, repeats=max(1, args.t_long // args.t))
        r["same_steps"] = True
        rows.append(r)
        print(f"[{event_row} N={N} T={args.t} x {args.t_long // args.t}] {_short(r)}", file=sys.stderr, flush=True)
    return rows


def _short(r: dict) -> str:
    if not _ok(r):
        return r.get("status", "?") + ("\n" + r["stderr"][-800:] if r.get("stderr") else "")
    return f"{r['us_per_step']:.1f} us/step, peak {r['peak_rss_mib']:.0f} MiB"


def _ok(r: dict | None) -> bool:
    return bool(r) and r.get("status") == "ok"


# ----------------------------------------------------------------------------- report
def ratios(rows: list[dict], T: int, t_long: int | None) -> list[dict]:
    out = []
    for N in sorted({r["N"] for r in rows}):
        at = {r["config"]: r for r in rows if r["N"] == N and r["T"] == T and _ok(r) and not r.get("same_steps")}
        same = next((r for r in rows if r["N"] == N and r.get("same_steps") and _ok(r)), None)
        ev, dn = at.get("btc-event"), at.get("btc-dense")
        bts = [at[c] for c in ("braintrace-dense", "braintrace-event") if c in at]
        best = min(bts, key=lambda r: r["us_per_step"]) if bts else None
        d = {"N": N, "btc_row": ev and ev["config"], "braintrace_best": best and best["config"]}
        if ev and best:
            d["btc_event_speedup_vs_braintrace_best"] = best["us_per_step"] / ev["us_per_step"]
            d["braintrace_best_rss_over_btc_event"] = best["peak_rss_mib"] / ev["peak_rss_mib"]
        if ev and dn:
            d["btc_event_speedup_vs_btc_dense"] = dn["us_per_step"] / ev["us_per_step"]
        long = next((r for r in rows if r["N"] == N and r["T"] == t_long and ev and r["config"] == ev["config"]
                     and _ok(r)), None)
        if ev and long:
            d["btc_event_rss_T_long_over_T"] = long["peak_rss_mib"] / ev["peak_rss_mib"]
        if long and same:
            d["btc_event_rss_T_long_over_T_same_steps"] = long["peak_rss_mib"] / same["peak_rss_mib"]
        out.append(d)
    return out


def fmt_table(rows: list[dict], rates: dict) -> str:
    head = f"{'config':<27} {'N':>5} {'T':>6} {'us/step':>11} {'peak RSS MiB':>13} {'firing %':>9}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        rate = r.get("firing_rate", rates.get(r["N"]) if r["config"].startswith("btc") else None)
        rate_s = f"{100 * rate:.2f}" if rate is not None else "-"
        if _ok(r) and r.get("same_steps"):
            lines.append(f"{r['config'] + ' (x' + str(len(r.get('times', []))) + ' seqs)':<27} {r['N']:>5} {r['T']:>6} "
                         f"{r['us_per_step']:>11.1f} {r['peak_rss_mib']:>13.1f} {rate_s:>9}  ok")
        elif _ok(r):
            lines.append(f"{r['config']:<27} {r['N']:>5} {r['T']:>6} {r['us_per_step']:>11.1f} "
                         f"{r['peak_rss_mib']:>13.1f} {rate_s:>9}  ok")
        else:
            lines.append(f"{r['config']:<27} {r['N']:>5} {r['T']:>6} {'-':>11} {'-':>13} {rate_s:>9}  {r.get('status')}")
    return "\n".join(lines)


def fmt_ratios(rs: list[dict], T: int, t_long: int | None) -> str:
    def x(v):
        return f"{v:.2f}x" if v is not None else "n/a"

    lines = ["", f"ratios from this run (speed: other us/step / btc-event us/step, >1: btc-event faster; T={T}):"]
    for d in rs:
        ev = d["btc_row"] or "btc-event"
        lines.append(f"  N={d['N']:<5} {ev} vs braintrace best ({d['braintrace_best'] or 'none'}): "
                     f"{x(d.get('btc_event_speedup_vs_braintrace_best'))}; "
                     f"{ev} vs btc-dense: {x(d.get('btc_event_speedup_vs_btc_dense'))}; "
                     f"peak RSS braintrace best / {ev}: {x(d.get('braintrace_best_rss_over_btc_event'))}"
                     + (f"; {ev} peak RSS T={t_long} / T={T}: "
                        f"{d['btc_event_rss_T_long_over_T']:.3f}" if "btc_event_rss_T_long_over_T" in d else "")
                     + (f" (/ T={T} over as many steps, {t_long // T} sequences: "
                        f"{d['btc_event_rss_T_long_over_T_same_steps']:.3f})"
                        if "btc_event_rss_T_long_over_T_same_steps" in d else ""))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="2048,8192", help="hidden sizes, comma-separated")
    ap.add_argument("--t", type=int, default=100, help="steps per sequence (a multiple of 100 for btc)")
    ap.add_argument("--t-long", type=int, default=None,
                    help="also run btc-event at this T (e.g. 10000; one sequence, no warm-up) for its peak RSS, and "
                         "at --t over as many steps (T_long / T sequences) to compare it with")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    ap.add_argument("--skip", default="", help="comma-separated CONFIG@N to leave out, e.g. btc-dense@8192")
    ap.add_argument("--repeats", type=int, default=0, help="timed sequences; 0: 5 for N <= 2048, else 2")
    ap.add_argument("--budget", type=float, default=120.0, help="btc: seconds of timed runs per config (fewer repeats if slow)")
    ap.add_argument("--activity", default=DEFAULT_ACTIVITY,
                    help="btc's expected activity per signal (JSON: a fraction or {name: fraction, \"*\": rest})")
    ap.add_argument("--bt-python", default=BT_PYTHON, help="the Python of braintrace's side environment")
    ap.add_argument("--numba-parallel", type=int, default=1, choices=(0, 1), help="braintrace-event: numba over all cores")
    ap.add_argument("--timeout-bt", type=float, default=1800.0, help="seconds per braintrace child")
    ap.add_argument("--timeout-btc", type=float, default=1800.0, help="seconds per btc child (compile included)")
    ap.add_argument("--no-rate", action="store_true", help="skip btc's firing-rate simulation (JAX, per N)")
    ap.add_argument("--out", default=None, help="write rows, ratios and metadata as JSON here")
    ap.add_argument("--rate", nargs=2, type=int, metavar=("N", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if any(c not in CONFIGS for c in args.configs):
        ap.error(f"--configs: expected a subset of {list(CONFIGS)}")
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rate:
        rate_main(*args.rate)
        return 0
    have_bt = os.path.exists(args.bt_python)
    if not have_bt:
        print(f"bench_events: {args.bt_python} not found: braintrace rows skipped (create the side environment, "
              f"see benchmarks/README.md, or pass --bt-python)", file=sys.stderr)
    rows, rates = [], {}
    for N in tr._ints(args.n):
        if not args.no_rate:
            rates[N] = btc_firing_rate(N, args.t, args)
        rows += measure_n(N, args, have_bt)
    rs = ratios(rows, args.t, args.t_long)
    print(f"btc commit: {tr._git_rev()} (btc imported from {btc_location()}); braintrace python: {args.bt_python if have_bt else 'missing'}; "
          f"cpus: {os.cpu_count()}; btc-event activity: {args.activity}")
    versions = next((r.get("versions") for r in rows if r.get("versions")), None)
    if versions:
        print("braintrace side: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(fmt_table(rows, rates))
    print("btc firing %: btc's network simulated in JAX with its initial weights (one sequence); braintrace's: "
          "its model after the timed sequences.")
    print(fmt_ratios(rs, args.t, args.t_long))
    for r in rows:
        if r.get("chunks_by") and len(r["chunks_by"]) > 1:
            print(f"{r['config']} N={r['N']} T={r['T']}: chunks taken by each train_chunk variant (warm-ups included): "
                  f"{r['chunks_by']}")
    if args.out:
        meta = {"argv": sys.argv[1:], "git": tr._git_rev(), "btc_location": btc_location(), "cpu_count": os.cpu_count(), "T": args.t,
                "t_long": args.t_long, "bt_python": args.bt_python if have_bt else None,
                "btc_activity": args.activity, "btc_firing_rate": rates}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows, "ratios": rs}, f, indent=1)
    return 0 if all(_ok(r) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
