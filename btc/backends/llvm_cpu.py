"""llvm-cpu: IREE's CPU backend, tuned for the host that compiles; or cross-compiled for another CPU by
its LLVM triple (aarch64-linux-gnu, riscv64-linux-gnu, x86_64-linux-gnu, ...), then for that
architecture's generic CPU."""

import platform
from functools import cache

from btc.backends.common import COMMON_FLAGS, tile_hints

__all__ = ["flags", "prepare", "pack_tiles", "HAL_DRIVER", "DEFAULT_ARCH"]

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


def prepare(mlir_text: str, triple: str | None = None, extra_flags: tuple[str, ...] = ()) -> str:
    """Tile hints become IREE CPU lowering configurations for this host (its vector width known); a
    cross-compile, or extra flags that pick another CPU, drop them (IREE's own choice, for a CPU this host
    cannot measure)."""
    other_cpu = triple is not None or any(f.startswith("--iree-llvmcpu-target-") for f in extra_flags)
    width = None if other_cpu else _host_vector_floats()
    return tile_hints(mlir_text, (lambda tiles, vectors: _cpu_config(tiles, width, vectors)) if width else None)


def pack_tiles(triple: str | None = None) -> str:
    """The f32 matmul tile IREE's mmt4d kernels use on this host, "M0xN0xK0" (x86: one vector register of
    columns by as many rows); "" for a cross-compile or an unknown CPU (products stay plain matmuls)."""
    if triple is not None or platform.machine().lower() not in ("x86_64", "amd64"):
        return ""
    width = _host_vector_floats()
    return f"{width}x{width}x1" if width in (8, 16) else ""


def _cpu_config(tiles: tuple[int, ...], width: int, vectors: tuple[int, ...] | None = None) -> str:
    """Workgroups of `tiles`, each vectorised by `vectors` if given, else along its last tiled loop; the
    reductions (0: Fn.generic checks that only reductions have it) one by one."""
    last = max(i for i, t in enumerate(tiles) if t)
    vector = list(vectors) if vectors else [0 if not t else min(t, width) if i == last else 1
                                            for i, t in enumerate(tiles)]
    reduction = [0 if t else 1 for t in tiles]
    fmt = lambda v: ", ".join(map(str, v))  # noqa: E731
    return ("compilation_info = #iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
            f"distribution = [{fmt(tiles)}], vector_common_parallel = [{fmt(vector)}], "
            f"vector_reduction = [{fmt(reduction)}]>, translation_info = "
            "#iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<DoubleTilingExpert>>>")


@cache
def _host_vector_floats() -> int | None:
    """f32 lanes of this host's widest vector register, None where not known."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return 4
    if machine not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return 8
    return 16 if " avx512f" in flags else 8
