"""The learning algorithms btc compiles, as one enumeration shared by compiler and runtime.

Dependency-free on purpose (only `btc.errors`): the runtime imports it without the compiler.
"""

from enum import Enum

from btc.errors import BtcError

__all__ = ["Algorithm", "ONLINE"]


class Algorithm(str, Enum):
    """How a compiled module computes its gradients; the value is the spelling on the command line."""

    PP_PROP = "pp-prop"  # two small traces per projection (pre/post factors)
    D_RTRL = "d-rtrl"  # an exact per-weight trace per projection
    HYBRID = "hybrid"  # per projection, pp-prop or D-RTRL by a memory rule
    BPTT = "bptt"  # the whole sequence, backward in time

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: "str | Algorithm") -> "Algorithm":
        """The algorithm spelled `text`; a BtcError listing the valid spellings otherwise."""
        try:
            return cls(text)
        except ValueError:
            raise BtcError(f"unknown algorithm {text!r}; expected one of {[a.value for a in cls]}") from None

    @property
    def online(self) -> bool:
        """True when the module learns step by step (every algorithm but BPTT)."""
        return self is not Algorithm.BPTT


# what a single projection may learn by under an online algorithm
ONLINE = (Algorithm.PP_PROP, Algorithm.D_RTRL)
