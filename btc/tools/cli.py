"""The `btc` command line: compile, inspect, export, opt, dialect here; train, eval, plot, raster in
btc/tools/training.py.

`train`, `eval` and `inspect` use only the runtime (no compiler, no JAX); `compile` loads the model
file and imports the compiler on demand; `export` needs the compiler for its session module only.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import click

from btc.algorithm import Algorithm
from btc.backends import TARGETS as TARGET_NAMES
from btc.errors import BtcError
from btc.tools.training import eval_cmd, fail, plot_cmd, raster_cmd, train_cmd

__all__ = ["main"]


def load_model_function(spec: str):
    """MODEL.py[:FUNC] -> the Network that FUNC (default `build`) returns."""
    from btc.frontend import Network

    path, _, func = spec.partition(":")
    func = func or "build"
    if not os.path.isfile(path):
        raise BtcError(f"model file {path!r} does not exist (expected MODEL.py[:FUNC])")
    if not path.endswith(".py"):
        raise BtcError(f"model file {path!r} is not a .py file (expected MODEL.py[:FUNC])")
    module_spec = importlib.util.spec_from_file_location("_btc_user_model", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses in the model file look their module up
    module_spec.loader.exec_module(module)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise BtcError(f"{path} has no function {func!r}; name one with {path}:FUNC")
    net = fn()
    if not isinstance(net, Network):
        raise BtcError(f"{path}:{func} returned {type(net).__name__}, expected a btc.frontend.Network")
    return net


# what a runtime-only install (requirements-runtime.txt) lacks, and the commands that need it
COMPILER_MODULES = ("jax", "iree.compiler")
NEEDS_COMPILER = ("compile", "opt", "dialect", "export", "export-nir")


@click.group()
@click.version_option(package_name="btc")
@click.pass_context
def main(ctx):
    """btc, the BrainTrace compiler: spiking networks that learn online."""
    if ctx.invoked_subcommand in NEEDS_COMPILER:
        missing = [m for m in COMPILER_MODULES if not _installed(m)]
        if missing:
            fail(BtcError(f"`btc {ctx.invoked_subcommand}` needs the compiler, and {missing} is not installed: this "
                           "is a runtime-only install (it loads, trains and evaluates artifacts). Install btc with "
                           "its dependencies (pip install btc) to compile."))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is absent
        return False


@main.command("compile")
@click.argument("model")
@click.option("--algorithm", type=click.Choice([a.value for a in Algorithm]), default=Algorithm.PP_PROP.value,
              show_default=True, help="hybrid: per projection, pp-prop or D-RTRL (see --trace-memory-budget)")
@click.option("--target", type=click.Choice(sorted(TARGET_NAMES)), default="llvm-cpu", show_default=True,
              help="IREE backend (vulkan-spirv, metal-spirv: SPIR-V GPUs; vmvx: portable interpreter)")
@click.option("--target-arch", default=None, metavar="ARCH",
              help="cuda: sm_XX (default sm_80); rocm: gfxNNN (gfx942); vulkan-spirv: rdna3, ampere, valhall4, ...; "
                   "metal-spirv: macos|ios; llvm-cpu: a triple to cross-compile for (aarch64-linux-gnu, riscv64-linux-gnu)")
@click.option("--batch", type=int, default=32, show_default=True, help="batch size B compiled in")
@click.option("--chunk", type=int, default=100, show_default=True,
              help="time steps K run inside the module per call")
@click.option("--decay", type=float, default=0.9, show_default=True, help="pp-prop trace decay alpha in [0, 1)")
@click.option("--rank", type=int, default=None, help="pp-prop decay as a rank r: alpha = (r-1)/(r+1)")
@click.option("--decay-pre", type=float, default=None, help="presynaptic trace decay (default: --decay)")
@click.option("--decay-post", type=float, default=None, help="postsynaptic trace decay (default: --decay)")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="divide pp-prop's postsynaptic factor by 1 - alpha^(k+1), k in time steps since reset")
@click.option("--trace-memory-budget", type=int, default=None,
              help="hybrid: bytes all traces may use; D-RTRL goes to the cheapest projections that fit")
@click.option("--projection-algorithm", "projection_algorithm", multiple=True, metavar="NAME=ALG",
              help="learn projection NAME by ALG (pp-prop or d-rtrl), whatever the rule; repeatable")
@click.option("--update-every", type=int, default=None,
              help="apply the optimizer inside the module every K time steps (continual learning)")
@click.option("--grad-clip", type=float, default=None, help="clip the global gradient norm before each update")
@click.option("--weight-decay", type=float, default=0.0, show_default=True, help="decoupled weight decay")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--event-driven", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="per projection, dense or event-driven (spike-driven) propagation and weight gradient; "
                   "auto: a cost model decides (btc inspect shows its choice)")
@click.option("--activity", "activity", multiple=True, metavar="[NAME=]FRACTION",
              help="expected fraction of a spike train's entries active per step (default 0.05), or of input or "
                   "group NAME's; sizes the event-driven lists; repeatable")
@click.option("--nir-dt", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="a .nir MODEL: seconds per time step (each neuron ODE integrated by forward Euler at it)")
@click.option("--nir-loss", type=click.Choice(["cross_entropy", "mse"]), default="cross_entropy", show_default=True,
              help="a .nir MODEL: the loss on its Output")
@click.option("--partition", type=click.IntRange(2), default=None,
              help="cut every group into this many blocks of neurons, one per MPI rank (btc.partitioned): the "
                   "directory holds rank<r>/ and partition.npz; train with mpirun -n K btc train")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="artifact directory")
@click.option("--dump-ir-after-all", type=click.Path(file_okay=False), default=None,
              help="write the IR after every pass into this directory")
def compile_cmd(model, algorithm, target, target_arch, batch, chunk, decay, rank, decay_pre, decay_post, bias_correction,
                trace_memory_budget, projection_algorithm, update_every, grad_clip, weight_decay, optimizer,
                event_driven, activity, nir_dt, nir_loss, partition, output, dump_ir_after_all):
    """Compile MODEL.py[:FUNC] (a function returning a btc Network) or MODEL.nir (a NIR graph,
    btc.frontend.nir_import) into an artifact directory."""
    from btc.driver import DEFAULT_ACTIVITY, CompileOptions, compile_network

    try:
        per_projection = {}
        for item in projection_algorithm:
            name, sep, alg = item.partition("=")
            if not sep or not name or not alg:
                raise BtcError(f"--projection-algorithm {item!r}: expected NAME=ALG, e.g. in_to_h=d-rtrl")
            per_projection[name] = alg
        activities = {}
        for item in activity:
            name, sep, value = item.rpartition("=")
            key = name if sep else "*"
            if key in activities:
                raise BtcError(f"--activity {item!r}: {'the default' if key == '*' else repr(key)} is given twice")
            try:
                activities[key] = float(value)
            except ValueError:
                raise BtcError(f"--activity {item!r}: expected FRACTION or NAME=FRACTION, e.g. 0.02 or x=0.1") from None
        target = f"{target}:{target_arch}" if target_arch else target
        options = CompileOptions(algorithm, batch, chunk, decay, optimizer, target, rank=rank, decay_pre=decay_pre,
                                 decay_post=decay_post, bias_correction=bias_correction,
                                 trace_memory_budget=trace_memory_budget,
                                 projection_algorithms=per_projection or None, update_every=update_every,
                                 grad_clip=grad_clip, weight_decay=weight_decay, event_driven=event_driven,
                                 activity=activities or DEFAULT_ACTIVITY)
        options.check()
        if model.endswith(".nir"):
            from btc.frontend.nir_import import from_nir

            net = from_nir(model, dt=nir_dt, loss=nir_loss)
        else:
            net = load_model_function(model)
        if partition:
            from btc.partitioned import compile_partitioned

            if dump_ir_after_all:
                raise BtcError("--dump-ir-after-all dumps one module; compile a partitioned network without it")
            ranks = compile_partitioned(net, partition, options, output)
            click.echo(f"wrote {output}: {algorithm}, B={batch}, one step per call, {len(ranks)} ranks owning "
                       + ", ".join(str(sum(ids.size for ids in rn.owned.values())) for rn in ranks) + " neurons")
            return
        manifest = compile_network(net, options, output, dump_ir_after_all, model_source=model)
    except BtcError as e:
        fail(e)
    mem = manifest["abi"]["memory_bytes"]
    click.echo(f"wrote {output}: {algorithm}, B={batch}, K={chunk}, "
               f"{sum(mem.values()) / 1024:.1f} KiB of module state ({', '.join(f'{k} {v}' for k, v in mem.items())})")


@main.command("inspect")
@click.argument("artifact", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the manifest as JSON")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True,
              help="sequence length T for the BPTT comparison")
def inspect_cmd(artifact, as_json, steps):
    """Show an artifact's functions, states, traces and the memory of every buffer."""
    from btc.runtime import read_artifact

    try:
        m, _ = read_artifact(artifact)  # the manifest, hash-checked; no module is loaded
    except BtcError as e:
        fail(e)
    if as_json:
        click.echo(json.dumps(m, indent=1))
        return
    abi = m["abi"]
    click.echo(f"{artifact}: algorithm {abi['algorithm']}, target {m['target']}, batch {abi['batch']}, "
               f"chunk {abi['chunk']}, btc {m['btc_version']}, IREE {m['iree_version']}")
    click.echo(f"pipeline: {m['pipeline']}")
    click.echo("functions:")
    for sig in abi["functions"]:
        fmt = lambda xs: ", ".join(f"{x['name']}{x['shape']}:{x['dtype']}" for x in xs)  # noqa: E731
        click.echo(f"  {sig['name']}({fmt(sig['inputs'])}) -> ({fmt(sig['outputs'])})")
    click.echo("buffers:")
    for e in abi["layout"]:
        click.echo(f"  {e['role']:<10} {e['name']:<24} {str(e['shape']):<16} {e['bytes']:>12,} B")
    for role, n in abi["memory_bytes"].items():
        click.echo(f"total {role:<10} {n:>14,} B")
    click.echo(f"total       {sum(abi['memory_bytes'].values()):>14,} B in the module, whatever the sequence length")
    _print_work(abi)
    _print_trace_plan(abi, steps)


def _print_work(abi: dict) -> None:
    """Each projection's dense or event-driven choice, with the work per step its cost model expects."""
    if "steps_per_iteration" not in abi:  # an artifact from before btc-plan-events
        return
    click.echo(f"work per step ({abi['steps_per_iteration']} steps per loop iteration):")
    for p in abi["projections"]:
        macs = p["expected_macs_per_step"]
        click.echo(f"  projection {p['name']:<20} propagation {p['propagation']:<6} weight gradient "
                   f"{p['weight_gradient']:<6} {macs['propagation'] + macs['weight_gradient']:>14,} MACs "
                   f"(dense {macs['dense']:,}) " + (f"at {p['activity']:.1%} activity" if p["binary"]
                                                    else "input not binary") + _pairs(p))


def _pairs(p: dict) -> str:
    conn = p.get("connectivity", {"layout": "dense"})
    if conn["layout"] == "dense":
        return ""
    shared = f", sharing {conn['n_weights']:,} weights" if "n_weights" in conn else ""
    return (f"; {conn['nnz']:,} pairs ({conn['layout']}, fan-in up to {conn['fan_in_max']}, "
            f"mean {conn['fan_in_mean']:.1f}{shared})")


def _print_trace_plan(abi: dict, steps: int) -> None:
    """Each trace with its shape and bytes, next to what BPTT's tape would hold for `steps` steps."""
    plan = abi["trace_plan"]
    per_step = abi["bptt_tape_bytes_per_step"]
    bptt = Algorithm.parse(abi["algorithm"]) is Algorithm.BPTT
    if not bptt:
        click.echo("trace plan:")
        for proj in abi["projections"]:  # the model's order (the plan's dictionary is sorted)
            click.echo(f"  projection {proj['name']:<20} {plan['projections'][proj['name']]}")
        for t in plan["traces"]:
            shape = "x".join(str(d) for d in t["shape"])
            click.echo(f"  trace {t['name']:<24} {t['kind']:<6} {'[' + shape + ']':<18} {t['bytes']:>14,} B")
        click.echo(f"  total traces {plan['trace_bytes']:>58,} B, whatever the sequence length")
    click.echo(f"BPTT would hold {per_step:,} B per time step: T={steps:,} -> {per_step * steps:,} B "
               f"({per_step * steps / 2**20:,.1f} MiB)" + (", held by the runtime" if bptt else ""))


@main.command("export")
@click.argument("artifact", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="the bundle directory to write")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="export these trained parameters (and optimizer state) instead of the initial ones")
def export_cmd(artifact, output, checkpoint):
    """Write a bundle any IREE host runs: model.vmfb, params.irpa, session.vmfb, abi.json, README.md."""
    from btc.tools.export import export_bundle

    try:
        sizes = export_bundle(artifact, output, checkpoint)
    except BtcError as e:
        fail(e)
    click.echo(f"wrote {output}: " + ", ".join(f"{n} ({b:,} bytes)" for n, b in sizes.items()))
    click.echo(f"run it: see {os.path.join(output, 'README.md')}")


@main.command("export-nir")
@click.argument("artifact", type=click.Path())
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True), default=None,
              help="the trained parameters to export (default: the artifact's initial ones)")
@click.option("--nir-dt", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="an artifact compiled from a .nir file: the --nir-dt it was compiled with")
@click.option("--nir-loss", type=click.Choice(["cross_entropy", "mse"]), default="cross_entropy", show_default=True,
              help="an artifact compiled from a .nir file: the --nir-loss it was compiled with")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="the .nir file to write")
def export_nir_cmd(artifact, checkpoint, nir_dt, nir_loss, output):
    """Write an artifact's network, with trained parameters, as a NIR graph (btc.frontend.nir_export)."""
    import tempfile

    import nir

    from btc.driver import _model_hash
    from btc.frontend.nir_export import to_nir
    from btc.runtime import load

    try:
        model = load(artifact)
        if checkpoint:
            model.load_checkpoint(checkpoint)
        source = model.manifest.get("model_source")
        if not source or not os.path.isfile(source.partition(":")[0]):
            raise BtcError(f"artifact {artifact!r} was compiled from {source!r}, which is not here; export-nir rebuilds "
                           "the network from its model file")
        if source.endswith(".nir"):
            from btc.frontend.nir_import import from_nir

            net = from_nir(source, dt=nir_dt, loss=nir_loss)
        else:
            net = load_model_function(source)
        if _model_hash(net) != model.manifest.get("model_hash"):
            raise BtcError(f"{source} no longer builds the network {artifact!r} was compiled from (the file changed, "
                           "or --nir-dt or --nir-loss differs from the compile's)")
        graph = to_nir(net, model.params)
        directory = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(directory):
            raise BtcError(f"cannot write {output!r}: {directory} is not a directory")
        fd, tmp = tempfile.mkstemp(prefix=".nir-", suffix=".nir", dir=directory)
        os.close(fd)
        try:
            nir.write(tmp, graph)
            os.chmod(tmp, 0o644)
            os.replace(tmp, output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except BtcError as e:
        fail(e)
    click.echo(f"wrote {output}: {len(graph.nodes)} nodes, {len(graph.edges)} edges")


@main.command("opt")
@click.argument("input_file", metavar="FILE.mlir", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-p", "--pipeline", default=None, metavar="TEXT",
              help='passes with options, e.g. "btc-verify,btc-plan-traces{algorithm=d-rtrl}" (empty: none)')
@click.option("--pipeline-from", type=click.Path(), default=None, metavar="ARTIFACT",
              help="take the pipeline an artifact was compiled with (its directory or manifest.json)")
@click.option("--emit", type=click.Choice(["mlir", "vmfb"]), default="mlir", show_default=True,
              help="vmfb: compile the lowered result with the target's default flags, as btc compile does")
@click.option("--target", default=None,
              help="backend for --emit vmfb (default: the artifact's with --pipeline-from, else llvm-cpu)")
@click.option("-o", "--output", default="-", type=click.Path(dir_okay=False, allow_dash=True),
              help="output file ('-': stdout, mlir only)")
@click.option("--dump-ir-after-all", type=click.Path(file_okay=False), default=None,
              help="write the IR after every pass into this directory")
def opt_cmd(input_file, pipeline, pipeline_from, emit, target, output, dump_ir_after_all):
    """Run a pass pipeline on a btc module (any --dump-ir-after-all stage) and print the result."""
    from btc.tools.opt import emit_vmfb, pipeline_of_manifest, read_module, run_opt

    try:
        if pipeline is not None and pipeline_from:
            raise BtcError("give --pipeline or --pipeline-from, not both")
        if emit == "vmfb" and output == "-":
            raise BtcError("--emit vmfb writes binary: name the file with -o FILE.vmfb")
        text, recorded = pipeline_of_manifest(pipeline_from) if pipeline_from else (pipeline or "", "llvm-cpu")
        target = target or recorded
        from btc.passes import parse_pipeline

        passes = parse_pipeline(text)  # before reading the module: a typo fails fast
        module = run_opt(read_module(input_file), passes, dump_ir_after_all)
        data = emit_vmfb(module, target) if emit == "vmfb" else str(module).encode()
    except BtcError as e:
        fail(e)
    if output == "-":
        click.echo(data.decode(), nl=False)
        return
    try:
        with open(output, "wb") as f:
            f.write(data)
    except OSError as e:
        fail(BtcError(f"cannot write {output}: {e.strerror}"))


@main.command("dialect")
@click.option("--irdl", "irdl_out", type=click.Path(dir_okay=False), default=None,
              help="write the IRDL description of the btc dialect here ('-' for stdout)")
@click.option("--verify", "verify_file", type=click.Path(dir_okay=False), default=None,
              help="verify a btc module file with iree-opt against the IRDL description")
def dialect_cmd(irdl_out, verify_file):
    """Export the btc dialect as IRDL, or verify a module against it with iree-opt."""
    from btc.dialect.irdl import irdl_text, verify_with_iree_opt

    if not irdl_out and not verify_file:
        raise click.UsageError("pass --irdl FILE and/or --verify FILE")
    try:
        if irdl_out and irdl_out != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(irdl_out))):
            raise BtcError(f"--irdl {irdl_out}: the directory {os.path.dirname(os.path.abspath(irdl_out))!r} does not exist")
        if irdl_out:
            click.echo(irdl_text(), nl=False) if irdl_out == "-" else open(irdl_out, "w").write(irdl_text())
        if verify_file:
            if not os.path.isfile(verify_file):
                raise BtcError(f"{verify_file} does not exist")
            verify_with_iree_opt(open(verify_file).read())
            click.echo(f"{verify_file}: valid btc")
    except BtcError as e:
        fail(e)


if __name__ == "__main__":
    main()


for _command in (train_cmd, eval_cmd, plot_cmd, raster_cmd):
    main.add_command(_command)
