"""vulkan-spirv: IREE's Vulkan backend (SPIR-V), for GPUs of any vendor with a Vulkan driver,
mobile ones included. `target` sets the SPIR-V environment: an LLVM-style chip (gfx1100, sm_86),
an architecture (rdna3, ampere, valhall4, adreno) or a product (rtx4090); running needs IREE's
`vulkan` driver (whose 3.13 runtime wheel describes itself as a rewrite scaffold)."""

from btc.backends.common import COMMON_FLAGS

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "vulkan"
DEFAULT_ARCH = "rdna3"


def flags(target: str = DEFAULT_ARCH) -> list[str]:
    return ["--iree-hal-target-device=vulkan", f"--iree-vulkan-target={target}", *COMMON_FLAGS]
