#!/usr/bin/env python
"""btc's convolutional projections against the same network with dense weights, measured in one run.

Network (N-MNIST-sized): a (2, 34, 34) map of Bernoulli(--rate) input spikes -> Conv 5x5 into C1 maps of
LIF neurons (tau 10 ms, Expon 5 ms synapses) -> a 2x2 sum pool of their spikes and a 5x5 Conv into C2 maps
-> a dense 10-way leaky readout; batch 32, T steps, pp-prop (decay 0.9), Adam, one update per sequence.

  btc-conv    the two convolutions as btc convolutions (kernels shared across positions).
  btc-dense   the same two linear maps as dense [pre, post] weights (the convolutions' matrices, so the
              network and its spikes are the same, until training: Adam then moves each dense weight on its
              own); under the default `event_driven="auto"` plan.

Each runs in its own child process (its peak RSS, getrusage ru_maxrss, counts its compile). Printed per
configuration: us/step (median of the timed sequences after one untimed), peak RSS MiB, weights, pairs
(connections), pairs x batch per second and the firing rates before training; then the ratios from this
run's numbers.

    python benchmarks/bench_conv.py                     # C1=8, C2=16, T=20
    python benchmarks/bench_conv.py --c1 16 --c2 32 --no-dense
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training_timing import time_training  # noqa: E402

MARK = "BENCH_RESULT "
B, C, SIDE = 32, 10, 34


def network(c1: int, c2: int, dense: bool):
    import math

    from btc.frontend import LIF, Conv, Expon, Network, Pool
    from btc.frontend import simulate as sim

    net = Network(dt=1.0, seed=0)
    net.input("x", 2 * SIDE * SIDE)
    conv1 = Conv((2, SIDE, SIDE), c1, 5)
    conv2 = Conv(conv1.out_shape(), c2, 5, pool=Pool(2))
    lif = LIF(tau=10.0, theta=1.0, synapse=Expon(tau=5.0))
    net.group("maps1", math.prod(conv1.out_shape()), lif)
    net.group("maps2", math.prod(conv2.out_shape()), lif)
    net.project("x", "maps1", connectivity=conv1, init=3.0)
    net.project("maps1", "maps2", connectivity=conv2, init=3.0)
    net.readout("out", C, tau=10.0)
    net.project("maps2", "out")
    net.set_loss("cross_entropy", "out")
    if not dense:
        return net
    params = net.init_params()
    twin = Network(dt=1.0, seed=0)
    twin.input("x", 2 * SIDE * SIDE)
    twin.group("maps1", net.size("maps1"), lif)
    twin.group("maps2", net.size("maps2"), lif)
    for p in ("x_to_maps1", "maps1_to_maps2"):
        proj = net.projections[p]
        twin.project(proj.pre, proj.post, weights=sim.weight(proj, params).__array__())
    twin.readout("out", C, tau=10.0)
    twin.project("maps2", "out", weights=params["maps2_to_out.W"])
    twin.set_loss("cross_entropy", "out")
    return twin


def one(c1: int, c2: int, T: int, rate: float, repeats: int, dense: bool) -> dict:
    import numpy as np

    net = network(c1, c2, dense)
    rng = np.random.default_rng(0)
    x = (rng.random((T, B, net.size("x"))) < rate).astype(np.float32)
    y = np.broadcast_to(rng.integers(0, C, B), (T, B)).astype(np.int32)
    # firing before training: the two configurations' spikes are the same
    run = time_training(net, B, x, y, repeats, before=lambda m: m.infer_sequence(x, record=True))
    s, rec, compile_s = run["seconds"], run["before"], run["compile_s"]
    conv = [p.connectivity for p in net.projections.values() if p.connectivity is not None]
    pairs = sum(c.nnz for c in conv) if conv else sum(
        net.size(p.pre) * net.size(p.post) for p in net.projections.values() if p.post != "out")
    weights = sum(c.n_weights for c in conv) if conv else pairs
    return {"config": "btc-dense" if dense else "btc-conv", "T": T, "us_per_step": s / T * 1e6, "pairs": pairs,
            "weights": weights, "pair_reads_per_s": pairs * B / (s / T),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "compile_s": compile_s,
            "firing": {g: float(rec[f"spikes.{g}"].mean()) for g in ("maps1", "maps2")}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--c1", type=int, default=8)
    ap.add_argument("--c2", type=int, default=16)
    ap.add_argument("--t", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.05, help="input spike probability per step")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("--one", choices=["conv", "dense"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(MARK + json.dumps(one(a.c1, a.c2, a.t, a.rate, a.repeats, a.one == "dense")), flush=True)
        return 0
    results = {}
    for config in ["conv"] + ([] if a.no_dense else ["dense"]):
        cmd = [sys.executable, __file__, "--one", config, "--c1", str(a.c1), "--c2", str(a.c2), "--t", str(a.t),
               "--rate", str(a.rate), "--repeats", str(a.repeats)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARK)), None)
        if line is None:
            print(f"btc-{config} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        r = results[config] = json.loads(line[len(MARK):])
        print(f"{r['config']:10s} C1={a.c1} C2={a.c2} weights={r['weights']:>11,} pairs={r['pairs']:>11,} "
              f"{r['us_per_step']:10.0f} us/step {r['peak_rss_mib']:7.0f} MiB "
              f"{r['pair_reads_per_s'] / 1e9:6.2f} G pair-reads/s  firing {r['firing']}  "
              f"compile {r['compile_s']:.0f} s", flush=True)
    if "dense" in results:
        print(f"btc-conv speed / btc-dense = {results['dense']['us_per_step'] / results['conv']['us_per_step']:.2f}x; "
              f"peak RSS btc-dense / btc-conv = {results['dense']['peak_rss_mib'] / results['conv']['peak_rss_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
