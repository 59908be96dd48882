"""Partitioning a connectome by region across MPI ranks, on paper: what each rank would own and the spike
traffic per time step (docs/distributed.md). Computed from the wiring, nothing is run.

    python benchmarks/bench_partition.py [--neurons 135000] [--connections 3000000] [--activity 0.012 0.005]

Regions are dealt to K ranks largest first, each to the rank with the fewest neurons so far. A rank owns
its neurons, their postsynaptic traces and every incoming weight (btc's pull layout), and keeps a
presynaptic trace for each remote neuron that projects into it ("ghosts"), updated from that neuron's
spikes. Each step, every spiking neuron sends its id (4 bytes) once to each other rank it projects into;
the readout (region means) is one allreduce of the region sums.
"""
from __future__ import annotations

import argparse

import numpy as np


def deal(region_sizes: np.ndarray, ranks: int) -> np.ndarray:
    """region -> rank, largest regions first, each to the least loaded rank."""
    owner, load = np.zeros(region_sizes.size, np.int64), np.zeros(ranks, np.int64)
    for r in np.argsort(-region_sizes, kind="stable"):
        owner[r] = int(np.argmin(load))
        load[owner[r]] += region_sizes[r]
    return owner


def partition_stats(conn, ranks: int) -> dict:
    rank_of = deal(conn.region_sizes(), ranks)[conn.region]
    src, dst = rank_of[conn.pre], rank_of[conn.post]
    remote = src != dst
    # (neuron, destination rank) pairs over remote connections: each is one event per spike of the neuron
    sends = np.unique(conn.pre[remote].astype(np.int64) * ranks + dst[remote])
    ghosts_per_rank = np.bincount(sends % ranks, minlength=ranks)
    return {"ranks": ranks, "neurons_per_rank": np.bincount(rank_of, minlength=ranks),
            "pairs_per_rank": np.bincount(dst, minlength=ranks), "cut_fraction": float(remote.mean()),
            "sends": sends.size, "ghosts_per_rank": ghosts_per_rank}


def main() -> None:
    from btc.frontend.connectome import synthetic_connectome

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=135_000)
    ap.add_argument("--connections", type=int, default=3_000_000)
    ap.add_argument("--regions", type=int, default=78)
    ap.add_argument("--activity", type=float, nargs="+", default=[0.012, 0.005],
                    help="fraction of neurons spiking per step (0.012: btc's fly run; 0.005: 5 Hz at dt = 1 ms)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    args = ap.parse_args()
    conn = synthetic_connectome(args.neurons, args.connections, regions=args.regions, seed=0)
    print(f"synthetic connectome: {conn.n:,} neurons, {conn.num_connections:,} connections, "
          f"{len(conn.region_names)} regions")
    head = "".join(f"  bytes/step @{a:.1%}" for a in args.activity)
    print(f"{'ranks':>5} {'neurons/rank max':>17} {'pairs/rank max':>15} {'cut':>6} {'ghosts/rank max':>16}{head}"
          f"  {'readout allreduce B':>20}")
    for k in args.ranks:
        s = partition_stats(conn, k)
        traffic = "".join(f"  {a * s['sends'] * 4:>17,.0f}" for a in args.activity)
        readout = 2 * (k - 1) * len(conn.region_names) * 4  # ring allreduce of the region sums, all ranks
        print(f"{k:>5} {s['neurons_per_rank'].max():>17,} {s['pairs_per_rank'].max():>15,} {s['cut_fraction']:>6.1%} "
              f"{s['ghosts_per_rank'].max():>16,}{traffic}  {readout:>20,}")


if __name__ == "__main__":
    main()
