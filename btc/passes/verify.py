"""btc-verify: reads the frontend's btc module; produces nothing, or one BtcError naming the bad op.

Checks each op against its declaration (dialect/ops.py) and the model-level rules a declaration
cannot state: one loss on a readout, projections between known groups, a group per projection target.
"""
from __future__ import annotations

from dataclasses import dataclass

from btc.dialect import verify_module
from btc.errors import BtcError
from btc.passes._view import ModelView

__all__ = ["VerifyPass"]


@dataclass(frozen=True)
class VerifyPass:
    name = "btc-verify"

    def run(self, module) -> None:
        verify_module(module)
        view = ModelView(module)
        if view.loss is None:
            raise BtcError("btc module has no btc.loss op")
        if not view.groups[view.loss["readout"]].readout:
            raise BtcError(f"btc.loss: @{view.loss['readout']} is not a btc.readout")
        for p in view.projections.values():
            if p.post not in view.groups:
                raise BtcError(f"btc.projection {p.name}: post @{p.post} is not a group")
            if p.pre in view.groups and view.groups[p.pre].readout:
                raise BtcError(f"btc.projection {p.name}: pre @{p.pre} is a readout, which has no spikes")
            if p.recurrent and p.pre in view.inputs:
                raise BtcError(f"btc.projection {p.name}: an input cannot be read recurrently")
            if p.port not in view.groups[p.post].ports:
                raise BtcError(f"btc.projection {p.name}: @{p.post} has no port {p.port!r}; "
                               f"ports: {list(view.groups[p.post].ports)}")
            _check_pairs(view, p)
            if p.sign not in (-1, 0, 1) or p.delay < 0:
                raise BtcError(f"btc.projection {p.name}: sign must be -1, 0 or 1 and delay >= 0, "
                               f"got sign {p.sign}, delay {p.delay}")
        for g, info in view.groups.items():
            if info.driven_by in view.groups and view.groups[info.driven_by].readout:
                raise BtcError(f"btc group {g}: driven by @{info.driven_by}, a readout, which has no spikes")
            if info.driven_by and view.size(info.driven_by) != info.size:
                raise BtcError(f"btc group {g}: driven one-to-one by @{info.driven_by} of size "
                               f"{view.size(info.driven_by)}, but has {info.size} neurons")
            if not view.into(g) and not info.driven_by:
                raise BtcError(f"btc group {g}: no projection feeds it")


def _check_pairs(view: ModelView, p) -> None:
    """A sparse projection's pairs: within both groups, sorted by (pre, post), each once; the lowering's
    tables rely on it."""
    if not p.sparse:
        return
    I, O = view.size(p.pre), view.size(p.post)
    pre, post = p.pre_index.astype("int64"), p.post_index.astype("int64")
    if pre.min() < 0 or pre.max() >= I or post.min() < 0 or post.max() >= O:
        raise BtcError(f"btc.projection {p.name}: a pair is out of range ([0, {I}) x [0, {O}))")
    key = pre * O + post
    if (key[1:] <= key[:-1]).any():
        raise BtcError(f"btc.projection {p.name}: the pairs must be sorted by (pre, post), each once")
    if O % p.bias_block:
        raise BtcError(f"btc.projection {p.name}: bias_block {p.bias_block} does not divide @{p.post}'s {O} neurons")
