"""Resident memory over many sequences of online training, each ending in an optimizer update.

Peak RSS must not grow with sequence length, nor with the number of updates taken. bench_events.py
compares one long sequence against short ones; this one watches the resident size after each of
`--sequences` sequences of T=100 steps, each followed by `apply_update`: recurrent_lif (bench_train.py's
network, B=32, inputs firing 10 %), compiled by bench_train.py's compile child, run in another (the runtime's own
memory). The baseline is the size after the first sequence and update, from the same run.

    python benchmarks/bench_rss_updates.py                      # N=2048, event-driven, 40 sequences
    python benchmarks/bench_rss_updates.py --n 512 --sequences 100 --event-driven off

Prints the resident size after every sequence (MiB), then: after the first / the last / the largest,
last / first, the median times of a sequence and of an update, and which train_chunk variants ran when
(learning raises the firing; a variant's first call allocates its own buffers).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train  # noqa: E402  (the network, batch and input rate of the training benchmarks)

MARK = "@@RSS "


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def run_main(art: str, sequences: int, T: int, lr: float) -> None:
    import numpy as np

    import btc.runtime as rt

    model = rt.load(art)
    rng = np.random.default_rng(0)
    B, I = bench_train.B, bench_train.I
    labels = np.broadcast_to(rng.integers(0, bench_train.C, B), (T, B)).astype(np.int32)
    tiers = getattr(model, "tiers", None)
    rows = []
    for _ in range(sequences):
        x = (rng.random((T, B, I), dtype=np.float32) < bench_train.P_SPIKE).astype(np.float32)
        before = dict(tiers.chunks_by) if tiers else {}
        t0 = time.perf_counter()
        model.train_sequence(x, labels)
        t1 = time.perf_counter()
        model.apply_update(lr)
        rows.append({"rss": resident_mib(), "seq_ms": (t1 - t0) * 1e3, "update_ms": (time.perf_counter() - t1) * 1e3,
                     "variants": sorted(k for k, v in (tiers.chunks_by.items() if tiers else ()) if v > before[k])})
    print(MARK + json.dumps(rows), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--t", type=int, default=100, help="steps per sequence (a multiple of the chunk, bench_train.K = 100)")
    ap.add_argument("--sequences", type=int, default=40)
    ap.add_argument("--lr", type=float, default=bench_train.LR,
                    help="learning rate; a tiny one keeps the firing, and so the train_chunk variant taken, fixed")
    ap.add_argument("--event-driven", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--activity", default='{"x": 0.1, "*": 0.005}', help="CompileOptions.activity (JSON)")
    ap.add_argument("--run", nargs=4, metavar=("ART", "SEQUENCES", "T", "LR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        run_main(args.run[0], int(args.run[1]), int(args.run[2]), float(args.run[3]))
        return 0
    if args.t % bench_train.K:
        ap.error(f"--t must be a multiple of the chunk, {bench_train.K}")
    me = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory(prefix="btc-rss-") as tmp:
        art = os.path.join(tmp, "artifact")
        # bench_train.py's compile child: its network, batch, chunk and optimizer, these event options
        env = dict(os.environ, BENCH_BTC_EVENT_DRIVEN=args.event_driven, BENCH_BTC_ACTIVITY=args.activity)
        subprocess.run([sys.executable, bench_train.__file__, "--compile", "btc-pp-prop", str(args.n), str(args.t), art],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        proc = subprocess.run([sys.executable, me, "--run", art, str(args.sequences), str(args.t), str(args.lr)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    rows = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith(MARK))[len(MARK):])
    rss = [r["rss"] for r in rows]
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"recurrent_lif N={args.n}, T={args.t}, lr {args.lr:g}, event_driven={args.event_driven}, activity {args.activity}: "
          f"resident MiB after each of {len(rows)} sequences + updates")
    print(" ".join(f"{v:.0f}" for v in rss))
    print(f"after the first {rss[0]:.0f}, the last {rss[-1]:.0f}, the largest {max(rss):.0f} MiB; "
          f"last / first = {rss[-1] / rss[0]:.3f}; median sequence {med([r['seq_ms'] for r in rows]):.1f} ms, "
          f"median update {med([r['update_ms'] for r in rows]):.1f} ms")
    changes = [f"{i + 1}: {'+'.join(v)}" for i, v in enumerate(r["variants"] for r in rows)
               if i == 0 or v != rows[i - 1]["variants"]]
    if any(r["variants"] for r in rows):
        print("train_chunk variants taken (from sequence: variants): " + "; ".join(changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
