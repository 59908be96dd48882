"""llvm-cpu: IREE's CPU backend, tuned for the host that compiles; or cross-compiled for another CPU by
its LLVM triple (aarch64-linux-gnu, riscv64-linux-gnu, x86_64-linux-gnu, ...), then for that
architecture's generic CPU."""

__all__ = ["flags", "HAL_DRIVER", "DEFAULT_ARCH"]

HAL_DRIVER = "local-sync"
DEFAULT_ARCH = None  # this host


def flags(triple: str | None = None) -> list[str]:
    cpu = ["--iree-llvmcpu-target-cpu=host"] if triple is None else [
        f"--iree-llvmcpu-target-triple={triple}", "--iree-llvmcpu-target-cpu=generic"]
    if triple and triple.startswith("riscv64"):  # RV64GC, hard float: bare generic links soft-float calls (fmaf)
        cpu = [f"--iree-llvmcpu-target-triple={triple}", "--iree-llvmcpu-target-cpu=generic-rv64",
               "--iree-llvmcpu-target-cpu-features=+m,+a,+f,+d,+c", "--iree-llvmcpu-target-abi=lp64d"]
    return ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
            *cpu, "--iree-opt-level=O2",
            # IREE 3.13 workarounds, each reproduced by tests/test_against_oracles.py:
            # at O2, dispatch creation emits an invalid linalg.generic for an MSE loss into a biased readout;
            "--iree-dispatch-creation-opt-level=O1",
            # hoisting constant fills next to sequence globals yields "immutable load of a mutable global".
            "--iree-opt-const-expr-hoisting=false",
            # reproducible artifacts: IREE 3.13 numbers the source map of fused globals in hash-map order,
            # so the same input gave different vmfb bytes (tests/test_cli.py replays compare them)
            "--iree-vm-bytecode-module-strip-source-map=true"]
