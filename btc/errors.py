"""The one exception type btc raises for bad input: it names what was wrong and what was expected."""

__all__ = ["BtcError"]


class BtcError(ValueError):
    """A user-facing error; the message alone should tell the user what to fix."""
