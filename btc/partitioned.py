"""Compile a network cut by neuron across MPI ranks: reads a Network and who owns each neuron
(btc.frontend.partition); writes one artifact per rank, `rank<r>/`, and `partition.npz`, the plan
btc.runtime.partitioned reads: each neuron's rank, each ghost's neurons, each parameter's cut."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from btc.driver import CompileOptions, _model_hash, check_output_dir, compile_network, staged
from btc.errors import BtcError
from btc.frontend.partition import partition
from btc.runtime.partitioned import PLAN_FILE  # what the runtime reads is what this writes

__all__ = ["compile_partitioned"]


def compile_partitioned(net, owner, options: CompileOptions, out_dir: str) -> list:
    """`owner`: a number of ranks, or a dict group -> rank of each neuron. Every rank is compiled with
    `options` made `partitioned` with chunk 1 (the ranks exchange every step). Returns the RankNetworks."""
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise BtcError(f"output must be a directory name, got {out_dir!r}")
    out_dir = os.path.abspath(out_dir)
    if os.path.islink(out_dir):
        raise BtcError(f"output {out_dir} is a symbolic link; name the directory itself")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, PLAN_FILE)):
        raise BtcError(f"output directory {out_dir} is not empty and holds no partitioned build; refusing to overwrite")
    check_output_dir(os.path.join(out_dir, "rank0"))
    options = dataclasses.replace(options, partitioned=True, chunk=1)
    options.check()
    ranks = partition(net, owner)
    full = net.init_params()
    with staged(out_dir, ".btc-partitioned-", "partitioned build") as tmp:
        for rn in ranks:
            compile_network(rn.net, options, os.path.join(tmp, f"rank{rn.rank}"))
        arrays = {f"owner.{g}": np.zeros(net.size(g), np.int32) for g in ranks[0].owned}
        for rn in ranks:
            for g, ids in rn.owned.items():
                arrays[f"owner.{g}"][ids] = rn.rank
            arrays.update({f"ghost.{rn.rank}.{i}": ids.astype(np.int32) for i, (_, ids) in rn.ghosts.items()})
            arrays.update({f"param.{rn.rank}.{n}": k.astype(np.int64) for n, (_, k) in rn.params.items()})
        meta = {"ranks": len(ranks), "inputs": list(net.inputs),
                "ghosts": [{i: g for i, (g, _) in rn.ghosts.items()} for rn in ranks],
                "params": [{n: whole for n, (whole, _) in rn.params.items()} for rn in ranks],
                "shapes": {n: list(a.shape) for n, a in full.items()},
                "model_hash": _model_hash(net),  # the whole network's: its checkpoints load into its artifacts
                "abi": _whole_abi(net, full)}
        arrays.update({f"conn.{p.name}.{side}": getattr(p.connectivity, side) for p in net.projections.values()
                       if p.connectivity is not None for side in ("pre", "post")})
        np.savez(os.path.join(tmp, PLAN_FILE), meta=np.array(json.dumps(meta)), **arrays)
    return ranks


def _whole_abi(net, params: dict) -> dict:
    """What the training loops read of an artifact's ABI, for the whole network (no rank holds it whole)."""
    frozen = {n for p in net.projections.values() if p.frozen for n in p.params}
    return {"loss": net.loss.kind, "readout": net.loss.readout, "num_classes": net.size(net.loss.readout),
            "inputs": [{"name": i.name, "size": i.size, "binary": i.binary} for i in net.inputs.values()],
            "groups": [{"name": g, "size": net.size(g)} for g in net.order()],
            "projections": [{"name": p.name, "pre": p.pre, "post": p.post} for p in net.projections.values()],
            "params": [{"name": n, "shape": list(a.shape), "dtype": "float32", "trainable": n not in frozen}
                       for n, a in params.items()]}
