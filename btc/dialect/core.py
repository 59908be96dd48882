"""Context, parsing, attribute access and the op verifier for the `btc` dialect.

Ops are built (`typed.py`) and parsed as unregistered ops; `verify_op` checks each against its
declaration in `ops.py`, so a malformed op is reported by name before any pass relies on it.
"""
from __future__ import annotations

from iree.compiler import ir

from btc.dialect.ops import MODULE_ATTRS, OPS
from btc.dialect.typed import attribute_problem, module_attribute, read_attribute, typed
from btc.errors import BtcError

__all__ = ["new_context", "parse_module", "attrs_of", "attribute_value", "verify_op", "verify_module", "btc_ops",
           "symbol_table"]


def new_context() -> ir.Context:
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    return ctx


def parse_module(text: str, ctx: ir.Context | None = None) -> ir.Module:
    ctx = ctx or new_context()
    try:
        return ir.Module.parse(text, ctx)
    except ir.MLIRError as e:
        raise BtcError(f"could not parse btc module: {e}") from None


def attribute_value(attr: ir.Attribute):
    """A Python value of an attribute: bool, int, float, str (symbols as their names), list, dict
    (an MLIR dictionary, keys sorted), None (unit); any other attribute is returned as it is."""
    if isinstance(attr, ir.UnitAttr):
        return None
    if isinstance(attr, (ir.BoolAttr, ir.IntegerAttr, ir.FloatAttr, ir.StringAttr, ir.FlatSymbolRefAttr)):
        return attr.value
    if isinstance(attr, ir.ArrayAttr):
        return [attribute_value(a) for a in attr]
    if isinstance(attr, ir.DictAttr):
        return {attr[i].name: attribute_value(attr[i].attr) for i in range(len(attr))}
    return attr


def attrs_of(op) -> dict:
    """All of the op's attributes, declared or not, as Python values (symbols as their names, arrays
    as lists); a btc op's declared attributes read better through its typed wrapper (`typed(op)`)."""
    op = op.operation
    return {name: attribute_value(op.attributes[name]) for name in op.attributes}


def _describe(op) -> str:
    op = op.operation
    sym = ir.StringAttr(op.attributes["sym_name"]).value if "sym_name" in op.attributes else None
    return f"{op.name}" + (f" {sym}" if sym is not None else "")


def verify_op(op) -> None:
    """Raise BtcError if `op` does not match its declaration."""
    op = op.operation
    decl = OPS.get(op.name)
    where = _describe(op)
    if decl is None:
        raise BtcError(f"unknown op {op.name}; the btc dialect has {sorted(OPS)}")
    for a in decl.attrs:
        if a.name not in op.attributes:
            if a.optional:
                continue
            raise BtcError(f"{where}: missing attribute {a.name!r} ({a.kind})")
        attr = op.attributes[a.name]
        problem = attribute_problem(a.kind, attr, a.element)
        if problem:
            raise BtcError(f"{where}: attribute {a.name!r} {problem}")
        value = read_attribute(a.kind, attr, a.element)
        if a.choices and value not in a.choices:
            raise BtcError(f"{where}: attribute {a.name!r} is {value!r}; expected one of {list(a.choices)}")
    if decl.operands is not None and len(op.operands) != decl.operands:
        raise BtcError(f"{where}: takes {decl.operands} operands, got {len(op.operands)}")
    if len(op.results) != decl.results:
        raise BtcError(f"{where}: has {decl.results} results, got {len(op.results)}")
    if len(op.regions) != len(decl.regions):
        raise BtcError(f"{where}: has {len(decl.regions)} regions {list(decl.regions)}, got {len(op.regions)}")
    if decl.verify is not None:
        problem = decl.verify(typed(op))
        if problem:
            raise BtcError(f"{where}: {problem}")


def btc_ops(module: ir.Module) -> list:
    """Top-level btc ops of the module, in order."""
    return [op.operation for op in module.body.operations if op.operation.name.startswith("btc.")]


def symbol_table(module: ir.Module) -> dict[str, ir.Operation]:
    table = {}
    for op in btc_ops(module):
        if "sym_name" in op.attributes:
            name = ir.StringAttr(op.attributes["sym_name"]).value
            if name in table:
                raise BtcError(f"two ops define the symbol @{name}: {table[name].name} and {op.name}")
            table[name] = op
    return table


def verify_module(module: ir.Module) -> None:
    """Every btc op matches its declaration, sits where it may, and its symbols resolve."""
    table = symbol_table(module)

    def visit(op, parent_kind: str):
        op = op.operation
        if op.name.startswith("btc."):
            verify_op(op)
            where = OPS[op.name].where
            if parent_kind not in where.split("|"):
                raise BtcError(f"{_describe(op)}: belongs in a {where}, found in a {parent_kind}")
            for name, value in attrs_of(op).items():
                if isinstance(op.attributes[name], ir.FlatSymbolRefAttr) and value not in table:
                    raise BtcError(f"{_describe(op)}: attribute {name} refers to unknown symbol @{value}")
        child_kind = "schedule" if op.name == "btc.schedule" else "region"
        for region in op.regions:
            for block in region.blocks:
                for inner in block.operations:
                    visit(inner, child_kind)

    for name in MODULE_ATTRS:
        module_attribute(module, name)  # a BtcError if missing (and required) or of the wrong kind
    for op in module.body.operations:
        visit(op, "module")
