"""The `btc` MLIR dialect: op declarations (`ops`), context/parse/verify (`core`), IRDL export (`irdl`)."""
from btc.dialect.core import attrs_of, btc_ops, new_context, parse_module, symbol_table, verify_module, verify_op
from btc.dialect.ops import OPS, OpDecl

__all__ = ["OPS", "OpDecl", "attrs_of", "btc_ops", "new_context", "parse_module", "symbol_table",
           "verify_module", "verify_op"]
