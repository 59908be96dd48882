"""Kernels an event-driven weight gradient could be built from, measured alone with llvm-cpu on this machine
(inputs already on the device; best of `--repeats` calls):

    python benchmarks/bench_kernels.py [--rows 2048] [--cols 2048] [--updates 2048] [--repeats 10]

- scatter_add: `iree_linalg_ext.scatter` of `updates` rows, non-unique indices, added into a [rows, cols]
  tensor: adding the rows of the entries a fixed-capacity list could not hold, gathered into one list for
  the whole block, to the gradient rows of their presynaptic neurons;
- elementwise_add: a [rows, cols] + [rows, cols] pass, a memory-bound yardstick of the same size.
The scatter is checked against numpy's `np.add.at`. btc's present slow path for such entries costs about
7 ns per entry of the whole [rows, cols] gradient whether or not any list overflowed
(btc/passes/lowering/events.py, gather_rows_sum).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def module(rows: int, cols: int, updates: int) -> str:
    t, u = f"tensor<{rows}x{cols}xf32>", f"tensor<{updates}x{cols}xf32>"
    ident = "affine_map<(d0, d1) -> (d0, d1)>"
    return f"""
func.func @scatter_add(%out: {t}, %upd: {u}, %idx: tensor<{updates}x1xi32>) -> {t} {{
  %r = iree_linalg_ext.scatter dimension_map = [0] unique_indices(false)
       ins(%upd, %idx : {u}, tensor<{updates}x1xi32>) outs(%out : {t}) {{
    ^bb0(%a: f32, %b: f32):
      %s = arith.addf %a, %b : f32
      iree_linalg_ext.yield %s : f32
  }} -> {t}
  return %r : {t}
}}
func.func @elementwise_add(%a: {t}, %b: {t}) -> {t} {{
  %e = tensor.empty() : {t}
  %r = linalg.generic {{indexing_maps = [{ident}, {ident}, {ident}], iterator_types = ["parallel", "parallel"]}}
       ins(%a, %b : {t}, {t}) outs(%e : {t}) {{
    ^bb0(%x: f32, %y: f32, %z: f32):
      %s = arith.addf %x, %y : f32
      linalg.yield %s : f32
  }} -> {t}
  return %r : {t}
}}
"""


def main() -> None:
    import iree.compiler as ic
    import iree.runtime as rt

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--updates", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    R, O, E = args.rows, args.cols, args.updates
    vmfb = ic.compile_str(module(R, O, E), target_backends=["llvm-cpu"], extra_args=["--iree-llvmcpu-target-cpu=host"])
    rng = np.random.default_rng(0)
    out, other = np.zeros((R, O), np.float32), rng.random((R, O)).astype(np.float32)
    upd, idx = rng.random((E, O)).astype(np.float32), rng.integers(0, R, (E, 1)).astype(np.int32)
    want = out.copy()
    np.add.at(want, idx[:, 0], upd)
    for driver in ("local-sync", "local-task"):
        ctx = rt.SystemContext(config=rt.Config(driver))
        ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
        f, dev = ctx.modules.module, ctx.config.device
        on_device = [rt.asdevicearray(dev, a) for a in (out, upd, idx, other)]
        got = np.asarray(f.scatter_add(*on_device[:3]).to_host())
        if not np.allclose(got, want, atol=1e-5):
            raise SystemExit(f"{driver}: scatter_add disagrees with np.add.at")
        for name, call in (("scatter_add", lambda: f.scatter_add(*on_device[:3])),
                           ("elementwise_add", lambda: f.elementwise_add(on_device[0], on_device[3]))):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            print(f"{driver:10} {name:16} [{R}x{O}], {E} rows scattered: {min(times) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
