"""llvm-cpu: IREE's CPU backend, tuned for the host that compiles; or cross-compiled for another CPU by
its LLVM triple (aarch64-linux-gnu, riscv64-linux-gnu, x86_64-linux-gnu, ...), then for that
architecture's generic CPU."""

from btc.backends.common import COMMON_FLAGS

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "local-sync"
DEFAULT_ARCH = None  # this host


def flags(triple: str | None = None) -> list[str]:
    if triple is None:
        cpu = ["--iree-llvmcpu-target-cpu=host"]
    elif triple.startswith("riscv64"):  # RV64GC, hard float: bare generic links soft-float calls (fmaf)
        cpu = [f"--iree-llvmcpu-target-triple={triple}", "--iree-llvmcpu-target-cpu=generic-rv64",
               "--iree-llvmcpu-target-cpu-features=+m,+a,+f,+d,+c", "--iree-llvmcpu-target-abi=lp64d"]
    else:
        cpu = [f"--iree-llvmcpu-target-triple={triple}", "--iree-llvmcpu-target-cpu=generic"]
    return ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
            *cpu, *COMMON_FLAGS]
