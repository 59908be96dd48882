#!/usr/bin/env python
"""btc's sparse projections against the reference library's CSR projection and btc's dense module,
measured in one run.

Network: 100 Bernoulli(0.1) inputs -> N recurrent LIF neurons (tau 10 ms, Expon 5 ms synapses, sigmoid
surrogate: the network of bench_braintrace.py) -> 10-way leaky readout; batch 32, T steps (default 100),
pp-prop (decay 0.9), Adam, one update per sequence. The recurrent projection keeps each pair with
probability p; the pairs are drawn once per N (seeded) and given to every configuration:

  btc-sparse       project("h", "h", connectivity=(pre, post)); input and readout dense.
  braintrace-csr   bench_braintrace.py --projection csr --pairs FILE: braintrace.nn.SparseLinear over a
                   brainevent.CSR of the same pairs, under the side environment's Python (--bt-python;
                   skipped when absent); input and readout dense.
  btc-dense        the recurrent projection dense (all N^2 pairs), unless --no-dense.

Each runs in its own child process (its peak RSS, getrusage ru_maxrss, is its own; btc's compile runs in
the child and is counted, braintrace's jit too). Printed per configuration: us/step (btc: median of the
timed sequences after one untimed; braintrace: after two), peak RSS MiB, the recurrent pairs, pairs x
batch per second (weight reads of a pulled forward product alone), synaptic events per second (the recurrent
spikes, at the firing rate measured after training, times their mean fan-out: the work a spike-driven step
cannot avoid); then speed ratios from this run's numbers.

    python benchmarks/bench_sparse.py --n 4096 --p 0.01
    python benchmarks/bench_sparse.py --n 16384 --p 0.01 --no-dense
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_timing import time_training  # noqa: E402

MARK = "BENCH_RESULT "
B, I, C = 32, 100, 10
BT_PYTHON = "/tmp/venv/bt12/bin/python"


def one(N: int, pairs_file: str, T: int, repeats: int, sparse: bool, event_driven: str = "auto",
        activity: str = "") -> dict:
    import numpy as np

    from btc.frontend import LIF, Expon, Network, Surrogate

    net = Network(dt=1.0, seed=0)
    net.input("x", I)
    net.group("h", N, LIF(tau=10.0, theta=1.0, synapse=Expon(tau=5.0), surrogate=Surrogate("sigmoid", 4.0)))
    net.project("x", "h", init=1.0)
    with np.load(pairs_file) as z:
        pairs = (z["pre"], z["post"])
    net.project("h", "h", recurrent=True, init=0.5, connectivity=pairs if sparse else None)
    net.readout("out", C, tau=10.0)
    net.project("h", "out", init=1.0)
    net.set_loss("cross_entropy", "out")
    rng = np.random.default_rng(0)
    x = (rng.random((T, B, I)) < 0.1).astype(np.float32)
    y = np.broadcast_to(rng.integers(0, C, B), (T, B)).astype(np.int32)
    run = time_training(net, B, x, y, repeats,
                        after=lambda m: float(m.infer_sequence(x, record=True)["spikes.h"].mean()),
                        keep=lambda m: ({p["name"]: [p["propagation"], p["weight_gradient"]] for p in m.abi["projections"]},
                                        dict(m.tiers.chunks_by)),
                        event_driven=event_driven, **({"activity": json.loads(activity)} if activity else {}))
    s, rate, compile_s = run["seconds"], run["after"], run["compile_s"]
    plan, chunks = run["kept"]
    pairs = net.projections["h_to_h"].connectivity.nnz if sparse else N * N
    return {"config": "btc-sparse" if sparse else "btc-dense", "N": N, "T": T,
            "us_per_step": s / T * 1e6, "pairs": pairs, "pair_reads_per_s": pairs * B / (s / T),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "compile_s": compile_s,
            "firing_rate": rate, "plan": plan, "chunks_by": chunks}


def _events_per_s(r: dict) -> float:
    """Synaptic events a second: the recurrent spikes (firing rate x N x B a step) times their mean fan-out
    (pairs / N), over the step time."""
    return r["firing_rate"] * B * r["pairs"] / (r["us_per_step"] * 1e-6)


def draw_pairs(N: int, p: float, path: str, seed: int = 0) -> int:
    from btc.frontend.connectivity import FixedProbability, connectivity_of
    import numpy as np

    conn = connectivity_of(FixedProbability(p, seed=seed), (N, N), "bench", seed)
    np.savez(path, pre=conn.pre, post=conn.post)
    return conn.nnz


def run(cmd: list[str], config: str, N: int, env=None) -> dict | None:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        print(f"{config} N={N} failed:\n{out.stderr[-2000:]}", flush=True)
        return None
    return json.loads(line[len(MARK):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="4096")
    ap.add_argument("--p", type=float, default=0.01)
    ap.add_argument("--t", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-dense", action="store_true", help="skip btc's dense baseline")
    ap.add_argument("--event-driven", default="auto", choices=("auto", "on", "off"),
                    help="btc's CompileOptions(event_driven=...) for its configurations")
    ap.add_argument("--activity", default='{"x": 0.1, "*": 0.005}',
                    help="btc's expected activity, JSON (a fraction or {name: fraction}); sizes its spike lists")
    ap.add_argument("--configs", default="btc-sparse,btc-dense,braintrace-csr")
    ap.add_argument("--bt-python", default=BT_PYTHON, help="the side environment's python (braintrace)")
    ap.add_argument("--one", nargs=3, metavar=("N", "KIND", "PAIRS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(MARK + json.dumps(one(int(args.one[0]), args.one[2], args.t, args.repeats, args.one[1] == "sparse",
                                    args.event_driven, args.activity)))
        return 0
    here = os.path.dirname(os.path.abspath(__file__))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for N in [int(n) for n in args.n.split(",")]:
            pairs_file = os.path.join(tmp, f"pairs-{N}.npz")
            nnz = draw_pairs(N, args.p, pairs_file)
            configs = args.configs.split(",")
            kinds = [k for k in ("sparse", "dense") if f"btc-{k}" in configs and not (k == "dense" and args.no_dense)]
            for kind in kinds:
                r = run([sys.executable, os.path.abspath(__file__), "--one", str(N), kind, pairs_file,
                         "--t", str(args.t), "--repeats", str(args.repeats), "--event-driven", args.event_driven,
                         "--activity", args.activity], f"btc-{kind}", N)
                if r:
                    results.append(r)
                    print(f"btc-{kind} N={N}: plan {r['plan']}; chunks taken by each train_chunk variant "
                          f"(warm-up included) {r['chunks_by']}", flush=True)
            if "braintrace-csr" in configs and os.path.exists(args.bt_python):
                env = dict(os.environ, JAX_PLATFORMS="cpu")
                r = run([args.bt_python, os.path.join(here, "bench_braintrace.py"), "--one", str(N), str(args.t),
                         "--projection", "csr", "--pairs", pairs_file, "--repeats", str(args.repeats)],
                        "braintrace-csr", N, env)
                if r:
                    results.append({"config": "braintrace-csr", "N": N, "T": args.t, "us_per_step": r["us_per_step"],
                                    "pairs": nnz, "pair_reads_per_s": nnz * B / (r["us_per_step"] * 1e-6),
                                    "peak_rss_mib": r["peak_rss_mib"], "compile_s": r["warmup_s"],
                                    "firing_rate": r["firing_rate"]})
            for r in results:
                if r["N"] == N:
                    print(f"{r['config']:<15} N={N:6d} pairs={r['pairs']:>11,d} {r['us_per_step']:>10.0f} us/step "
                          f"{r['peak_rss_mib']:>7.0f} MiB  {r['pair_reads_per_s'] / 1e9:6.2f} G pair-reads/s  "
                          f"{_events_per_s(r) / 1e6:6.2f} M syn-events/s  firing {r['firing_rate']:.4f}  "
                          f"compile {r['compile_s']:.0f} s", flush=True)
            by = {r["config"]: r for r in results if r["N"] == N}
            for other in ("braintrace-csr", "btc-dense"):
                if "btc-sparse" in by and other in by:
                    print(f"N={N} p={args.p}: btc-sparse speed / {other} = "
                          f"{by[other]['us_per_step'] / by['btc-sparse']['us_per_step']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
