"""llvm-cpu: IREE's CPU backend, tuned for the host that compiles (portable builds: pass --cpu generic)."""

__all__ = ["flags", "DRIVER"]

DRIVER = "local-sync"


def flags(cpu: str = "host") -> list[str]:
    return ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
            f"--iree-llvmcpu-target-cpu={cpu}", "--iree-opt-level=O2"]
