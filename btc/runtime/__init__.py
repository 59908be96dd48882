"""Load a compiled btc artifact and train or run it. Imports neither the compiler nor JAX."""
from btc.runtime.model import Model, load, read_artifact

__all__ = ["Model", "load", "read_artifact"]
