#!/usr/bin/env python
"""Train an example network on a task and print the test accuracy every few epochs, for comparing
algorithms on the same budget (the numbers in the README's table and the issue notes).

    python benchmarks/train_task.py examples/ei_coba_cue.py cue --algorithm pp-prop --decay 0.999 \\
        --epochs 50 --every 5 --lr 0.001
    python benchmarks/train_task.py examples/ei_coba_cue.py cue --algorithm bptt --epochs 50 --every 5 --lr 0.001
    python benchmarks/train_task.py examples/alif_dms.py dms --algorithm pp-prop --decay 0.99 --epochs 10 --every 5 --lr 0.003

Each block of `--every` epochs is `btc.tasks.train` with shuffling seed = block index, followed by
`btc.tasks.evaluate` on the task's fixed test set. B=64, K=50 unless given.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="MODEL.py[:FUNC] returning a btc Network")
    ap.add_argument("task", help="digits | cue | dms")
    ap.add_argument("--algorithm", default="pp-prop")
    ap.add_argument("--decay", type=float, default=0.9)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    from btc.driver import CompileOptions, compile_network
    from btc.runtime import load
    from btc.tasks import get_task, train
    from btc.tools.cli import load_model_function

    out = os.path.join(tempfile.mkdtemp(prefix="btc-train-"), "artifact")
    compile_network(load_model_function(args.model), CompileOptions(algorithm=args.algorithm, batch=args.batch,
                                                                     chunk=args.chunk, decay=args.decay), out)
    model, task = load(out), get_task(args.task)
    start = time.perf_counter()
    for block in range(args.epochs // args.every):
        result = train(model, task, args.every, args.lr, seed=block)
        print(f"{args.algorithm} {args.task} epochs {(block + 1) * args.every}: "
              f"train_acc {result['epochs'][-1]['train_acc']:.4f} test_acc {result['test_acc']:.4f} "
              f"elapsed {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
