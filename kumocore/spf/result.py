"""What an SPF check concludes (RFC 7208 §2.6), and the two ways evaluation stops early.

A check always ends in one of seven dispositions. ``temperror`` and ``permerror`` end it
wherever they happen (deep inside an ``include`` too), so they travel as :class:`SpfAbort`
and are turned into a :class:`SpfResult` at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Disposition = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
ErrorDisposition = Literal["temperror", "permerror"]

#: Every disposition, in the order RFC 7208 §2.6 lists them.
DISPOSITIONS: tuple[Disposition, ...] = (
    "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")

#: What a directive's qualifier makes of a match (§4.6.2); ``+`` is the default.
QUALIFIERS: dict[str, Disposition] = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The disposition and a human-readable reason (the explanation for a ``fail``)."""

    disposition: Disposition
    reason: str


class SpfAbort(Exception):
    """A ``temperror`` (DNS trouble) or ``permerror`` (a broken or abusive record)."""

    def __init__(self, disposition: ErrorDisposition, reason: str) -> None:
        super().__init__(reason)
        self.disposition: ErrorDisposition = disposition
        self.reason = reason

    def result(self) -> SpfResult:
        return SpfResult(self.disposition, self.reason)


class SpfSyntaxError(ValueError):
    """A record or macro string that does not follow RFC 7208's grammar: a permerror."""
