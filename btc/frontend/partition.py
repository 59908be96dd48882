"""Split a network by neuron across MPI ranks (docs/distributed.md, section 2).

Each rank owns some neurons of every group: their states, their traces and every weight into them
(the whole network's parameters are cut, never copied). A remote neuron that projects into a rank is
a *ghost* there: an input `<group>_ghost` that the rank is fed, each step, with the spikes the other
ranks sent of the step before. So only recurrent projections (which read spikes of step t-1) may cross
ranks, so only projections that read spikes at least one step old (recurrent, or delayed) may cross
ranks; a ghost projection reads its input one step less late than the original read the spikes. Each
rank's readout sums its own neurons (the readout is linear in them); a readout projection's bias lives
on the lowest rank it has connections on, and an input -> readout projection on rank 0, so the ranks'
readouts add up to the whole network's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from btc.errors import BtcError
from btc.frontend.network import Network, Readout

__all__ = ["RankNetwork", "partition", "owners"]


@dataclass(frozen=True)
class RankNetwork:
    rank: int
    net: Network
    owned: dict  # group -> the global indices of its neurons on this rank (sorted)
    ghosts: dict  # ghost input -> (group, the global indices of the remote neurons it relays, sorted)
    params: dict  # this rank's parameter -> (the whole network's parameter, flat indices into it)


def owners(net: Network, owner) -> dict[str, np.ndarray]:
    """group -> rank of each neuron. `owner`: a number of ranks K (each group cut into K contiguous
    blocks of nearly equal size) or a dict group -> int array [size]."""
    groups = [g for g, grp in net.groups.items() if not isinstance(grp, Readout)]
    if isinstance(owner, (int, np.integer)) and not isinstance(owner, bool):
        if owner < 1:
            raise BtcError(f"partition: the number of ranks must be >= 1, got {owner}")
        return {g: (np.arange(net.size(g)) * int(owner) // net.size(g)).astype(np.int64) for g in groups}
    if not isinstance(owner, dict) or set(owner) != set(groups):
        raise BtcError(f"partition: owner must be a number of ranks or a dict giving the rank of every neuron of "
                       f"each group {groups}; got {sorted(owner) if isinstance(owner, dict) else type(owner).__name__}")
    out = {}
    for g in groups:
        a = np.asarray(owner[g])
        if a.shape != (net.size(g),) or a.dtype.kind not in "iu" or (a.size and a.min() < 0):
            raise BtcError(f"partition: owner[{g!r}] must be {net.size(g)} ranks (integers >= 0), one per neuron; "
                           f"got {a.dtype} of shape {list(a.shape)}")
        out[g] = a.astype(np.int64)
    return out


def partition(net: Network, owner) -> list[RankNetwork]:
    """One network per rank; together they compute what `net` computes (see the module's docstring)."""
    net.check()
    rank_of = owners(net, owner)
    K = 1 + max(int(a.max()) for a in rank_of.values())
    for g, a in rank_of.items():
        empty = sorted(set(range(K)) - set(a.tolist()))
        if empty:
            raise BtcError(f"partition: rank {empty[0]} owns no neuron of group {g!r}; every rank needs at least "
                           f"one neuron of every group ({K} ranks)")
    for g, grp in net.groups.items():
        if getattr(grp, "driven_by", None):
            raise BtcError(f"partition: group {g!r} is an AlignPre synapse (project(..., synapse=...)), whose state "
                           "lives on the presynaptic side; partitioning supports synapses inside the neuron model")
    pairs = {p.name: _pairs(net, p, rank_of) for p in net.projections.values()}
    bias_rank = {}  # a readout projection's bias: on the lowest rank it has connections on
    for p in net.projections.values():
        if isinstance(net.groups[p.post], Readout):
            pre = pairs[p.name][0]
            bias_rank[p.name] = int(rank_of[p.pre][pre].min()) if p.pre in rank_of else 0
    ranks = [_rank_network(net, r, rank_of, pairs, bias_rank) for r in range(K)]
    for rn in ranks:  # a part may not stand alone (a group whose spikes only reach other ranks, say)
        try:
            rn.net.check()
        except BtcError as e:
            raise BtcError(f"partition: rank {rn.rank}'s part of the network is not a network of its own: {e}") from None
    return ranks


def _pairs(net, p, rank_of):
    """(pre, post, flat index into the whole W) of every connection; refuses what cannot be cut."""
    if p.connectivity is not None and p.connectivity.tie is not None:
        raise BtcError(f"partition: projection {p.name!r} is a convolution (shared kernel); it cannot be cut by neuron")
    if p.connectivity is not None:
        pre, post = p.connectivity.pre.astype(np.int64), p.connectivity.post.astype(np.int64)
        index = np.arange(pre.size)
    else:
        I, O = net.size(p.pre), net.size(p.post)
        pre, post = np.repeat(np.arange(I), O), np.tile(np.arange(O), I)
        index = pre * O + post
    if p.pre in rank_of and p.post in rank_of and p.lag == 0:
        crossing = rank_of[p.pre][pre] != rank_of[p.post][post]
        if crossing.any():
            k = int(np.argmax(crossing))
            raise BtcError(f"partition: projection {p.name!r} ({p.pre}->{p.post}) connects neuron {pre[k]} (rank "
                           f"{rank_of[p.pre][pre[k]]}) to neuron {post[k]} (rank {rank_of[p.post][post[k]]}) within "
                           "a step; only projections reading spikes of an earlier step (recurrent or delayed) may "
                           "cross ranks")
    return pre, post, index


def _rank_network(net, r, rank_of, pairs, bias_rank) -> RankNetwork:
    owned = {g: np.nonzero(a == r)[0] for g, a in rank_of.items()}
    local = {g: _local_index(ids, net.size(g)) for g, ids in owned.items()}
    full = net.init_params()
    rn = Network(dt=net.dt, seed=net.seed)
    for name, inp in net.inputs.items():
        rn.input(name, inp.size, inp.binary)
    # the remote neurons of each group that project into this rank's neurons
    ghost_ids = {}
    for p in net.projections.values():
        if p.pre in rank_of and p.post in rank_of:
            pre, post, _ = pairs[p.name]
            into = rank_of[p.post][post] == r
            remote = pre[into & (rank_of[p.pre][pre] != r)]
            ghost_ids[p.pre] = np.union1d(ghost_ids.get(p.pre, np.zeros(0, np.int64)), remote)
    ghosts = {}
    for g, ids in ghost_ids.items():
        if ids.size:
            name = f"{g}_ghost"
            if name in net.inputs or name in net.groups:
                raise BtcError(f"partition: the ghost input of group {g!r} would be called {name!r}, which the "
                               "network already uses; rename that input or group")
            rn.input(name, int(ids.size), True)
            ghosts[name] = (g, ids)
    for g, grp in net.groups.items():
        if isinstance(grp, Readout):
            rn.readout(g, grp.size, grp.tau)
        else:
            rn.group(g, int(owned[g].size), grp.neuron, grp.trainable, grp.dale)
    params = {}
    for p in net.projections.values():
        pre, post, index = pairs[p.name]
        readout = isinstance(net.groups[p.post], Readout)
        if readout:
            keep = (rank_of[p.pre][pre] == r) if p.pre in rank_of else np.full(pre.size, r == 0)
        else:
            keep = rank_of[p.post][post] == r
        mine = keep & ((rank_of[p.pre][pre] == r) if p.pre in rank_of else True)
        # (name, presynaptic, pairs, recurrent, delay, global -> local presynaptic index)
        parts = [(p.name, p.pre, mine, p.recurrent, p.delay, local.get(p.pre))]
        if p.pre in rank_of and not readout:  # the ghost carries spikes one step old already
            parts.append((f"{p.name}_ghost", f"{p.pre}_ghost", keep & ~mine, False, p.lag - 1,
                          _local_index(ghost_ids.get(p.pre, np.zeros(0, np.int64)), net.size(p.pre))))
        with_bias = p.bias and (r == bias_rank[p.name] if readout else True)
        if with_bias and not keep.any():
            raise BtcError(f"partition: projection {p.name!r} has a bias but no connection into rank {r}'s neurons of "
                           f"{p.post!r}, so their biases would have no place; give it a connection there or no bias")
        for name, src, sel, recurrent, delay, to_local in parts:
            if not sel.any():
                continue
            if name != p.name and (name in net.projections):
                raise BtcError(f"partition: the ghost projection of {p.name!r} would be called {name!r}, which the "
                               "network already uses; rename that projection")
            a = pre[sel] if to_local is None else to_local[pre[sel]]
            b = post[sel] if readout else local[p.post][post[sel]]
            order = np.lexsort((b, a))
            a, b, k = a[order], b[order], index[sel][order]
            values = full[f"{p.name}.W"].ravel()[k]
            n_pre, n_post = rn.size(src), rn.size(p.post)
            dense = p.connectivity is None and a.size == n_pre * n_post
            rn.project(src, p.post, recurrent=recurrent, bias=with_bias, name=name, port=p.port,
                       sign=p.sign or None, delay=delay, trainable=not p.frozen,
                       weights=values.reshape(n_pre, n_post) if dense else values,
                       connectivity=None if dense else (a, b))
            params[f"{name}.W"] = (f"{p.name}.W", k)
            if with_bias:
                posts = np.arange(n_post) if readout else owned[p.post]
                params[f"{name}.b"] = (f"{p.name}.b", posts)
                if p.biases is not None:  # explicit initial biases, cut like the weights
                    rn.projections[name] = _with_biases(rn.projections[name], np.asarray(p.biases)[posts])
                with_bias = False  # one bias per postsynaptic neuron: the first part carries it
    for g, grp in net.groups.items():
        for q in getattr(grp, "trainable", ()):
            params[f"{g}.{q}"] = (f"{g}.{q}", owned[g])
    rn.set_loss(net.loss.kind, net.loss.readout)
    return RankNetwork(r, rn, owned, ghosts, params)


def _local_index(ids: np.ndarray, n: int) -> np.ndarray:
    """global index -> position in `ids` (-1 where absent)."""
    out = np.full(n, -1, np.int64)
    out[ids] = np.arange(ids.size)
    return out


def _with_biases(proj, biases):
    from dataclasses import replace

    return replace(proj, biases=biases.astype(np.float32))
