"""`btc.compile`: Network -> btc dialect -> pass pipeline -> IREE -> artifact directory.

One options object (CompileOptions) carries every choice; it is validated before anything runs,
and the artifact is written to a temporary directory that is renamed into place only when whole.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

from btc.algorithm import Algorithm
from btc.dialect.ops import ANNOTATIONS
from btc.errors import BtcError
from btc.runtime.artifact import MANIFEST_FORMAT, REQUIRED_FILES, abi_hash  # what the runtime reads is what the compiler writes
from btc.runtime.parameters import archive_entries, write_archive

__all__ = ["CompileOptions", "compile_network", "lower_network", "DEFAULT_ACTIVITY"]

DEFAULT_ACTIVITY = ANNOTATIONS["btc.activity"].default  # of a spike train's entries, active per step


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
    event_driven: auto (a cost model picks dense or event-driven work per projection) | on (event-driven
      wherever the presynaptic signal is binary) | off (all dense); `activity` is the expected fraction of
      a spike train's entries active per step (or a dict input/group name -> fraction, "*" for the rest): the cost model's
      premise and the size of the active lists (a busier step stays exact, only slower).
    partitioned: one rank of a partitioned network (btc.frontend.partition): train_chunk takes the other
      ranks' readout and the module exports peek_step; the ranks exchange every step, so chunk must be 1.
    target: a backend name."""

    algorithm: Algorithm | str = Algorithm.PP_PROP
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
    event_driven: str = "auto"
    activity: float | dict = DEFAULT_ACTIVITY
    partitioned: bool = False

    def alphas(self) -> tuple[float, float]:
        """(pre-trace decay, post-trace decay)."""
        base = (self.rank - 1) / (self.rank + 1) if self.rank is not None else self.decay
        return (base if self.decay_pre is None else self.decay_pre,
                base if self.decay_post is None else self.decay_post)

    def check(self) -> None:
        from btc.backends import split_target
        from btc.passes.lowering import OPTIMIZERS
        from btc.passes.plan_events import EVENT_MODES

        algorithm = Algorithm.parse(self.algorithm)
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
            if algorithm is not Algorithm.HYBRID:
                raise BtcError(f"trace_memory_budget applies to algorithm 'hybrid', not {algorithm.value!r}")
            if isinstance(self.trace_memory_budget, bool) or not isinstance(self.trace_memory_budget, int) \
                    or self.trace_memory_budget <= 0:
                raise BtcError(f"trace_memory_budget must be a positive number of bytes, got {self.trace_memory_budget!r}")
        if self.projection_algorithms:
            if algorithm is Algorithm.BPTT:
                raise BtcError("projection_algorithms choose between online algorithms; BPTT has no per-projection choice")
            if not isinstance(self.projection_algorithms, dict):
                raise BtcError(f"projection_algorithms must be a dict projection -> algorithm, got "
                               f"{self.projection_algorithms!r}")
        if self.update_every is not None:
            if isinstance(self.update_every, bool) or not isinstance(self.update_every, int) or self.update_every < 1:
                raise BtcError(f"update_every must be a positive number of time steps, got {self.update_every!r}")
            if algorithm is Algorithm.BPTT:
                raise BtcError("update_every needs an online algorithm; BPTT's gradient exists only after the sequence")
        if self.grad_clip is not None and (isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, (int, float))
                                           or not 0 < self.grad_clip < float("inf")):
            raise BtcError(f"grad_clip must be a positive gradient norm, got {self.grad_clip!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) \
                or not 0.0 <= self.weight_decay < 1.0:
            raise BtcError(f"weight_decay must be a number in [0, 1), got {self.weight_decay!r}")
        if self.event_driven not in EVENT_MODES:
            raise BtcError(f"event_driven must be one of {list(EVENT_MODES)}, got {self.event_driven!r}")
        if isinstance(self.activity, dict) and any(not isinstance(k, str) or not k or "=" in k for k in self.activity):
            raise BtcError(f"activity: the keys must be input or group names (or '*' for the rest), got "
                           f"{sorted(map(repr, self.activity))}")
        per_source = self.activity.values() if isinstance(self.activity, dict) else [self.activity]
        if not per_source or any(isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1
                                 for a in per_source):
            raise BtcError(f"activity must be the expected fraction of a signal's entries active per step, in (0, 1], "
                           f"or a dict input/group name -> such a fraction; got {self.activity!r}")
        if not isinstance(self.partitioned, bool):
            raise BtcError(f"partitioned must be True or False, got {self.partitioned!r}")
        if self.partitioned:
            wrong = [why for bad, why in (
                (not algorithm.online, f"an online algorithm (not {algorithm.value!r}: its backward would exchange too)"),
                (self.chunk != 1, f"chunk=1 (not {self.chunk})"),
                (self.update_every, "no update_every (an update between two exchanges)"),
                (self.grad_clip, "no grad_clip (a norm over every rank's gradient)")) if bad]
            if wrong:
                raise BtcError("a rank of a partitioned network exchanges spikes and readouts with the others every "
                               f"step: it needs {' and '.join(wrong)}")
        if self.optimizer not in OPTIMIZERS:
            raise BtcError(f"unknown optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        split_target(self.target)

    def pipeline(self) -> list:
        from btc.backends import pack_tiles
        from btc.passes import default_pipeline

        pre, post = self.alphas()
        overrides = tuple(f"{k}={v}" for k, v in sorted((self.projection_algorithms or {}).items()))
        return default_pipeline(
            Algorithm.parse(self.algorithm).value,
            plan={"decay_pre": pre, "decay_post": post, "correction": self.bias_correction,
                  "budget": self.trace_memory_budget or 0, "overrides": overrides},
            lowering={"optimizer": self.optimizer, "update_every": self.update_every or 0,
                      "grad_clip": float(self.grad_clip or 0.0), "weight_decay": float(self.weight_decay),
                      "partitioned": self.partitioned, "pack_tiles": pack_tiles(self.target)},
            events={"mode": self.event_driven, **_activities(self.activity)})


def _activities(activity) -> dict:
    """btc-plan-events' options for a fraction, or a dict name -> fraction ("*": every other signal)."""
    if not isinstance(activity, dict):
        return {"activity": float(activity)}
    own = tuple(f"{k}={float(v)!r}" for k, v in sorted(activity.items()) if k != "*")
    return {"activity": float(activity.get("*", DEFAULT_ACTIVITY)), "activities": own}


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


SPARSE_PAIR_MACS = 4


def _hal_driver(abi, options: CompileOptions) -> str:
    """The IREE runtime driver the artifact asks for. local-task (all cores) pays ~100 us per
    dispatch and wins only on big matmuls. BPTT stays on local-sync: with local-task its per-step
    calls held 3.4x the memory and crashed at exit."""
    from btc.backends import get_backend, split_target
    from btc.passes.lowering import LARGE_STEP_MACS

    if split_target(options.target)[0] != "llvm-cpu":
        return get_backend(options.target).HAL_DRIVER
    pp_prop = Algorithm.parse(abi.algorithm) is Algorithm.PP_PROP
    # a sparse pair is a scalar load, worth ~4 dense multiply-accumulates: at 3.2 million pairs, B=1
    # (examples/fly_connectome.py), pp-prop took 27.6 ms per step on local-task and 47.0 on local-sync
    pairs = abi.batch * sum(p["connectivity"].get("nnz", 0) for p in abi.projections)
    work = abi.step_macs + (SPARSE_PAIR_MACS - 1) * pairs
    return "local-task" if work >= LARGE_STEP_MACS and pp_prop else "local-sync"


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
    from btc.backends import compile_module, save_temps_dir

    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise BtcError(f"output must be a directory name, got {out_dir!r}")
    out_dir = os.path.abspath(out_dir)
    check_output_dir(out_dir)
    options.check()
    net.check()
    check_size(net, options)
    params = net.init_params()  # before compiling: a bad initialiser fails fast
    model_hash = _model_hash(net)
    temps = save_temps_dir()  # BTC_SAVE_TEMPS: the IR after every pass, the pipeline, IREE's input and flags
    dump_dir = dump_dir or (os.path.join(temps, "passes") if temps else None)
    try:
        module, pipeline = lower_network(net, options, dump_dir)
    except BtcError as e:
        if temps:
            raise BtcError(f"{e}\n(the IR after every pass that ran is in {dump_dir})") from None
        raise
    if temps:
        with open(os.path.join(temps, "pipeline.txt"), "w") as f:
            f.write(pipeline + "\n")
    # from here on the dialect module is the source of truth, not the frontend Network
    from btc.passes.lowering import Abi

    abi = Abi.from_module(module)
    want = [(p["name"], tuple(p["shape"])) for p in abi.params]
    got = [(n, tuple(a.shape)) for n, a in params.items()]
    if got != want:
        raise BtcError(f"internal: the network's initial parameters {got} do not match the module's {want}")
    vmfb = compile_module(str(module), options.target, temps=temps)

    with staged(out_dir, ".btc-artifact-", "artifact") as tmp:
        with open(os.path.join(tmp, "model.vmfb"), "wb") as f:
            f.write(vmfb)
        # every mutable global's initial value: the module reads them as named parameters at load
        layout = abi.to_dict()["layout"]
        write_archive(os.path.join(tmp, "params.irpa"), layout, archive_entries(layout, params))
        np.savez(os.path.join(tmp, "connectivity.npz"),
                 **{f"{p.name}.{side}": getattr(p.connectivity, side) for p in net.projections.values()
                    if p.connectivity is not None for side in ("pre", "post", "tie")
                    if getattr(p.connectivity, side) is not None})
        manifest = {
            "format": MANIFEST_FORMAT,
            "btc_version": btc.__version__,
            "iree_version": getattr(iree.compiler, "__version__", None) or _iree_version(),
            "options": {k: (v.value if isinstance(v, Algorithm) else v) for k, v in asdict(options).items()},
            "target": options.target,
            "hal_driver": _hal_driver(abi, options),
            "pipeline": pipeline,
            "model_source": model_source,
            "abi": {**abi.to_dict(), "memory_bytes": abi.memory_bytes},
            "abi_sha256": None,
            "files": {name: _sha256(os.path.join(tmp, name)) for name in REQUIRED_FILES[1:]},
        }
        manifest["abi_sha256"] = abi_hash(manifest["abi"])
        manifest["model_hash"] = model_hash
        manifest["content_hash"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    return manifest


@contextlib.contextmanager
def staged(out_dir: str, prefix: str, what: str, run: str = "compile"):
    """A temporary directory beside `out_dir` to write into, renamed to `out_dir` (replacing a previous one)
    when the block ends; on any failure it is removed, so nothing half-written stays."""
    try:
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=prefix, dir=os.path.dirname(out_dir))
    except OSError as e:
        raise BtcError(f"cannot write the {what} to {out_dir}: {e.strerror or e}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; what is written is meant to be shared
        old = _publish(tmp, out_dir, what, run)  # the previous one stays until the new one is in place
    except OSError as e:  # a full disk, a quota
        shutil.rmtree(tmp, ignore_errors=True)
        raise BtcError(f"could not write the {what} {out_dir!r}: {e.strerror or e} (nothing was written)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _model_hash(net) -> str:
    """The model itself, whatever it was compiled for: its btc dialect module at batch 1, chunk 1
    (dynamics, constants, projections, pairs). Checkpoints carry it: another model's are refused."""
    from btc.frontend.emit import emit_module

    return hashlib.sha256(emit_module(net, 1, 1).encode()).hexdigest()


def _publish(tmp: str, out_dir: str, what: str = "artifact", run: str = "compile") -> str | None:
    """Rename the finished artifact `tmp` to `out_dir`, moving a previous artifact aside (returned, to be
    removed). Another compile publishing the same directory at the same moment wins: this one's is
    discarded with a BtcError and no stray directory is left."""
    old = out_dir + ".old-" + os.path.basename(tmp)
    try:
        os.rename(out_dir, old)
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise BtcError(f"cannot replace {out_dir}: {e.strerror}") from None
    try:
        os.rename(tmp, out_dir)
    except OSError as e:
        if old:
            try:
                os.rename(old, out_dir)  # put the previous artifact back
            except OSError:
                shutil.rmtree(old, ignore_errors=True)  # another compile published meanwhile
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise BtcError(f"another {run} published {out_dir} at the same time; this {run}'s {what} was "
                           "discarded (the other one is in place)") from None
        raise BtcError(f"cannot write the {what} to {out_dir}: {e.strerror}") from None
    return old


def check_output_dir(out_dir: str) -> None:
    """Refuse, before compiling, an output the artifact could not be written to or must not replace."""
    if os.path.islink(out_dir):
        raise BtcError(f"output {out_dir} is a symbolic link; name the directory itself (replacing the artifact "
                       "would replace the link)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BtcError(f"output {out_dir} exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not _is_artifact(out_dir):
        raise BtcError(f"output directory {out_dir} is not empty and holds no btc artifact; refusing to overwrite")
    ancestor = os.path.dirname(out_dir)
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        what = "a dangling symbolic link" if os.path.islink(ancestor) else "not a directory"
        raise BtcError(f"output {out_dir}: {ancestor} is {what}, so the artifact cannot be written there")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BtcError(f"output {out_dir}: {ancestor} is not writable (read-only file system or permissions)")


def estimated_bytes(net, options: CompileOptions) -> int:
    """A lower bound of the module's memory: parameters with their gradients and Adam moments, and the
    states, spike histories and one trace per state of every group, for the compiled batch."""
    weights = sum((p.connectivity.n_weights if p.connectivity is not None else net.size(p.pre) * net.size(p.post))
                  + ((net.size(p.post) if p.connectivity is None else p.connectivity.n_biases) if p.bias else 0)
                  for p in net.projections.values())
    per_weight = 4 * (4 if options.optimizer == "adam" else 2)
    states = sum(g.size * max(1, len(getattr(getattr(g, "neuron", None), "state_names", lambda dt: ("r",))(net.dt)))
                 for g in net.groups.values())
    lags = sum(net.size(p.pre) * p.lag for p in net.projections.values())
    return per_weight * weights + 4 * options.batch * (2 * states + lags)


def check_size(net, options: CompileOptions) -> None:
    """Refuse, with the estimate, a model that cannot fit this machine's memory."""
    need = estimated_bytes(net, options)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise BtcError(f"the model needs at least {need / 2**30:,.1f} GiB (parameters with gradients and optimizer "
                       f"state, states and traces at batch {options.batch}); this machine has {have / 2**30:,.1f} GiB")


def _is_artifact(path: str) -> bool:
    """Only a directory holding exactly a btc artifact may be replaced."""
    files = set(os.listdir(path))  # this format's files, or format 2's (no connectivity.npz)
    if not set(REQUIRED_FILES[:3]) <= files <= set(REQUIRED_FILES):
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
