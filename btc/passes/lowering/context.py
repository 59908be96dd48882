"""What every lowering rule shares: the model's shapes, the module globals and their layout, and
the functions written so far with their ABI.

Rules are free functions of a `Lowering` (this context) and an `Fn` (one function body being
written); nothing here knows about a particular schedule op, loss or optimizer.
"""
from __future__ import annotations

from dataclasses import dataclass

from btc.algorithm import Algorithm
from btc.dialect.typed import typed
from btc.errors import BtcError
from btc.passes._view import ModelView
from btc.passes.lowering.sparse import SparseLayout
from btc.passes.lowering.text import Fn, tt

__all__ = ["Arg", "Lowering", "LoweringOptions", "Function"]


@dataclass(frozen=True)
class LoweringOptions:
    """The choices of btc-lower-to-linalg that change the module (see LowerToLinalgPass)."""

    optimizer: str = "adam"
    update_every: int = 0
    grad_clip: float = 0.0
    weight_decay: float = 0.0
    unroll: int = 0
    partitioned: bool = False  # one rank of a partitioned network (btc.frontend.partition)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    pack_tiles: tuple[int, ...] = ()  # (M0, N0, K0) of the target's matmul kernel: Fn.matmul_at(packed=True)


@dataclass(frozen=True)
class Arg:
    """One argument or result of an exported function, as the ABI records it."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    local: str = ""  # its SSA name inside the function, where the name would not make a unique one

    @property
    def mlir_type(self) -> str:
        return tt(*self.shape, dtype={"float32": "f32", "int32": "i32"}[self.dtype])

    @property
    def ssa(self) -> str:
        """The argument's SSA name inside the function: %local, or %name ("x_in" -> "%x_in")."""
        return "%" + (self.local or self.name)

    def record(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Function:
    name: str
    inputs: tuple[Arg, ...]
    outputs: tuple[Arg, ...]
    text: str


class Lowering:
    """The model's shapes, its globals (declared once, with their role and bytes) and the functions."""

    def __init__(self, view: ModelView, options: LoweringOptions):
        if view.schedule is None or view.loss is None:
            raise BtcError("the module has no btc.schedule or no btc.loss; lower it after btc-rewrite-online")
        self.v, self.B, self.K = view, view.batch, view.chunk
        self.options = options
        self.C = view.readout().size
        self.ce = view.loss["kind"] == "cross_entropy"
        self.algorithm = Algorithm.parse(typed(view.schedule).algorithm)
        if options.update_every and not self.algorithm.online:
            raise BtcError(f"update_every needs an online algorithm; this schedule is {self.algorithm.value}")
        self.params = view.params()
        self.frozen_params = {f"{p.name}.{k}" for p in view.projections.values() if p.frozen for k in ("W", "b")}
        # the schedule's ops, in order, typed (its terminator left out)
        self.schedule = [typed(op) for op in view.schedule.regions[0].blocks[0].operations
                         if op.operation.name != "btc.yield"]
        self.corrected = [t for t in view.traces.values() if t.kind == "post" and t.correction and t.decay > 0]
        # the past `lag` steps of every input or group some projection reads late (recurrent or delayed)
        self.histories = view.histories()
        self.layout: list[dict] = []
        self.functions: list[Function] = []
        self.sparse = {p.name: SparseLayout(p.name, p.pre_index, p.post_index, view.size(p.pre), view.size(p.post),
                                            p.tie, p.n_weights, p.weight_scale)
                       for p in view.projections.values() if p.sparse}
        # immutable i32 globals (sparse projections' index tables): symbol -> (array, projection, table)
        self.tables: dict[str, tuple] = {}

    # ---------------------------------------------------------------- globals
    def declare(self, sym: str, shape: tuple, role: str, label: str, init: float | None = 0.0) -> None:
        """A mutable global; `init` its value at load (None: a parameter, whose array the archive holds)."""
        if any(e["global"] == sym for e in self.layout):
            raise BtcError(f"two buffers would both be called @{sym} ({label}); rename a group, state or parameter")
        n = 1
        for d in shape:
            n *= d
        self.layout.append({"global": sym, "role": role, "name": label, "shape": list(shape), "bytes": 4 * n,
                            "init": init})

    def load_table(self, fn: Fn, projection: str, table: str) -> str:
        """Load one index table of a sparse projection (declared on first use)."""
        sym = f"ix_{projection}_{table}"
        array = self.sparse[projection].table(table)
        self.tables.setdefault(sym, (array, projection, table))
        n = fn.name("ix")
        fn.emit(f"{n} = util.global.load @{sym} : {tt(*array.shape, dtype='i32')}")
        return n

    def table_layout(self) -> list[dict]:
        """The index tables as layout records (role "index"), for the manifest's memory accounting."""
        return [{"global": sym, "role": "index", "name": f"{proj}.{table}", "shape": list(a.shape), "bytes": 4 * a.size,
                 "init": None}
                for sym, (a, proj, table) in self.tables.items()]

    def shape_of(self, sym: str) -> tuple[int, ...]:
        return tuple(next(e["shape"] for e in self.layout if e["global"] == sym))

    def type_of(self, sym: str) -> str:
        return tt(*self.shape_of(sym))

    def load(self, fn: Fn, sym: str) -> str:
        n = fn.name("ld")
        fn.emit(f"{n} = util.global.load @{sym} : {self.type_of(sym)}")
        return n

    def store(self, fn: Fn, value: str, sym: str) -> None:
        fn.emit(f"util.global.store {value}, @{sym} : {self.type_of(sym)}")

    def syms(self, role: str) -> list[str]:
        return [e["global"] for e in self.layout if e["role"] == role]

    def state_syms(self) -> list[str]:
        syms = [f"h_{g}_{s}" for g in self.v.order for s in self.v.groups[g].states]
        return syms + [f"hist_{pre}_{k}" for pre, lags in self.histories.items() for k in range(lags)]

    def trace_syms(self) -> list[str]:
        """Traces and the step counter: everything reset_state zeroes besides the states."""
        syms = [f"tr_{t.name}_{s}" for t in self.v.traces.values() for s in range(t.num_states)]
        return syms + (["t_seq"] if self.corrected else [])

    def spike_histories(self) -> dict[str, int]:
        return {pre: lags for pre, lags in self.histories.items() if pre in self.v.groups}

    def param_index(self, name: str) -> int:
        return [n for n, _ in self.params].index(name)

    # ---------------------------------------------------------------- the ABI of the step functions
    def step_inputs(self, per_step: bool) -> list[Arg]:
        """x_<input> per input: [B, I] per step, or [K, B, I] per chunk."""
        lead = () if per_step else (self.K,)
        return [Arg(f"x_{n}", (*lead, self.B, i["size"])) for n, i in self.v.inputs.items()]

    def target_inputs(self, per_step: bool) -> list[Arg]:
        """target (class indices for cross-entropy, values for MSE) and the loss mask per step."""
        lead = () if per_step else (self.K,)
        target = Arg("target", (*lead, self.B), "int32") if self.ce else Arg("target", (*lead, self.B, self.C))
        return [target, Arg("mask", lead)]

    # Per-step functions take step tensors ([B, I], target[B], mask[]); chunk functions take
    # [K, ...] tensors and slice step t (t=None means a per-step function).
    def inputs_at(self, fn: Fn, t: str | None) -> dict:
        if t is None:
            return {n: f"%x_{n}" for n in self.v.inputs}
        return {n: fn.slice_t(f"%x_{n}", t, (self.B, i["size"])) for n, i in self.v.inputs.items()}

    def target_at(self, fn: Fn, t: str | None) -> str:
        if t is None:
            return "%target"
        if self.ce:
            return fn.slice_t("%target", t, (self.B,), dtype="i32")
        return fn.slice_t("%target", t, (self.B, self.C))

    def step_weight(self, fn: Fn, t: str | None) -> str:
        """mask_t / (number of loss terms averaged): the weight of step t's loss."""
        m, w = fn.name("m"), fn.name("w")
        inv = fn.const(1.0 / (self.B if self.ce else self.B * self.C))
        fn.emit(f"{m} = tensor.extract %mask[] : {tt()}" if t is None else
                f"{m} = tensor.extract %mask[{t}] : {tt(self.K)}")
        fn.emit(f"{w} = arith.mulf {m}, {inv} : f32")
        return w

    # ---------------------------------------------------------------- exported functions
    def export(self, name: str, inputs: list[Arg], outputs: list[Arg], fn: Fn, values: list[str]) -> None:
        """Finish `fn` as the public function `name`; its arguments and results become its ABI."""
        if len(values) != len(outputs):
            raise AssertionError(f"{name}: {len(values)} values for {len(outputs)} results")
        types = ", ".join(a.mlir_type for a in outputs)
        fn.emit(f"return {', '.join(values)} : {types}" if values else "return")
        args = ", ".join(f"{a.ssa}: {a.mlir_type}" for a in inputs)
        head = f"func.func @{name}({args})" + (f" -> ({types})" if outputs else "")
        self.functions.append(Function(name, tuple(inputs), tuple(outputs),
                                       head + " {\n" + "\n".join(fn.lines) + "\n}"))
