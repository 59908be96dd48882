"""btc, the BrainTrace compiler: spiking networks that learn online, compiled with MLIR and IREE.

The package is split in the order data flows: frontend -> dialect -> passes -> backends -> runtime.
`btc.runtime` imports none of the others, so a deployed artifact needs only numpy and IREE's runtime.

    import btc, btc.runtime
    from btc.frontend.zoo import recurrent_lif
    btc.compile(recurrent_lif(64, 128, 10), "build/digits", algorithm="pp-prop", batch=32, chunk=20)
    model = btc.runtime.load("build/digits")
"""
from btc.errors import BtcError

__version__ = "0.1.0"
__all__ = ["BtcError", "compile", "__version__"]


def compile(net, out_dir: str, **options) -> dict:  # noqa: A001 - the package's verb
    """Compile `net` into the artifact directory `out_dir`; options are btc.driver.CompileOptions
    fields (algorithm, batch, chunk, decay, optimizer, target). Returns the manifest."""
    from dataclasses import fields

    from btc.driver import CompileOptions, compile_network

    known = [f.name for f in fields(CompileOptions)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BtcError(f"unknown compile option(s) {unknown}; expected some of {known}")
    return compile_network(net, CompileOptions(**options), out_dir)
