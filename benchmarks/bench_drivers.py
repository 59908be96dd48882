"""Runtime driver choice: local-sync (one thread, ~10 us per dispatch) vs local-task (all cores,
~100 us per dispatch), on the benchmark network (recurrent LIF+Expon, I=100, B=32, K=100) at several N.

    python benchmarks/bench_drivers.py [--n 128,512,2048]

Prints pp-prop train and inference time per step for both drivers and the ratio; btc's compile
driver picks local-task when the projections' multiply-accumulates per step reach 2^22.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from btc.driver import CompileOptions, compile_network  # noqa: E402
from btc.frontend.zoo import recurrent_lif  # noqa: E402
from btc.runtime import load  # noqa: E402


def per_step(fn, steps: int, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / steps * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", default="128,512,2048")
    args = parser.parse_args()
    batch, steps = 32, 100
    rng = np.random.default_rng(0)
    x = (rng.random((steps, batch, 100)) < 0.1).astype(np.float32)
    target = rng.integers(0, 10, batch).astype(np.int32)
    print(f"{'N':>6} {'driver':>11} {'train us/step':>14} {'infer us/step':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.n.split(",")):
            out = os.path.join(tmp, f"n{n}")
            manifest = compile_network(recurrent_lif(100, n, 10), CompileOptions(batch=batch, chunk=steps), out)
            rows = {}
            for driver in ("local-sync", "local-task"):
                model = load(out, hal_driver=driver)
                train = per_step(lambda: model.train_sequence(x, target), steps)
                infer = per_step(lambda: model.infer_sequence(x), steps)
                rows[driver] = train
                print(f"{n:>6} {driver:>11} {train:>14.0f} {infer:>14.0f}")
            print(f"{n:>6} local-task/local-sync train time: {rows['local-task'] / rows['local-sync']:.2f} "
                  f"(compiled default: {manifest['hal_driver']})")


if __name__ == "__main__":
    main()
