"""The timing loop btc's benchmarks share: compile a network, train one untimed sequence, then time
`repeats` more, each with its optimizer update (pp-prop by default, Adam at lr 1e-3)."""
from __future__ import annotations

import os
import tempfile
import time

import btc.runtime  # noqa: F401 - first, for its malloc parameters (btc.runtime.device.keep_freed_memory)


def time_training(net, batch: int, x, y, repeats: int, before=None, after=None, keep=None, **options) -> dict:
    """Compile `net` (chunk = the sequence length; `options`: more CompileOptions) in a temporary directory
    and train it on (x, y): {"seconds": the median timed sequence, "compile_s", "before": before(model)
    untrained, "after": after(model) once timed, "kept": keep(model) at the end}."""
    from btc.driver import CompileOptions, compile_network
    from btc.runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        compile_network(net, CompileOptions(batch=batch, chunk=len(x), **options), os.path.join(tmp, "a"))
        compile_s = time.perf_counter() - t0
        model = load(os.path.join(tmp, "a"))
        first = before(model) if before else None
        model.train_sequence(x, y, lr=1e-3)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.train_sequence(x, y, lr=1e-3)
            times.append(time.perf_counter() - t0)
        last = after(model) if after else None
        kept = keep(model) if keep else None
    return {"seconds": sorted(times)[len(times) // 2], "compile_s": compile_s, "before": first, "after": last,
            "kept": kept}
