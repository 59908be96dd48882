"""btc, the BrainTrace compiler: spiking networks that learn online, compiled with MLIR and IREE.

The package is split in the order data flows: frontend -> dialect -> passes -> backends -> runtime.
`btc.runtime` imports none of the others, so a deployed artifact needs only numpy and IREE's runtime.
"""
from btc.errors import BtcError

__version__ = "0.1.0"
__all__ = ["BtcError", "__version__"]
