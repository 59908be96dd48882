"""vmvx: IREE's portable VM-interpreted backend: the same bytecode runs on any host IREE's runtime
builds for, with no code generation (slow; for bring-up and hosts without a compiler target)."""

from btc.backends.common import COMMON_FLAGS

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "local-sync"
DEFAULT_ARCH = None


def flags(arch: None = None) -> list[str]:
    return ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=vmvx", *COMMON_FLAGS]
