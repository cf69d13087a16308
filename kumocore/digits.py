"""Decimal numbers in text that came from outside: ASCII digits only, bounded in length.

``str.isdigit`` and ``int`` disagree: ``"²".isdigit()`` is true and ``int("²")`` raises,
and ``int`` refuses more than 4,300 digits. A check with one and a parse with the other
lets such text raise ``ValueError`` where a refusal was meant (an HTTP 500, an SMTP
session's internal error, a report that fails to parse). Every number kumocore reads
from a peer, a report or a request goes through :func:`decimal`.
"""

from __future__ import annotations

__all__ = ["decimal", "port_number"]


def decimal(text: str, max_digits: int = 18) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``max_digits`` ASCII digits;
    None otherwise (a sign, spaces, other scripts' digits, an empty or longer string)."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def port_number(text: str) -> int | None:
    """``text`` as a TCP port (0 to 65535, at most five ASCII digits), else None."""
    port = decimal(text, max_digits=5)
    return port if port is not None and port <= 65535 else None
