"""metal-spirv: IREE's Metal backend for Apple GPUs (SPIR-V cross-compiled to Metal Shading Language,
embedded as source: compiling needs no Apple toolchain). `platform`: macos or ios. Running needs an
IREE runtime built with its Metal driver (the Linux wheel has none)."""

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "metal"
DEFAULT_ARCH = "macos"


def flags(platform: str = DEFAULT_ARCH) -> list[str]:
    return ["--iree-hal-target-device=metal", f"--iree-metal-target-platform={platform}", "--iree-opt-level=O2",
            "--iree-dispatch-creation-opt-level=O1", "--iree-opt-const-expr-hoisting=false",  # see llvm_cpu.py
            "--iree-vm-bytecode-module-strip-source-map=true"]
