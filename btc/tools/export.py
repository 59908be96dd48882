"""`btc export`: an artifact as a bundle any IREE host runs, without btc or Python.

  model.vmfb    the model module (btc_model); every mutable global starts from a named parameter
  params.irpa   those parameters: the artifact's initial values, or a checkpoint's trained ones
  session.vmfb  btc_session (btc.tools.session): whole training and inference sessions in one call
  abi.json      the ABI record (functions, shapes, dtypes, globals)
  README.md     the same for people: call order, arguments, and an iree-run-module command per function
"""
from __future__ import annotations

import json
import os

from btc.errors import BtcError
from btc.runtime.tiers import TIERS

__all__ = ["export_bundle", "BUNDLE_FILES"]

BUNDLE_FILES = ("model.vmfb", "params.irpa", "session.vmfb", "abi.json", "README.md")

_ROLES = {"param": "parameter", "grad": "gradient accumulated since the last update", "adam_m": "Adam first moment",
          "adam_v": "Adam second moment", "optimizer": "optimizer counter", "state": "neuron state",
          "trace": "eligibility trace", "counter": "time steps since reset", "adjoint": "BPTT adjoint"}


def export_bundle(artifact: str, out_dir: str, checkpoint: str | None = None) -> dict:
    """Write the bundle of `artifact` (with a checkpoint's parameters and optimizer state) to `out_dir`,
    atomically; returns {file: bytes}."""
    from btc.backends import compile_module
    from btc.driver import staged
    from btc.runtime import load
    from btc.runtime.artifact import read_artifact
    from btc.tools.session import session_module

    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not (os.path.isdir(out_dir) and _replaceable(out_dir)):
        raise BtcError(f"output {out_dir} exists and is not a btc bundle; refusing to overwrite it")
    model = load(artifact)  # the artifact's hashes checked; a checkpoint of another model refused
    if checkpoint:
        model.load_checkpoint(checkpoint)
    manifest, abi = model.manifest, model.abi
    vmfb = read_artifact(artifact)[1]["model.vmfb"]  # the bytes that were hashed
    session = compile_module(session_module(abi), manifest["target"])
    parent = os.path.dirname(out_dir)
    if not os.path.isdir(parent):
        raise BtcError(f"cannot write the bundle to {out_dir}: {parent} is not a directory")
    with staged(out_dir, ".btc-bundle-", "bundle", "export") as tmp:
        with open(os.path.join(tmp, "model.vmfb"), "wb") as f:
            f.write(vmfb)
        model.save_parameters(os.path.join(tmp, "params.irpa"))
        with open(os.path.join(tmp, "session.vmfb"), "wb") as f:
            f.write(session)
        with open(os.path.join(tmp, "abi.json"), "w") as f:
            json.dump(abi, f, indent=1)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(bundle_document(manifest, checkpoint))
    return {name: os.path.getsize(os.path.join(out_dir, name)) for name in BUNDLE_FILES}


def _replaceable(path: str) -> bool:
    """An empty directory, or a bundle a previous export wrote."""
    names = set(os.listdir(path))
    return not names or names == set(BUNDLE_FILES)


def _shape(a: dict) -> str:
    """iree-run-module's spelling of a tensor type: 5x4x7xf32, f32 for a scalar."""
    return "".join(f"{d}x" for d in a["shape"]) + {"float32": "f32", "int32": "i32"}[a["dtype"]]


def _table(args: list[dict]) -> list[str]:
    if not args:
        return ["(none)"]
    return ["| name | shape | dtype |", "|---|---|---|"] + [f"| {a['name']} | {a['shape']} | {a['dtype']} |" for a in args]


def bundle_document(manifest: dict, checkpoint: str | None) -> str:
    abi = manifest["abi"]
    fns = {f["name"]: f for f in abi["functions"]}
    run = "iree-run-module --device={dev} --module=model.vmfb --parameters={scope}=params.irpa".format(
        dev=manifest["hal_driver"], scope=abi["parameter_scope"])
    source = f"the checkpoint `{os.path.basename(checkpoint)}`" if checkpoint else "the artifact's initial values"
    lines = [
        f"# btc bundle: {manifest.get('model_source') or 'model'}",
        "",
        f"Compiled by btc {manifest['btc_version']} with IREE {manifest['iree_version']} for target "
        f"`{manifest['target']}` (IREE driver `{manifest['hal_driver']}`). Algorithm {abi['algorithm']}, batch "
        f"B={abi['batch']}, chunk K={abi['chunk']} time steps, loss {abi['loss']} on `{abi['readout']}` "
        f"({abi['num_classes']} outputs).",
        "",
        "## Files",
        "- `model.vmfb`: module `btc_model`. Every mutable global starts from the named parameter "
        f"`{abi['parameter_scope']}::<global>`, so the module needs an archive: "
        f"`--parameters={abi['parameter_scope']}=params.irpa`.",
        f"- `params.irpa`: the parameters from {source}; gradients, states and traces at their initial values"
        + (", optimizer state from the checkpoint" if checkpoint else "") + ".",
        "- `session.vmfb`: module `btc_session`, which calls btc_model's functions in loops, so that a whole "
        "session runs in one call. Load it after the model.",
        "- `abi.json`: all of this, machine-readable.",
        "",
        "## Call order",
        "The globals live as long as the IREE context: one `iree-run-module` process runs one function, from "
        "the archive's values. A host that keeps a context (the IREE runtime API in C, Python or another "
        "language) calls, per training sequence:",
        "1. `reset_state()`: neuron states, traces and the step counter to their initial values.",
        f"2. `train_chunk(...)` for each chunk of K={abi['chunk']} steps, in order: it runs the network and "
        "accumulates the online gradient" + (f", and applies the optimizer itself every {abi['update_every']} "
                                               "steps (lr and the chunk's number of valid steps are arguments)"
                                               if abi["update_every"] else "") + ".",
    ]
    if "train_chunk" not in fns:  # BPTT
        lines[-2:] = ["Under BPTT the host keeps every step's tape: `bptt_forward_step` per step returns it, "
                      "`bptt_begin_backward()` then `bptt_backward_step` per step in reverse order takes it back, "
                      "then `apply_update(lr)`. btc's Python runtime does this; the session module here offers "
                      "inference only (`infer_sequences`)."]
    elif not abi["update_every"]:
        lines.append("3. `apply_update(lr)`: one optimizer step from the accumulated gradient, which it zeroes. Its result, "
                  "`status`, is 0; or 1 if a gradient was NaN or infinite, 2 if the step would have made a parameter "
                  "so: then nothing but the gradients (zeroed) changed.")
    lines += ["", "`get_params()` reads the parameters; `infer_chunk` runs K steps forward only."]
    optimistic = [f for f in TIERS[:-1] if f in fns]
    if optimistic:
        sized = {"train_chunk_tight": "lists sized for 1.25x the expected count", "train_chunk_fast": "lists sized "
                 "by the expected activity", "train_chunk_roomy": "lists sized for 4x the expected activity"}
        first, *more = optimistic
        lines += [f"`{first}` ({sized[first]}) takes the arguments of `train_chunk` and may replace it: it "
                  "leaves out the slow path for very long lists of active entries. When its last result, `overflow`, "
                  "is 1 it stored nothing and its loss means nothing: call "
                  + "".join(f"`{f}` (the same, with {sized[f]}; its `overflow` likewise), then " for f in more)
                  + "`train_chunk` with the same arguments."]
    if "train_chunk" in fns:
        lines += [
            "The same sequence of calls in one process:",
            "```",
            f"{run} --module=session.vmfb --function=train_sequences \\",
            "    " + " ".join(f"--input=@{a['name']}.npy" for a in fns.get("train_chunk", {"inputs": []})["inputs"]
                              if a["name"] not in ("lr", "valid")) + " --input=f32=0.001 \\",
            "    --output=@trained.npy" + " --output=+trained.npy" * len(abi["params"]),
            "```",
            "where each `.npy` holds `[S, C, ...]`: S sequences of C chunks of one train_chunk argument. It returns the "
            "loss of each sequence, then every parameter after the last update, in the order of get_params; "
            "`+` appends them all to trained.npy (read them back with repeated `numpy.load` on one open file)."]
    lines += ["", "## Functions"]
    for f in abi["functions"]:
        args = " ".join(f"--input={_shape(a)}=0" for a in f["inputs"])
        lines += ["", f"### btc_model.{f['name']}", "Arguments:", *_table(f["inputs"]), "", "Results:",
                  *_table(f["outputs"]), "", "```", f"{run} --function={f['name']}" + (f" {args}" if args else ""),
                  "```"]
    session = "infer_sequences, btc_session.train_sequences" if "train_chunk" in fns else "infer_sequences"
    lines += ["", f"### btc_session.{session}",
              "Arguments: those of infer_chunk" + (" (train_chunk, then `lr`)" if "train_chunk" in fns else "")
              + ", each with two leading dimensions [S, C], equal for all of them. Results: readout "
              "[S, C, K, B, classes]" + ("; the loss per sequence [S] and the parameters" if "train_chunk" in fns
                                         else "") + ".", "",
              "## Globals (the keys of params.irpa)", "| key | holds | of | shape | initial |", "|---|---|---|---|---|"]
    for e in abi["layout"]:
        if e["role"] != "index":
            init = "from the archive" if e["init"] is None else e["init"]
            lines.append(f"| {e['global']} | {_ROLES.get(e['role'], e['role'])} | {e['name']} | {e['shape']} | {init} |")
    return "\n".join(lines) + "\n"
