"""rocm: IREE's ROCm backend for AMD GPUs (HSACO code objects). Compiling needs no GPU; running needs
IREE's `hip` driver and one. `chip` is the LLVM AMDGPU target: gfx942 (MI300), gfx90a (MI250),
gfx1100 (RX 7900), or an IREE code name (cdna3, rdna3)."""

from btc.backends.common import COMMON_FLAGS

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "hip"
DEFAULT_ARCH = "gfx942"


def flags(chip: str = DEFAULT_ARCH) -> list[str]:
    return ["--iree-hal-target-device=hip", f"--iree-rocm-target={chip}", *COMMON_FLAGS]
