"""metal-spirv: IREE's Metal backend for Apple GPUs (SPIR-V cross-compiled to Metal Shading Language,
embedded as source: compiling needs no Apple toolchain). `platform`: macos or ios. Running needs an
IREE runtime built with its Metal driver (the Linux wheel has none)."""

from btc.backends.common import COMMON_FLAGS

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "metal"
DEFAULT_ARCH = "macos"


def flags(platform: str = DEFAULT_ARCH) -> list[str]:
    return ["--iree-hal-target-device=metal", f"--iree-metal-target-platform={platform}", *COMMON_FLAGS]
