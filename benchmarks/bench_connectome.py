#!/usr/bin/env python
"""The whole-brain experiment at the fly's size: compile the connectome network of
examples/fly_connectome.py (synthetic: 135,000 neurons, ~3.1 million connections, 78 regions), then
train it online (pp-prop, batch 1) on the teacher's region signals for T steps, streamed chunk by
chunk (a teacher model and a student model, so nothing of length T is ever held), for two lengths.

Each phase runs in its own child process, so its peak RSS (getrusage ru_maxrss) is its own:
  compile      seconds (connectome drawn, traced, lowered, IREE-compiled) and the artifact's size
  train T      peak RSS, ms per step (student train chunk + teacher inference chunk, timed apart),
               spikes per step and synaptic events per second (spikes x out-degree, measured on 200
               recorded steps), for T = --short and --long
  fit          held-out MSE before and after --epochs epochs of --steps steps (train_connectome)
Printed: the table, the ratio of the two lengths' peak RSS (from this run), and the memory BPTT would
need for T steps (the manifest's tape bytes per step x T).

    python benchmarks/bench_connectome.py                       # 135,000 neurons
    python benchmarks/bench_connectome.py --model small --short 200 --long 2000 --epochs 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

MARK = "BENCH_RESULT "
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXAMPLE = os.path.join(ROOT, "examples", "fly_connectome.py")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_compile(args) -> dict:
    from btc.driver import CompileOptions, compile_network
    from btc.tools.cli import load_model_function

    t0 = time.perf_counter()
    net = load_model_function(f"{EXAMPLE}:{args.model}")
    built = time.perf_counter() - t0
    compile_network(net, CompileOptions(batch=1, chunk=args.chunk), args.artifact)
    size = sum(os.path.getsize(os.path.join(args.artifact, f)) for f in os.listdir(args.artifact))
    return {"build_s": built, "compile_s": time.perf_counter() - t0, "artifact_mib": size / 2**20,
            "peak_rss_mib": _peak_mib()}


def child_train(args) -> dict:
    import numpy as np

    from btc.runtime import load
    from btc.tasks.connectome import ConnectomeTask

    student, teacher = load(args.artifact), load(args.artifact)
    task = ConnectomeTask(student, seed=0)
    teacher.set_params(task.teacher)
    rng = np.random.default_rng(1)
    K = student.chunk
    x_all = task.stimulus(args.steps, rng)  # [T, 1, channels] spikes: 4 bytes x channels per step
    rec = student.infer_sequence(x_all[:200], record=True)
    spikes = float(rec["spikes.brain"].sum(-1).mean())
    del rec
    out_degree = np.bincount(np.concatenate([student.connectivity[p][0] for p in ("exc", "inh")]),
                             minlength=student.abi["groups"][0]["size"])
    t_student = t_teacher = 0.0
    for t0 in range(0, args.steps, K):
        x = x_all[t0:t0 + K]
        a = time.perf_counter()
        target = teacher.infer_sequence(x, reset=t0 == 0)["readout"]
        b = time.perf_counter()
        student.train_sequence(x, target, np.full(len(x), 1.0 / K, np.float32), lr=1e-3, reset=t0 == 0)
        t_teacher += b - a
        t_student += time.perf_counter() - b
    ms = 1e3 * t_student / args.steps
    events = spikes / student.abi["groups"][0]["size"] * out_degree.sum()  # per step, at the mean rate
    return {"steps": args.steps, "train_ms_per_step": ms, "teacher_ms_per_step": 1e3 * t_teacher / args.steps,
            "spikes_per_step": spikes, "events_per_s": events / (ms / 1e3), "peak_rss_mib": _peak_mib()}


def child_fit(args) -> dict:
    from btc.runtime import load
    from btc.tasks.connectome import train_connectome

    model = load(args.artifact)
    r = train_connectome(model, args.epochs, args.lr, steps=args.fit_steps, window=100, seed=0)
    return {"initial_mse": r["initial_mse"], "final_mse": r["final_mse"], "train_s": r["train_seconds"],
            "epochs": r["epochs"], "peak_rss_mib": _peak_mib()}


def _run_child(phase: str, args, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--artifact", args.artifact, "--model", args.model,
           "--chunk", str(args.chunk), "--epochs", str(args.epochs), "--lr", str(args.lr),
           "--fit-steps", str(args.fit_steps)] + [a for k, v in extra.items() for a in (f"--{k}", str(v))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(MARK)), None)
    if out.returncode or line is None:
        sys.exit(f"{phase} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(line[len(MARK):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="build", help="function of examples/fly_connectome.py (build, small)")
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--short", type=int, default=1000)
    ap.add_argument("--long", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--fit-steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--artifact", default=None)
    ap.add_argument("--child", choices=["compile", "train", "fit"], default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args()
    if args.child:
        result = {"compile": child_compile, "train": child_train, "fit": child_fit}[args.child](args)
        print(MARK + json.dumps(result), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.artifact = args.artifact or os.path.join(tmp, "fly")
        c = _run_child("compile", args)
        print(f"compile: {c['compile_s']:.1f} s (network built in {c['build_s']:.1f} s), artifact "
              f"{c['artifact_mib']:.1f} MiB, peak RSS {c['peak_rss_mib']:.0f} MiB", flush=True)
        with open(os.path.join(args.artifact, "manifest.json")) as f:
            abi = json.load(f)["abi"]
        groups = {g["name"]: g["size"] for g in abi["groups"]}
        nnz = sum(p["connectivity"].get("nnz", 0) for p in abi["projections"] if p["name"] in ("exc", "inh"))
        print(f"network: {groups['brain']:,} neurons, {nnz:,} connections, {groups['regions']} regions; "
              f"module state {sum(abi['memory_bytes'].values()) / 2**20:.1f} MiB", flush=True)
        runs = [_run_child("train", args, steps=T) for T in (args.short, args.long)]
        print(f"{'T':>7} {'peak RSS MiB':>13} {'train ms/step':>14} {'teacher ms/step':>16} {'spikes/step':>12} "
              f"{'events/s':>12}")
        for r in runs:
            print(f"{r['steps']:>7} {r['peak_rss_mib']:>13.0f} {r['train_ms_per_step']:>14.2f} "
                  f"{r['teacher_ms_per_step']:>16.2f} {r['spikes_per_step']:>12.0f} {r['events_per_s']:>12.3g}")
        print(f"peak RSS T={args.long} / T={args.short}: {runs[1]['peak_rss_mib'] / runs[0]['peak_rss_mib']:.3f}")
        per_step = abi["bptt_tape_bytes_per_step"]
        print(f"BPTT would hold {per_step:,} B per step: T={args.long:,} -> {per_step * args.long / 2**30:.1f} GiB "
              f"(btc inspect ARTIFACT --steps {args.long})")
        fit = _run_child("fit", args)
        print(f"fit: held-out MSE {fit['initial_mse']:.4f} -> {fit['final_mse']:.4f} "
              f"(x{fit['final_mse'] / fit['initial_mse']:.3f}) in {args.epochs} epochs of {args.fit_steps} steps, "
              f"{fit['train_s']:.0f} s; peak RSS {fit['peak_rss_mib']:.0f} MiB")
        for h in fit["epochs"]:
            print(f"  {h}")


if __name__ == "__main__":
    main()
