"""Shared fixtures: compiled artifacts are cached per (network, algorithm, chunk) for the session."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from nets import NETWORKS  # noqa: E402


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """compiled(name, algorithm, chunk, **options) -> loaded btc runtime Model (cached)."""
    from btc.driver import CompileOptions, compile_network
    from btc.runtime import load

    cache = {}

    def get(name, algorithm, chunk, batch=3, **options):
        key = (name, algorithm, chunk, batch, repr(sorted(options.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{name}-{algorithm}")
            compile_network(NETWORKS[name](), CompileOptions(algorithm=algorithm, batch=batch, chunk=chunk,
                                                             **options), str(out / "artifact"))
            cache[key] = str(out / "artifact")
        return load(cache[key])

    return get
