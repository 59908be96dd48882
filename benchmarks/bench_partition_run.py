"""A synthetic connectome cut by region across 2 MPI ranks, trained online (btc.partitioned), against one
process training the whole network, in one run (docs/distributed.md, section 2).

    python benchmarks/bench_partition_run.py [--neurons 4000] [--connections 80000] [--regions 12]
                                            [--batch 8] [--steps 100] [--repeats 3] [--weight-scale 0.06]

The network is `connectome_lif` (LIF neurons, sparse signed recurrent wiring, learned tau and theta, a
fixed readout of region means, MSE). Regions are dealt to the ranks as bench_partition.py deals them.
Printed: the first sequence's loss both ways (they must agree), seconds per sequence (median of
`--repeats`, each with an Adam update) for one process (the whole network, chunk = steps) and for 2 ranks
(one step per call, exchanging every step), and the spike bytes a step exchanged against the design's
estimate: firing rate x (neuron, rank) pairs with a remote connection x 4 bytes, per sample.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_partition import deal, partition_stats  # noqa: E402

RANK_SCRIPT = """
import json, sys, time, numpy as np
from btc.runtime.partitioned import Partitioned
model = Partitioned(sys.argv[1])
data = np.load(sys.argv[2])
x, y, repeats = data["x"], data["y"], int(sys.argv[3])
first = model.train_sequence(x, y)["loss"]
model.model.zero_grads()
model.bytes_sent = 0
times = []
for _ in range(repeats):
    model.comm.Barrier()
    t0 = time.perf_counter()
    model.train_sequence(x, y, lr=1e-3)
    times.append(time.perf_counter() - t0)
sent = model.comm.allreduce(model.bytes_sent)
if model.rank == 0:
    print(json.dumps({"first_loss": first, "seconds": sorted(times)[len(times) // 2], "bytes": sent}))
"""


def main() -> None:
    from btc.driver import CompileOptions, compile_network
    from btc.frontend.connectome import synthetic_connectome
    from btc.frontend.zoo import connectome_lif
    from btc.partitioned import compile_partitioned
    from btc.runtime import load

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=4000)
    ap.add_argument("--connections", type=int, default=80_000)
    ap.add_argument("--regions", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weight-scale", type=float, default=0.06, help="as examples/fly_connectome.py: a few %% firing")
    args = ap.parse_args()
    B, T = args.batch, args.steps
    conn = synthetic_connectome(args.neurons, args.connections, regions=args.regions, seed=0)
    net = connectome_lif(conn, weight_scale=args.weight_scale)
    owner = deal(conn.region_sizes(), 2)[conn.region]
    rng = np.random.default_rng(0)
    x = (rng.random((T, B, net.inputs["stim"].size)) < 0.2).astype(np.float32)
    y = rng.random((B, len(conn.region_names))).astype(np.float32) * 0.05
    stats = partition_stats(conn, 2)
    print(f"synthetic connectome: {conn.n:,} neurons, {conn.num_connections:,} connections, {args.regions} regions; "
          f"2 ranks own {stats['neurons_per_rank'].tolist()} neurons, {stats['cut_fraction']:.1%} of connections cut")
    with tempfile.TemporaryDirectory() as tmp:
        options = CompileOptions(batch=B, chunk=T)
        compile_network(net, options, os.path.join(tmp, "whole"))
        compile_partitioned(net, {"brain": owner}, options, os.path.join(tmp, "split"))
        np.savez(os.path.join(tmp, "data.npz"), x=x, y=y)
        whole = load(os.path.join(tmp, "whole"))
        first = whole.train_sequence(x, y)["loss"]
        whole.zero_grads()
        whole.train_sequence(x, y, lr=1e-3)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            whole.train_sequence(x, y, lr=1e-3)
            times.append(time.perf_counter() - t0)
        one = sorted(times)[len(times) // 2]
        rate = float(whole.infer_sequence(x, record=True)["spikes.brain"].mean())  # with the trained weights
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        done = subprocess.run([mpiexec, "-n", "2", sys.executable, "-c", RANK_SCRIPT, os.path.join(tmp, "split"),
                               os.path.join(tmp, "data.npz"), str(args.repeats)], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the 2-rank run failed:\n{done.stdout}{done.stderr}")
        two = json.loads(done.stdout.strip().splitlines()[-1])
    readout_bytes = 2 * T * B * len(conn.region_names) * 4 * args.repeats
    measured = (two["bytes"] - readout_bytes) / (args.repeats * T * B)
    print(f"first loss: 1 process {first:.6f}, 2 ranks {two['first_loss']:.6f} "
          f"(relative difference {abs(first - two['first_loss']) / abs(first):.1e})")
    print(f"seconds per sequence (B={B}, T={T}): 1 process {one:.3f}, 2 ranks {two['seconds']:.3f}; "
          f"2 ranks / 1 process speed: {one / two['seconds']:.2f}x")
    print(f"spike bytes per step and sample: measured {measured:.1f}; estimate at the measured firing rate "
          f"{rate:.2%}: {rate * stats['sends'] * 4:.1f} ({stats['sends']:,} (neuron, rank) pairs with a remote "
          f"connection); readout bytes per step: {2 * B * len(conn.region_names) * 4:,}")


if __name__ == "__main__":
    main()
