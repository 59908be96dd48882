"""cuda: IREE's CUDA backend for NVIDIA GPUs. Compiling needs no GPU; running needs IREE's `cuda`
driver and one. `sm` is the PTX target: IREE 3.13's table knows sm_80 (Ampere) but not sm_90, and
the driver JIT-compiles sm_80 PTX for newer chips (Hopper H100/H200 included)."""

from btc.backends.common import COMMON_FLAGS

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "cuda"
DEFAULT_ARCH = "sm_80"


def flags(sm: str = DEFAULT_ARCH) -> list[str]:
    return ["--iree-hal-target-device=cuda", f"--iree-cuda-target={sm}", *COMMON_FLAGS]
