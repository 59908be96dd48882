#!/usr/bin/env python
"""btc on an NVIDIA GPU through IREE's CUDA backend: the same gradients as on the CPU, and the time
of a pp-prop training step.

Two halves, because the GPU machine has no compiler:

    python benchmarks/gpu_check.py --prepare .gpu     # here: compile CPU and CUDA artifacts, run the
                                                      # CPU ones, save inputs and expected gradients
    python benchmarks/gpu_check.py --run .gpu         # there: needs only numpy, iree-base-runtime, btc

Correctness: test networks (recurrent LIF; E/I COBA with Dale's law and delays; AlignPre with STP)
under pp-prop, D-RTRL and BPTT; the CUDA module's accumulated gradients are compared with the CPU
module's (max relative error). Speed: recurrent_lif(100, N, 10), B=32, pp-prop with chunks of K=100,
seconds per 100-step chunk on the GPU, printed next to the CPU time measured in --prepare.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CHECKS = [("recurrent_expon", "pp-prop"), ("recurrent_expon", "d-rtrl"), ("recurrent_expon", "bptt"),
          ("ei_coba_delays", "pp-prop"), ("align_pre", "pp-prop"), ("align_pre", "bptt")]
SPEED_N, SPEED_B, SPEED_K = (512, 2048), 32, 100


def prepare(out: str) -> None:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from data import sequence
    from nets import NETWORKS

    from btc.driver import CompileOptions, compile_network
    from btc.frontend.zoo import recurrent_lif
    from btc.runtime import load

    os.makedirs(out, exist_ok=True)
    expected = {}
    for name, alg in CHECKS:
        net = NETWORKS[name]()
        x, target, mask = sequence(net, 3, 13)
        for target_name in ("llvm-cpu", "cuda"):
            compile_network(net, CompileOptions(algorithm=alg, batch=3, chunk=5, target=target_name),
                            os.path.join(out, f"{name}-{alg}-{target_name}"))
        cpu = load(os.path.join(out, f"{name}-{alg}-llvm-cpu"))
        cpu.zero_grads()
        cpu.train_sequence(x, target, mask)
        np.savez(os.path.join(out, f"{name}-{alg}-data.npz"), x=x, target=target, mask=mask,
                 **{f"grad:{k}": v for k, v in cpu.grads.items()})
    rng = np.random.default_rng(0)
    for N in SPEED_N:
        net = recurrent_lif(100, N, 10)
        for target_name in ("llvm-cpu", "cuda"):
            compile_network(net, CompileOptions(batch=SPEED_B, chunk=SPEED_K, target=target_name),
                            os.path.join(out, f"speed{N}-{target_name}"))
        x = (rng.random((SPEED_K, SPEED_B, 100)) < 0.1).astype(np.float32)
        np.save(os.path.join(out, f"speed{N}-x.npy"), x)
        expected[f"cpu_s_per_chunk_N{N}"] = _time_chunks(load(os.path.join(out, f"speed{N}-llvm-cpu")), x)
    with open(os.path.join(out, "cpu.json"), "w") as f:
        json.dump(expected, f)
    print(json.dumps(expected))


def _time_chunks(model, x, repeats: int = 5) -> float:
    labels = np.zeros(x.shape[1], np.int32)
    mask = np.full(x.shape[0], 1.0 / x.shape[0], np.float32)
    model.train_sequence(x, labels, mask)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_sequence(x, labels, mask)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(out: str) -> None:
    sys.path.insert(0, ROOT)
    from btc.runtime import load

    report = {"checks": {}, "speed": {}}
    for name, alg in CHECKS:
        data = np.load(os.path.join(out, f"{name}-{alg}-data.npz"))
        try:
            gpu = load(os.path.join(out, f"{name}-{alg}-cuda"))
        except Exception as e:  # reported, and the other checks still run
            report["checks"][f"{name}/{alg}"] = f"failed to load: {e}"
            print(f"{name:16s} {alg:8s} FAILED to load on the GPU: {str(e).splitlines()[0][:200]}", flush=True)
            continue
        gpu.zero_grads()
        gpu.train_sequence(data["x"], data["target"], data["mask"])
        errs = {k: float(np.max(np.abs(v - data[f"grad:{k}"])) / max(np.max(np.abs(data[f"grad:{k}"])), 1e-12))
                for k, v in gpu.grads.items()}
        report["checks"][f"{name}/{alg}"] = max(errs.values())
        print(f"{name:16s} {alg:8s} max relative gradient difference GPU vs CPU {max(errs.values()):.2e}", flush=True)
    cpu = json.load(open(os.path.join(out, "cpu.json")))
    for N in SPEED_N:
        x = np.load(os.path.join(out, f"speed{N}-x.npy"))
        gpu_s = _time_chunks(load(os.path.join(out, f"speed{N}-cuda")), x)
        report["speed"][N] = {"gpu_s": gpu_s, "cpu_s": cpu[f"cpu_s_per_chunk_N{N}"]}
        print(f"pp-prop N={N} B={SPEED_B} K={SPEED_K}: GPU {gpu_s * 1e3:.1f} ms per chunk, CPU (2 cores, --prepare) "
              f"{cpu[f'cpu_s_per_chunk_N{N}'] * 1e3:.1f} ms: x{cpu[f'cpu_s_per_chunk_N{N}'] / gpu_s:.1f}", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", metavar="DIR")
    ap.add_argument("--run", metavar="DIR")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.prepare)
    if args.run:
        run(args.run)
