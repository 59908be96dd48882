"""llvm-cpu: IREE's CPU backend, tuned for the host that compiles (portable builds: pass cpu="generic")."""

__all__ = ["flags", "DRIVER"]

DRIVER = "local-sync"


def flags(cpu: str = "host") -> list[str]:
    # Dispatch creation stays at O1: at O2 (IREE 3.13) FuseEncodingOpsIntoDispatchRegions emits an
    # invalid linalg.generic for an MSE loss feeding a biased readout (tests/test_against_oracles.py).
    return ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
            f"--iree-llvmcpu-target-cpu={cpu}", "--iree-opt-level=O2", "--iree-dispatch-creation-opt-level=O1"]
