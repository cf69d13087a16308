"""The text tables of kcli's summaries (``provider-summary``, ``queue-summary``): columns
one space apart, names left-aligned, counts right-aligned with thousands separators, rows
in natural order where kcli sorts by name (``mx2`` before ``mx10``, case ignored)."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

__all__ = ["count", "natural_key", "tabulate"]


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order: digit runs compare as numbers, the rest without case."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in re.findall(r"\d+|\D+", text))  # fmt: skip


def count(number: int) -> str:
    """A count as kcli prints one (``12,345``)."""
    return f"{number:,}"


def tabulate(headers: Sequence[str], rows: Sequence[Sequence[str]],
             right: Collection[str]) -> list[str]:  # fmt: skip
    """The table's lines: the headers, then the rows; ``right`` names the right-aligned
    columns. Trailing spaces are dropped (an empty last column adds none)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return " ".join(c.rjust(w) if headers[i] in right else c.ljust(w)
                        for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(headers), *(line(r) for r in rows)]
