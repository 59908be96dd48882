"""`btc.compile`: Network -> btc dialect -> pass pipeline -> IREE -> artifact directory.

One options object (CompileOptions) carries every choice; it is validated before anything runs,
and the artifact is written to a temporary directory that is renamed into place only when whole.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

from btc.errors import BtcError

__all__ = ["CompileOptions", "ALGORITHMS", "compile_network", "lower_network", "MANIFEST_VERSION"]

ALGORITHMS = ("pp-prop", "d-rtrl", "hybrid", "bptt")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class CompileOptions:
    """Every compile-time choice, validated by `check()` before anything runs.

    algorithm: pp-prop | d-rtrl | hybrid (per projection, by `trace_memory_budget` or, without one,
      D-RTRL wherever its trace is no larger than pp-prop's pair) | bptt;
      `projection_algorithms` ({projection: "pp-prop" | "d-rtrl"}) overrides any of them.
    batch B and chunk K fix the compiled shapes.
    pp-prop traces: `decay` alpha in [0, 1) for both, or `rank` r (alpha = (r-1)/(r+1)), or
      `decay_pre` / `decay_post` for each side; `bias_correction` divides the postsynaptic factor
      by 1 - alpha_post^(k+1), k counted in time steps since the last state reset.
    optimizer: adam | sgd; `update_every` k: apply the update inside the module every k time steps
      (continual learning; None: the runtime applies it after each sequence); `grad_clip`: global
      gradient-norm clip; `weight_decay`: decoupled (AdamW-style) decay per update.
    target: a backend name."""

    algorithm: str = "pp-prop"
    batch: int = 32
    chunk: int = 100
    decay: float = 0.9
    optimizer: str = "adam"
    target: str = "llvm-cpu"
    rank: int | None = None
    decay_pre: float | None = None
    decay_post: float | None = None
    bias_correction: bool = True
    trace_memory_budget: int | None = None
    projection_algorithms: dict | None = None
    update_every: int | None = None
    grad_clip: float | None = None
    weight_decay: float = 0.0

    def alphas(self) -> tuple[float, float]:
        """(pre-trace decay, post-trace decay)."""
        base = (self.rank - 1) / (self.rank + 1) if self.rank is not None else self.decay
        return (base if self.decay_pre is None else self.decay_pre,
                base if self.decay_post is None else self.decay_post)

    def check(self) -> None:
        from btc.backends import TARGETS
        from btc.passes.lower_to_linalg import OPTIMIZERS

        if self.algorithm not in ALGORITHMS:
            raise BtcError(f"unknown algorithm {self.algorithm!r}; expected one of {list(ALGORITHMS)}")
        for name in ("batch", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise BtcError(f"{name} must be a positive integer, got {value!r}")
        for name in ("decay", "decay_pre", "decay_post"):
            value = getattr(self, name)
            if value is None and name != "decay":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise BtcError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1):
            raise BtcError(f"rank must be an integer >= 1 (alpha = (rank-1)/(rank+1)), got {self.rank!r}")
        if not isinstance(self.bias_correction, bool):
            raise BtcError(f"bias_correction must be True or False, got {self.bias_correction!r}")
        if self.trace_memory_budget is not None:
            if self.algorithm != "hybrid":
                raise BtcError(f"trace_memory_budget applies to algorithm 'hybrid', not {self.algorithm!r}")
            if isinstance(self.trace_memory_budget, bool) or not isinstance(self.trace_memory_budget, int) \
                    or self.trace_memory_budget <= 0:
                raise BtcError(f"trace_memory_budget must be a positive number of bytes, got {self.trace_memory_budget!r}")
        if self.projection_algorithms:
            if self.algorithm == "bptt":
                raise BtcError("projection_algorithms choose between online algorithms; BPTT has no per-projection choice")
            if not isinstance(self.projection_algorithms, dict):
                raise BtcError(f"projection_algorithms must be a dict projection -> algorithm, got "
                               f"{self.projection_algorithms!r}")
        if self.update_every is not None:
            if isinstance(self.update_every, bool) or not isinstance(self.update_every, int) or self.update_every < 1:
                raise BtcError(f"update_every must be a positive number of time steps, got {self.update_every!r}")
            if self.algorithm == "bptt":
                raise BtcError("update_every needs an online algorithm; BPTT's gradient exists only after the sequence")
        if self.grad_clip is not None and (isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float))
                                           or not 0 < self.grad_clip < float("inf")):
            raise BtcError(f"grad_clip must be a positive gradient norm, got {self.grad_clip!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) \
                or not 0.0 <= self.weight_decay < 1.0:
            raise BtcError(f"weight_decay must be a number in [0, 1), got {self.weight_decay!r}")
        if self.optimizer not in OPTIMIZERS:
            raise BtcError(f"unknown optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if self.target not in TARGETS:
            raise BtcError(f"unknown target {self.target!r}; known targets: {sorted(TARGETS)}")

    def pipeline(self) -> list:
        from btc.passes import default_pipeline

        pre, post = self.alphas()
        overrides = tuple(f"{k}={v}" for k, v in sorted((self.projection_algorithms or {}).items()))
        return default_pipeline(
            self.algorithm,
            plan={"decay_pre": pre, "decay_post": post, "correction": self.bias_correction,
                  "budget": self.trace_memory_budget or 0, "overrides": overrides},
            lowering={"optimizer": self.optimizer, "update_every": self.update_every or 0,
                      "grad_clip": float(self.grad_clip or 0.0), "weight_decay": float(self.weight_decay)})


def lower_network(net, options: CompileOptions, dump_dir: str | None = None):
    """Run the whole btc pipeline; returns (lowered module, pipeline text)."""
    from btc.dialect import parse_module
    from btc.frontend.emit import emit_module
    from btc.passes import pipeline_text, run_pipeline

    options.check()
    module = parse_module(emit_module(net, options.batch, options.chunk))
    passes = options.pipeline()
    run_pipeline(module, passes, dump_dir)
    return module, pipeline_text(passes)


def _signatures(net, options: CompileOptions, params: list, tape: list) -> dict:
    K, B = options.chunk, options.batch
    C = net.groups[net.loss.readout].size

    def arg(name, shape, dtype="float32"):
        return {"name": name, "shape": list(shape), "dtype": dtype}

    def inputs(*lead):
        return [arg(f"x_{i.name}", (*lead, B, i.size)) for i in net.inputs.values()]

    def target(*lead):
        if net.loss.kind == "cross_entropy":
            return arg("target", (*lead, B), "int32")
        return arg("target", (*lead, B, C))

    record = [arg("readout", (B, C))]
    record += [arg(f"spikes.{g}", (B, net.size(g))) for g in net.order() if hasattr(net.groups[g], "neuron")]
    for g in net.order():
        grp = net.groups[g]
        names = grp.neuron.state_names(net.dt) if hasattr(grp, "neuron") else ("r",)
        record += [arg(f"state.{g}.{s}", (B, grp.size)) for s in names]
    param_sigs = [arg(n, s) for n, s in params]
    tape_sigs = [arg(f"tape.{e['name']}", e["shape"]) for e in tape]
    if options.algorithm == "bptt":
        training = {
            "bptt_forward_step": {"inputs": inputs() + [target(), arg("mask", ())],
                                  "outputs": [arg("loss", ()), arg("readout", (B, C))] + tape_sigs},
            "bptt_begin_backward": {"inputs": [], "outputs": []},
            "bptt_backward_step": {"inputs": inputs() + tape_sigs, "outputs": []},
        }
    else:
        schedule = [arg("lr", ()), arg("valid", (), "int32")] if options.update_every else []
        training = {"train_chunk": {"inputs": inputs(K) + [target(K), arg("mask", (K,))] + schedule,
                                    "outputs": [arg("loss", ()), arg("readout_sum", (B, C))]}}
    return {
        **training,
        "infer_chunk": {"inputs": inputs(K), "outputs": [arg("readout", (K, B, C))]},
        "record_step": {"inputs": inputs(), "outputs": record},
        "reset_state": {"inputs": [], "outputs": []},
        "zero_grads": {"inputs": [], "outputs": []},
        "reset_optimizer": {"inputs": [], "outputs": []},
        "apply_update": {"inputs": [arg("lr", ())], "outputs": []},
        "get_params": {"inputs": [], "outputs": param_sigs},
        "get_grads": {"inputs": [], "outputs": param_sigs},
        "set_params": {"inputs": param_sigs, "outputs": []},
    }


def _runtime_driver(net, options: CompileOptions) -> str:
    """local-task (all cores) pays ~100 us per dispatch and wins only on big matmuls. BPTT stays on
    local-sync: with local-task its per-step calls held 3.4x the memory and crashed at exit."""
    from btc.backends import get_backend
    from btc.passes.lower_to_linalg import LARGE_STEP_MACS

    if options.target != "llvm-cpu":
        return get_backend(options.target).DRIVER
    macs = sum(options.batch * net.size(p.pre) * net.size(p.post) for p in net.projections.values())
    return "local-task" if macs >= LARGE_STEP_MACS and options.algorithm == "pp-prop" else "local-sync"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def compile_network(net, options: CompileOptions, out_dir: str, dump_dir: str | None = None,
                    model_source: str | None = None) -> dict:
    """Compile `net` and write the artifact directory; returns the manifest."""
    import iree.compiler

    import btc
    from btc.backends import compile_module

    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BtcError(f"output {out_dir} exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not _is_artifact(out_dir):
        raise BtcError(f"output directory {out_dir} is not empty and holds no btc artifact; refusing to overwrite")
    options.check()
    net.check()
    params = net.init_params()  # before compiling: a bad initialiser fails fast
    module, pipeline = lower_network(net, options, dump_dir)
    from iree.compiler import ir

    layout = json.loads(ir.StringAttr(module.operation.attributes["btc.layout"]).value)
    plan = json.loads(ir.StringAttr(module.operation.attributes["btc.plan"]).value)
    tape = json.loads(ir.StringAttr(module.operation.attributes["btc.tape"]).value)
    vmfb = compile_module(str(module), options.target)
    param_list = [(n, tuple(a.shape)) for n, a in params.items()]

    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".btc-artifact-", dir=parent)
    try:
        with open(os.path.join(tmp, "model.vmfb"), "wb") as f:
            f.write(vmfb)
        np.savez(os.path.join(tmp, "init_params.npz"), **params)
        manifest = {
            "format": MANIFEST_VERSION,
            "btc_version": btc.__version__,
            "iree_version": getattr(iree.compiler, "__version__", None) or _iree_version(),
            "algorithm": options.algorithm,
            "options": asdict(options),
            "target": options.target,
            "driver": _runtime_driver(net, options),
            "pipeline": pipeline,
            "model_source": model_source,
            "batch": options.batch,
            "chunk": options.chunk,
            "loss": net.loss.kind,
            "readout": net.loss.readout,
            "inputs": {i.name: {"size": i.size, "binary": i.binary} for i in net.inputs.values()},
            "groups": {g: {"size": net.size(g), "model": getattr(net.groups[g], "model", "readout"),
                           "dale": getattr(net.groups[g], "dale", None)} for g in net.order()},
            "projections": {p.name: {"pre": p.pre, "post": p.post, "port": p.port, "sign": p.sign, "delay": p.delay,
                                     "recurrent": p.recurrent} for p in net.projections.values()},
            "params": [{"name": n, "shape": list(s), "dtype": "float32"} for n, s in param_list],
            "num_classes": net.size(net.loss.readout),
            "functions": _signatures(net, options, param_list, tape),
            "layout": layout,
            "trace_plan": plan,
            "update_every": options.update_every,
            "bptt_tape_bytes_per_step": ir.IntegerAttr(module.operation.attributes["btc.bptt_step_bytes"]).value,
            "memory_bytes": {role: sum(e["bytes"] for e in layout if e["role"] == role)
                             for role in sorted({e["role"] for e in layout})},
            "files": {name: _sha256(os.path.join(tmp, name)) for name in ("model.vmfb", "init_params.npz")},
        }
        manifest["content_hash"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an artifact is meant to be shared
        old = None
        if os.path.isdir(out_dir):
            old = out_dir + ".old-" + os.path.basename(tmp)
            os.rename(out_dir, old)
        try:
            os.rename(tmp, out_dir)
        except BaseException:
            if old:
                os.rename(old, out_dir)  # put the previous artifact back
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return manifest


def _is_artifact(path: str) -> bool:
    """Only a directory holding exactly a btc artifact may be replaced."""
    if set(os.listdir(path)) != {"manifest.json", "model.vmfb", "init_params.npz"}:
        return False
    try:
        with open(os.path.join(path, "manifest.json")) as f:
            return "format" in json.load(f)
    except (OSError, ValueError):
        return False


def _iree_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("iree-base-compiler")
    except Exception:
        return None
