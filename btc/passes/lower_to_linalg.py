"""btc-lower-to-linalg: reads the model, its `btc.derivatives`, `btc.trace`s and `btc.schedule`;
produces upstream MLIR (linalg/tensor/arith/math/scf + `util.global`s) in place of every btc op,
and the module's ABI record as the attribute `btc.abi`.

Run after btc-rewrite-online. The rules live in `btc/passes/lowering/` (its __init__ lists which
file lowers what); this pass only assembles the module: the globals are created with the bindings,
each function is parsed from its rule-written text on its own, so a bad function is named.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from iree.compiler import ir

from btc.errors import BtcError
from btc.passes._view import ModelView
from btc.passes.lowering import OPTIMIZERS, PARAMETER_SCOPE, LoweringOptions, lower

__all__ = ["LowerToLinalgPass"]


def _global_op(entry: dict) -> ir.Operation:
    """A private mutable util.global whose initial value is the parameter named after it, in scope "model":
    the artifact's params.irpa, or any archive an IREE host provides."""
    kind = ir.RankedTensorType.get(entry["shape"], ir.F32Type.get())
    value = ir.Attribute.parse(f'#flow.parameter.named<"{PARAMETER_SCOPE}"::"{entry["global"]}"> : {kind}')
    return ir.Operation.create("util.global", attributes={
        "sym_name": ir.StringAttr.get(entry["global"]), "sym_visibility": ir.StringAttr.get("private"),
        "is_mutable": ir.UnitAttr.get(), "type": ir.TypeAttr.get(kind), "initial_value": value})


def _table_op(sym: str, array, splat: bool = False) -> ir.Operation:
    """An immutable util.global holding an i32 index table (a splat stand-in when only its type matters)."""
    kind = ir.RankedTensorType.get(list(array.shape), ir.IntegerType.get_signless(32))
    value = (ir.DenseElementsAttr.get_splat(kind, ir.IntegerAttr.get(ir.IntegerType.get_signless(32), 0)) if splat
             else ir.DenseElementsAttr.get(array, type=kind))
    return ir.Operation.create("util.global", attributes={
        "sym_name": ir.StringAttr.get(sym), "sym_visibility": ir.StringAttr.get("private"),
        "type": ir.TypeAttr.get(kind), "initial_value": value})


@dataclass(frozen=True)
class LowerToLinalgPass:
    name = "btc-lower-to-linalg"
    optimizer: str = "adam"
    unroll: int = 0  # time steps per loop iteration of train_chunk; 0: 1 for large models, else 4, 2 or 1
    update_every: int = 0  # apply the optimizer inside train_chunk every k time steps (0: never)
    grad_clip: float = 0.0  # clip the global gradient norm to this before each update (0: off)
    weight_decay: float = 0.0  # decoupled weight decay per update
    # one rank of a partitioned network: train_chunk adds the other ranks' readout to its own before
    # the loss, and peek_step computes a step's spikes and readout without storing anything
    partitioned: bool = False
    # the target CPU's matmul tile, "M0xN0xK0" (llvm-cpu on this host: 16x16x1 with AVX-512): products summed
    # over many rows are packed for linalg.mmt4d (Fn.matmul_at); "": every product a plain linalg.matmul
    pack_tiles: str = ""

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise BtcError(f"{self.name}: optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("unroll", "update_every"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise BtcError(f"{self.name}: {name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.pack_tiles and not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*", self.pack_tiles):
            raise BtcError(f"{self.name}: pack_tiles must be M0xN0xK0 (positive integers, e.g. 16x16x1) or empty, "
                           f"got {self.pack_tiles!r}")
        if not 0.0 <= self.grad_clip < float("inf") or not 0.0 <= self.weight_decay < 1.0:
            raise BtcError(f"{self.name}: grad_clip must be >= 0 and finite and weight_decay in [0, 1), got "
                           f"{self.grad_clip!r} and {self.weight_decay!r}")

    def run(self, module) -> None:
        foreign = sorted({op.operation.name for op in module.body.operations
                          if not op.operation.name.startswith("btc.")})
        if foreign:
            raise BtcError(f"the module holds ops that are not btc ops: {foreign}; it lowers a btc module only")
        options = LoweringOptions(self.optimizer, self.update_every, self.grad_clip, self.weight_decay, self.unroll,
                                  self.partitioned,
                                  pack_tiles=tuple(int(v) for v in self.pack_tiles.split("x")) if self.pack_tiles else ())
        lw, abi = lower(ModelView(module), options)
        for op in list(module.body.operations):
            op.operation.erase()
        with module.context, ir.Location.unknown():
            globals_ = [_global_op(e) for e in lw.layout]
            for g in globals_ + [_table_op(sym, a) for sym, (a, *_) in lw.tables.items()]:
                module.body.append(g)
            # a function's global loads are verified against these declarations when it is parsed
            # (the tables by type only: their contents can be tens of MB)
            header = "\n".join([str(g) for g in globals_] + [str(_table_op(sym, a, splat=True))
                                                             for sym, (a, *_) in lw.tables.items()])
            for f in lw.functions:
                try:
                    parsed = ir.Module.parse(f"module {{\n{header}\n{f.text}\n}}")
                except ir.MLIRError as e:
                    raise BtcError(f"the lowering wrote an invalid function @{f.name}: {e}") from None
                module.body.append(list(parsed.body.operations)[-1].operation)
            module.operation.attributes["sym_name"] = ir.StringAttr.get("btc_model")
        abi.attach(module)
