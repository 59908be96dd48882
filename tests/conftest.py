"""Shared fixtures: compiled artifacts are cached per (network, algorithm, chunk, options) for the run."""
import fcntl
import hashlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from nets import NETWORKS  # noqa: E402


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """compiled(name, algorithm, chunk, **options) -> loaded btc runtime Model. Each artifact is compiled once
    per run, shared by pytest-xdist's workers (their temporary directories have one parent per run; a lock
    file per artifact makes a second worker wait for the first one's compile)."""
    from btc.driver import CompileOptions, compile_network
    from btc.runtime import load

    root = tmp_path_factory.getbasetemp()
    cache = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "compiled"
    cache.mkdir(exist_ok=True)

    def get(name, algorithm, chunk, batch=3, **options):
        key = repr((name, algorithm, chunk, batch, sorted(options.items())))
        path = cache / hashlib.sha256(key.encode()).hexdigest()[:20]
        with open(f"{path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / "manifest.json").exists():
                compile_network(NETWORKS[name](), CompileOptions(algorithm=algorithm, batch=batch, chunk=chunk,
                                                                 **options), str(path))
        return load(str(path))

    return get
