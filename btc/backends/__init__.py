"""Target backends (one file each, imported by target name) and `compile_module`, IREE run in-process."""
from __future__ import annotations

import ctypes
import importlib
import itertools
import os
import shlex
import shutil
import time

from btc.backends.common import tile_hints
from btc.errors import BtcError

__all__ = ["TARGETS", "get_backend", "split_target", "compile_module", "save_temps_dir", "SAVE_TEMPS_ENV"]

# a target is NAME or NAME:ARCH, ARCH what the backend's flags() takes: a CPU triple (llvm-cpu), a
# CUDA sm_XX, a ROCm gfxNNNN, a Vulkan target, a Metal platform
TARGETS = {"llvm-cpu": "llvm_cpu", "cuda": "cuda", "rocm": "rocm", "vulkan-spirv": "vulkan_spirv",
           "metal-spirv": "metal_spirv", "vmvx": "vmvx"}
SAVE_TEMPS_ENV = "BTC_SAVE_TEMPS"
# what a compile may leave in the temps dir (passes/ and pipeline.txt: btc.driver)
SAVED_FILES = ("input.mlir", "flags.txt", "model.vmfb", "diagnostics.txt", "pipeline.txt", "passes")
# IREE embeds the source buffer name in the vmfb: naming the buffer after the saved file makes
# `iree-compile input.mlir ...`, run in the temps dir, reproduce the exact bytes.
SOURCE_NAME = "input.mlir"
_MAX_DIAGNOSTIC_CHARS = 6000  # "see current operation" can print a whole function
_SEVERITY = {0: "note", 1: "warning", 2: "error", 3: "remark"}
_compile_ids = itertools.count()
# void (*)(iree_compiler_diagnostic_severity_t, const char *message, size_t size, void *user_data)
_DIAGNOSTIC_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


def split_target(target) -> tuple[str, str | None]:
    """NAME[:ARCH] -> (NAME, ARCH or None), NAME checked."""
    if not isinstance(target, str):
        raise BtcError(f"target must be a string NAME[:ARCH], got {target!r}; known targets: {sorted(TARGETS)}")
    name, sep, arch = target.partition(":")
    if name not in TARGETS:
        raise BtcError(f"unknown target {name!r}; known targets: {sorted(TARGETS)}")
    if sep and (not arch or not all(c.isalnum() or c in "_-." for c in arch)):
        raise BtcError(f"target {target!r}: the architecture after ':' must be a name such as sm_80, gfx942, "
                       "rdna3, macos or aarch64-linux-gnu")
    if sep and importlib.import_module(f"btc.backends.{TARGETS[name]}").DEFAULT_ARCH is None and name != "llvm-cpu":
        raise BtcError(f"target {name!r} takes no architecture, got {target!r}")
    return name, arch or None


def get_backend(target: str):
    """The backend module for `target` (NAME[:ARCH]); it exposes `flags(arch) -> list[str]` and HAL_DRIVER."""
    return importlib.import_module(f"btc.backends.{TARGETS[split_target(target)[0]]}")


def pack_tiles(target: str) -> str:
    """The target's matmul tile for packed products ("M0xN0xK0"), or "" where its backend names none."""
    backend, arch = get_backend(target), split_target(target)[1]
    return backend.pack_tiles(arch) if hasattr(backend, "pack_tiles") else ""


def compile_module(mlir_text: str, target: str, extra_flags: tuple[str, ...] = (),
                   temps: str | None = None) -> bytes:
    """Compile lowered upstream MLIR (no btc ops left) to .vmfb bytes, in this process.

    With BTC_SAVE_TEMPS=DIR set, DIR keeps input.mlir, flags.txt (the flags and a pastable
    iree-compile command) and, on success, model.vmfb; `{id}` in DIR expands to a per-compile id.
    `temps`: a directory from `save_temps_dir()` the caller already keeps other files in.
    """
    backend, arch = get_backend(target), split_target(target)[1]
    mlir_text = (backend.prepare(mlir_text, arch, tuple(extra_flags)) if hasattr(backend, "prepare")
                 else tile_hints(mlir_text))
    flags = list(backend.flags(arch) if arch else backend.flags()) + list(extra_flags)
    temps = temps or save_temps_dir()
    if temps:
        # Written before compiling, so even an IREE crash leaves a reproducer behind.
        _write(temps, SOURCE_NAME, mlir_text.encode())
        _write(temps, "flags.txt", _flags_file(temps, flags).encode())
    try:
        vmfb = _run_iree(mlir_text, flags)
    except _IreeFailure as failure:
        raise BtcError(_failure_message(failure, target, flags, temps)) from None
    if temps:
        _write(temps, "model.vmfb", vmfb)
    return vmfb


class _IreeFailure(Exception):
    def __init__(self, stage: str, diagnostics: list[str]):
        super().__init__(stage)
        self.stage, self.diagnostics = stage, diagnostics


def _run_iree(mlir_text: str, flags: list[str]) -> bytes:
    from iree.compiler import api

    diagnostics: list[str] = []

    def on_diagnostic(severity, message, size, _user_data):
        # Called by IREE (possibly on a worker thread); must not raise.
        if severity != 3:
            text = ctypes.string_at(message, size).decode("utf-8", "replace")
            # IREE separates a diagnostic's notes ("called from", "see current operation") by blank lines.
            text = text.strip().replace("\n\n", "\n  ")
            diagnostics.append(f"{_SEVERITY.get(severity, 'error')}: {text}")

    callback = _DIAGNOSTIC_CALLBACK(on_diagnostic)  # referenced until the session is closed
    session = api.Session()
    try:
        try:
            session.set_flags(*flags)
        except ValueError as e:  # IREE: "Error parsing flags: option not found: ..."
            raise _IreeFailure("flags", [str(e)]) from None
        inv = session.invocation()
        _capture_diagnostics(inv, callback)
        source = api.Source.wrap_buffer(session, mlir_text.encode(), buffer_name=SOURCE_NAME)
        if not inv.parse_source(source):
            raise _IreeFailure("parse", diagnostics)
        if not inv.execute():
            raise _IreeFailure("compile", diagnostics)
        out = api.Output.open_membuffer()
        try:
            inv.output_vm_bytecode(out)
        except ValueError as e:
            raise _IreeFailure("output", diagnostics + [str(e)]) from None
        return bytes(out.map_memory())
    finally:
        session.close()
        del callback


def _capture_diagnostics(inv, callback) -> None:
    """Route the invocation's diagnostics to `callback`; must run before parse_source.

    IREE 3.13's Python API only wraps console diagnostics (printed to stderr), but the C API it
    loads has ireeCompilerInvocationEnableCallbackDiagnostics, so call that through ctypes.
    """
    from iree.compiler.api import ctypes_dl

    dylib = getattr(ctypes_dl, "_dylib", None)
    enable = getattr(dylib, "ireeCompilerInvocationEnableCallbackDiagnostics", None)
    if enable is None or not getattr(inv, "_inv_p", None):
        inv.enable_console_diagnostics()  # a newer/older wrapper: at least show them on stderr
        return
    enable.argtypes = [ctypes.c_void_p, ctypes.c_int, _DIAGNOSTIC_CALLBACK, ctypes.c_void_p]
    enable.restype = None
    enable(inv._inv_p, 0, callback, None)


def _failure_message(failure: _IreeFailure, target: str, flags: list[str], temps: str | None) -> str:
    what = {"flags": "rejected the compiler flags", "parse": "could not parse the lowered module",
            "compile": "failed to compile the module (iree-compile failed)",
            "output": "could not write the compiled module"}[failure.stage]
    text = "\n".join(failure.diagnostics) or "(IREE gave no diagnostics; see stderr)"
    lines = [f"IREE {what} for target {target}:", _clip(text), f"flags: {shlex.join(flags)}"]
    if temps:
        note = _try_write(temps, "diagnostics.txt", (text + "\n").encode())
        lines.append(f"input.mlir and the iree-compile command that reproduces this (flags.txt) "
                     f"are in {temps}{note}")
    else:
        lines.append(f"to reproduce outside btc, set {SAVE_TEMPS_ENV}=DIR (DIR may contain {{id}}) to keep "
                     "input.mlir and a pastable iree-compile command in DIR/flags.txt")
    return "\n".join(lines)


def _clip(text: str) -> str:
    if len(text) <= _MAX_DIAGNOSTIC_CHARS:
        return text
    return (text[:_MAX_DIAGNOSTIC_CHARS] + f"\n... ({len(text) - _MAX_DIAGNOSTIC_CHARS} more characters; "
            f"with {SAVE_TEMPS_ENV} set, all of them are in diagnostics.txt)")


def save_temps_dir() -> str | None:
    """The BTC_SAVE_TEMPS directory for this compile, created; None when unset."""
    pattern = os.environ.get(SAVE_TEMPS_ENV, "")
    if not pattern:
        return None
    compile_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_compile_ids)}"
    path = os.path.abspath(os.path.expanduser(pattern.replace("{id}", compile_id)))
    try:
        os.makedirs(path, exist_ok=True)
        # Without {id} the dir is reused: drop outputs a previous compile left, so none is mistaken for ours.
        for stale in SAVED_FILES:
            if os.path.isdir(os.path.join(path, stale)):
                shutil.rmtree(os.path.join(path, stale))
            elif os.path.lexists(os.path.join(path, stale)):
                os.remove(os.path.join(path, stale))
    except OSError as e:
        raise BtcError(f"{SAVE_TEMPS_ENV}={pattern!r}: cannot use directory {path}: {e}") from None
    return path


def _flags_file(temps: str, flags: list[str]) -> str:
    try:
        from iree.compiler.tools.binaries import find_tool

        tool = os.path.realpath(find_tool("iree-compile"))
    except (ImportError, ValueError):
        tool = "iree-compile"
    command = f"cd {shlex.quote(temps)} && {shlex.join([tool, SOURCE_NAME, *flags, '-o', 'model.vmfb'])}"
    return ("\n".join(flags) + "\n\n# The equivalent command (it gives the same vmfb bytes; IREE embeds the input "
            f"path, so keep it {SOURCE_NAME}):\n" + command + "\n")


def _write(temps: str, name: str, data: bytes) -> None:
    try:
        with open(os.path.join(temps, name), "wb") as f:
            f.write(data)
    except OSError as e:
        raise BtcError(f"{SAVE_TEMPS_ENV}: cannot write {name} in {temps}: {e}") from None


def _try_write(temps: str, name: str, data: bytes) -> str:
    """On the failure path: IREE's message matters more than a temp file, so report, don't raise."""
    try:
        _write(temps, name, data)
        return ""
    except BtcError as e:
        return f" ({e})"
