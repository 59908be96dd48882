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
        for g in view.groups:
            if not view.into(g):
                raise BtcError(f"btc group {g}: no projection feeds it")
