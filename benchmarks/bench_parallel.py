"""Data-parallel training over MPI: throughput with 1 and K ranks on one global batch, and the bytes
exchanged per update, measured in one run.

    python benchmarks/bench_parallel.py [--hidden 256] [--batch 32] [--ranks 2] [--sequences 12]

recurrent_lif(100 -> hidden -> 10), pp-prop, T=100 steps per sequence, chunk 20, one update per sequence.
One rank trains the whole batch with an artifact of batch B; K ranks each train B/K samples with an
artifact of batch B/K (mpiexec -n K); every run does the same updates on the same data.
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

STEPS, CHUNK, INPUTS, CLASSES = 100, 20, 100, 10


def worker(artifact: str, batch: int, sequences: int, driver: str) -> None:
    """Run under mpiexec: train `sequences` global batches; rank 0 prints a JSON line."""
    from btc.runtime import load
    from btc.runtime.parallel import DataParallel

    model = DataParallel(load(artifact, hal_driver=driver if driver != "default" else None))
    rng = np.random.default_rng(0)
    data = [((rng.random((STEPS, batch, INPUTS)) < 0.05).astype(np.float32), rng.integers(0, CLASSES, batch))
            for _ in range(sequences + 1)]
    model.train_sequence(*data[0], lr=1e-3)  # warm-up
    model.comm.Barrier()
    start = time.perf_counter()
    for x, labels in data[1:]:
        model.train_sequence(x, labels, lr=1e-3)
    model.comm.Barrier()
    seconds = time.perf_counter() - start
    if model.rank == 0:
        print(json.dumps({"ranks": model.size, "driver": model.manifest["hal_driver"] if driver == "default"
                          else driver, "seconds": seconds, "samples_per_s": sequences * batch / seconds,
                          "bytes_per_update": model.bytes_per_update,
                          "checksum": float(sum(np.abs(p).sum() for p in model.params.values()))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32, help="the global batch")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--sequences", type=int, default=12)
    ap.add_argument("--worker", nargs=4, metavar=("ARTIFACT", "BATCH", "SEQUENCES", "DRIVER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]), args.worker[3])
        return
    import btc
    from btc.frontend.zoo import recurrent_lif

    if args.batch % args.ranks:
        sys.exit(f"--batch {args.batch} must be a multiple of --ranks {args.ranks}")
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    net = recurrent_lif(INPUTS, args.hidden, CLASSES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # one process with btc's choice of driver; one on every core (local-task); K processes, each on
        # one core (local-sync, IREE's single-threaded driver)
        for ranks, driver in ((1, "default"), (1, "local-task"), (args.ranks, "local-sync")):
            artifact = os.path.join(tmp, f"r{ranks}")
            if not os.path.isdir(artifact):
                btc.compile(net, artifact, batch=args.batch // ranks, chunk=CHUNK)
            done = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", artifact,
                                   str(args.batch), str(args.sequences), driver], capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stdout + done.stderr)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"recurrent_lif({INPUTS} -> {args.hidden} -> {CLASSES}), pp-prop, global batch {args.batch}, T={STEPS}, "
          f"{args.sequences} updates, {os.cpu_count()} cores")
    print(f"{'ranks':>5} {'driver':>10} {'s':>8} {'samples/s':>10} {'bytes/update':>13} {'param checksum':>15}")
    for r in rows:
        print(f"{r['ranks']:>5} {r['driver']:>10} {r['seconds']:>8.2f} {r['samples_per_s']:>10.1f} "
              f"{r['bytes_per_update']:>13,} {r['checksum']:>15.6f}")
    best = max(rows[:2], key=lambda r: r["samples_per_s"])
    print(f"speed-up with {args.ranks} ranks over the faster single process ({best['driver']}): "
          f"{rows[2]['samples_per_s'] / best['samples_per_s']:.2f}x (same updates: the checksums agree to float32 "
          "rounding)")


if __name__ == "__main__":
    main()
