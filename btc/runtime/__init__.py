"""Load a compiled btc artifact and train or run it. Imports neither the compiler nor JAX."""
from btc.runtime.model import Model, load

__all__ = ["Model", "load"]
