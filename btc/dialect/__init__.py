"""The `btc` MLIR dialect: op declarations (`ops`), typed builders and accessors generated from them
(`typed`), surrogate derivative rules (`surrogates`), context/parse/verify (`core`), IRDL export (`irdl`)."""
from btc.dialect.core import (attribute_value, attrs_of, btc_ops, new_context, parse_module, symbol_table,
                              verify_module, verify_op)
from btc.dialect.ops import OPS, OpDecl
from btc.dialect.typed import *  # noqa: F401,F403  (the generated op classes: InputOp, GroupOp, ...)
from btc.dialect.typed import __all__ as _typed_all

__all__ = ["OPS", "OpDecl", "attribute_value", "attrs_of", "btc_ops", "new_context", "parse_module", "symbol_table",
           "verify_module", "verify_op", *_typed_all]
