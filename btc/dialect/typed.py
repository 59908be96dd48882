"""Typed Python wrappers for every `btc` op, generated from the declarations in `ops.py`.

For each `OpDecl` there is one class, named after the op in CamelCase plus `Op` (`btc.trace` ->
`TraceOp`, `btc.update_pre_trace` -> `UpdatePreTraceOp`):

  XOp.build(*operands, regions=None, ip=None, loc=None, **attrs) -> XOp
      creates the op: each attribute converted by its declared kind (str -> StringAttr, int -> i64,
      float -> f64, f32 -> f32, bool -> BoolAttr, symbol -> FlatSymbolRefAttr, array -> ArrayAttr of
      its element kind); optional attributes given as None are left out; an unknown or missing
      attribute, a wrong kind or a value outside the declared choices is a BtcError naming both.
      `regions`, if given, holds one callable per declared region, called with the new ir.Region.
  XOp(operation)  wraps an existing op; one read-only property per attribute gives its Python value
      (the declared default for an absent optional attribute), plus `.operation`, `.regions`, `.results`.
  typed(op)       the wrapper of the right class for any btc op.

`make_attribute`/`read_attribute` are the same conversions for attributes outside an op declaration
(the module's `btc.batch`, the analysis annotations).
"""
from __future__ import annotations

from numbers import Integral, Real
from typing import Callable, Sequence

import numpy as np
from iree.compiler import ir

from btc.dialect.ops import MODULE_ATTRS, OPS, Attr, OpDecl
from btc.errors import BtcError

__all__ = ["BtcOp", "OP_CLASSES", "typed", "make_attribute", "read_attribute", "attribute_problem",
           "set_module_attribute", "module_attribute",
           "op_class_name"]

# the Python value types each kind accepts when building (numpy scalars included; bool is an int to
# Python, so it is refused where a number is due)
_ACCEPTS = {"str": (str,), "int": (Integral,), "float": (Real,), "f32": (Real,), "bool": (bool,),
            "symbol": (str,), "array": (list, tuple), "indices": (np.ndarray, list, tuple)}


def make_attribute(kind: str, value, element: str | None = None) -> ir.Attribute:
    """`value` as the MLIR attribute of `kind` (in the current context); TypeError if it cannot be."""
    if not isinstance(value, _ACCEPTS[kind]) or (kind != "bool" and isinstance(value, bool)):
        raise TypeError(f"expected {kind}, got {value!r}")
    if kind == "str":
        return ir.StringAttr.get(str(value))
    if kind == "int":
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(value))
    if kind == "float":
        return ir.FloatAttr.get(ir.F64Type.get(), float(value))
    if kind == "f32":
        return ir.FloatAttr.get(ir.F32Type.get(), float(value))
    if kind == "bool":
        return ir.BoolAttr.get(value)
    if kind == "symbol":
        return ir.FlatSymbolRefAttr.get(str(value))
    if kind == "indices":
        array = np.asarray(value)
        if array.ndim != 1 or array.dtype.kind not in "iu" or (array.size and (array.min() < -2**31 or array.max() >= 2**31)):
            raise TypeError(f"expected a 1-D array of int32 indices, got {array.dtype} of shape {list(array.shape)}")
        return ir.DenseElementsAttr.get(np.ascontiguousarray(array, dtype=np.int32))
    return ir.ArrayAttr.get([make_attribute(element, v) for v in value])


def _is_kind(kind: str, attr: ir.Attribute) -> bool:
    # a BoolAttr is an i1 IntegerAttr in the bindings: tell them apart explicitly
    if kind == "bool":
        return isinstance(attr, ir.BoolAttr)
    if kind == "int":
        return isinstance(attr, ir.IntegerAttr) and not isinstance(attr, ir.BoolAttr)
    if kind == "indices":
        return (isinstance(attr, ir.DenseElementsAttr) and str(attr.type.element_type) == "i32"
                and attr.type.rank == 1)
    return isinstance(attr, {"str": ir.StringAttr, "float": ir.FloatAttr, "f32": ir.FloatAttr,
                             "symbol": ir.FlatSymbolRefAttr, "array": ir.ArrayAttr}[kind])


def attribute_problem(kind: str, attr: ir.Attribute, element: str | None = None) -> str | None:
    """Why `attr` is not of `kind` (elements included), or None."""
    if not _is_kind(kind, attr):
        return f"must be {kind}, got {attr}"
    if kind == "array":
        bad = next((e for e in attr if not _is_kind(element, e)), None)
        if bad is not None:
            return f"must be an array of {element}, got element {bad}"
    return None


def set_module_attribute(module: ir.Module, name: str, value) -> None:
    """Set one of the module's declared attributes (ops.MODULE_ATTRS) from a Python value."""
    decl = _module_decl(name)
    with module.context, ir.Location.unknown():
        module.operation.attributes[name] = make_attribute(decl.kind, value, decl.element)


def module_attribute(module: ir.Module, name: str):
    """The Python value of one of the module's declared attributes; its default if absent and
    optional; a BtcError naming it if absent and required or of the wrong kind."""
    decl = _module_decl(name)
    attributes = module.operation.attributes
    if name not in attributes:
        if decl.optional:
            return decl.default
        raise BtcError(f"the module has no {name} attribute ({decl.kind})")
    problem = attribute_problem(decl.kind, attributes[name], decl.element)
    if problem:
        raise BtcError(f"module attribute {name} {problem}")
    return read_attribute(decl.kind, attributes[name], decl.element)


def _module_decl(name: str) -> Attr:
    if name not in MODULE_ATTRS:
        raise BtcError(f"{name} is not a declared module attribute; declared: {sorted(MODULE_ATTRS)}")
    return MODULE_ATTRS[name]


def read_attribute(kind: str, attr: ir.Attribute, element: str | None = None):
    """The Python value of an attribute already checked to be of `kind` (arrays as tuples)."""
    if kind == "array":
        return tuple(read_attribute(element, e) for e in attr)
    if kind == "indices":
        return np.array(attr, dtype=np.int32)
    return attr.value


class BtcOp:
    """Base of the generated op classes; `DECL` is the op's declaration."""

    DECL: OpDecl

    def __init__(self, operation):
        operation = operation.operation
        if operation.name != self.DECL.name:
            raise BtcError(f"{type(self).__name__} wraps {self.DECL.name} ops, got {operation.name}")
        self.operation = operation

    @property
    def regions(self):
        return self.operation.regions

    @property
    def results(self):
        return self.operation.results

    def __repr__(self) -> str:
        sym = self.operation.attributes["sym_name"] if "sym_name" in self.operation.attributes else ""
        return f"<{type(self).__name__} {sym}>"

    @classmethod
    def build(cls, *operands, regions: Sequence[Callable] | None = None, ip=None, loc=None, **attrs):
        """Create the op (at `ip`, else the current insertion point) with f32 results and its declared
        regions, each filled by the matching callable of `regions`; see the module docstring."""
        decl = cls.DECL
        declared = {a.name: a for a in decl.attrs}
        unknown = sorted(set(attrs) - set(declared))
        if unknown:
            raise BtcError(f"{decl.name}: unknown attribute {unknown[0]!r}; declared: {list(declared)}")
        built = {}
        for a in decl.attrs:
            value = attrs.get(a.name)
            if value is None:
                if a.optional:
                    continue
                raise BtcError(f"{decl.name}: missing attribute {a.name!r} ({a.kind})")
            if a.choices and value not in a.choices:
                raise BtcError(f"{decl.name}: attribute {a.name!r} is {value!r}; expected one of {list(a.choices)}")
            try:
                built[a.name] = make_attribute(a.kind, value, a.element)
            except TypeError as e:
                raise BtcError(f"{decl.name}: attribute {a.name!r}: {e}") from None
        if decl.operands is not None and len(operands) != decl.operands:
            raise BtcError(f"{decl.name}: takes {decl.operands} operands, got {len(operands)}")
        if regions is not None and len(regions) != len(decl.regions):
            raise BtcError(f"{decl.name}: has regions {list(decl.regions)}, got {len(regions)} to fill")
        f32 = ir.F32Type.get()
        op = ir.Operation.create(decl.name, results=[f32] * decl.results, operands=list(operands),
                                 attributes=built, regions=len(decl.regions), ip=ip, loc=loc)
        for fill, region in zip(regions or (), op.regions):
            fill(region)
        return cls(op)


def _attribute_property(a: Attr) -> property:
    def get(self):
        attributes = self.operation.attributes
        if a.name not in attributes:
            if a.optional:
                return a.default
            raise BtcError(f"{self.DECL.name}: missing attribute {a.name!r} ({a.kind})")
        attr = attributes[a.name]
        problem = attribute_problem(a.kind, attr, a.element)
        if problem:
            raise BtcError(f"{self.DECL.name}: attribute {a.name!r} {problem}")
        return read_attribute(a.kind, attr, a.element)

    kind = f"array of {a.element}" if a.element else a.kind
    return property(get, doc=f"`{a.name}` ({kind}" + (f", default {a.default!r})" if a.optional else ")"))


def op_class_name(op_name: str) -> str:
    """btc.update_pre_trace -> UpdatePreTraceOp."""
    return "".join(w.capitalize() for w in op_name.removeprefix("btc.").split("_")) + "Op"


def _op_class(decl: OpDecl) -> type:
    namespace = {"DECL": decl, "__doc__": f"`{decl.name}`: {decl.summary}", "__module__": __name__}
    for a in decl.attrs:
        if hasattr(BtcOp, a.name):
            raise AssertionError(f"{decl.name}: attribute {a.name!r} would hide BtcOp.{a.name}")
        namespace[a.name] = _attribute_property(a)
    return type(op_class_name(decl.name), (BtcOp,), namespace)


OP_CLASSES: dict[str, type] = {name: _op_class(decl) for name, decl in OPS.items()}
# each class is importable by name: from btc.dialect.typed import TraceOp
globals().update({cls.__name__: cls for cls in OP_CLASSES.values()})
__all__ += [cls.__name__ for cls in OP_CLASSES.values()]


def typed(op) -> BtcOp:
    """The typed wrapper of a btc op (an ir.Operation or OpView)."""
    op = op.operation
    if op.name not in OP_CLASSES:
        raise BtcError(f"unknown op {op.name}; the btc dialect has {sorted(OP_CLASSES)}")
    return OP_CLASSES[op.name](op)
