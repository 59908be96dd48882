"""The IREE device configuration a loaded model runs on."""
from __future__ import annotations

import os

__all__ = ["device_config"]

# Under mpirun, IREE's runtime sees the MPI world size in the environment and sets up its own MPI channel
# provider for collectives, loading libmpi.so by name: device creation fails unless that library is on
# LD_LIBRARY_PATH. btc's ranks exchange through mpi4py (btc.runtime.parallel), so the device is created
# with these hidden. (The rank variables stay: IREE picks a rank's CUDA device from them.)
MPI_WORLD_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def device_config(driver: str):
    import iree.runtime as rt

    saved = {k: os.environ.pop(k) for k in MPI_WORLD_VARIABLES if k in os.environ}
    try:
        return rt.Config(driver)
    finally:
        os.environ.update(saved)
