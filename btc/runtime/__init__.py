"""Load a compiled btc artifact and train or run it. Imports neither the compiler nor JAX."""
from btc.runtime.device import keep_freed_memory
from btc.runtime.model import Model, load, read_artifact

# at import, before the threads of what follows: a thread's malloc arena is picked at its first allocation,
# and IREE's transient buffers are reused only from the one arena this allows (device.KEPT_MEMORY)
keep_freed_memory()

__all__ = ["Model", "load", "read_artifact"]
