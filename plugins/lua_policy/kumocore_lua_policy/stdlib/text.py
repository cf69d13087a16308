"""``kumo.string.*``: string helpers beyond Lua's own ``string`` library.

They take plain substrings (not Lua patterns), as KumoMTA's Rust versions do; ``rsplit``
returns the pieces last-first, and the ``n`` variants stop after ``LIMIT`` pieces with the
rest of the string in the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kumocore import ConfigError


def _pieces(text: str, pattern: str) -> list[str]:
    """``text`` split at every ``pattern``, as Rust's ``str::split``. An empty pattern
    matches before every character and at the end: ``'abc'`` -> ``['', 'a', 'b', 'c', '']``."""
    return ["", *text, ""] if pattern == "" else text.split(pattern)


def split(text: str, pattern: str) -> list[str]:
    return _pieces(text, pattern)


def rsplit(text: str, pattern: str) -> list[str]:
    # Matched from the end (rsplit), so overlapping separators pair up as Rust's do.
    return _pieces(text, pattern)[::-1] if pattern == "" else text.rsplit(pattern)[::-1]


def _limit(name: str, limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"kumo.string.{name}: LIMIT must be a non-negative integer, "
                          f"got {limit!r}")
    return limit


def splitn(text: str, limit: int, pattern: str) -> list[str]:
    limit = _limit("splitn", limit)
    if limit <= 1:
        return [text][:limit]
    if pattern == "":  # the (limit-1) first pieces, then the rest from the next match
        pieces = _pieces(text, pattern)
        return pieces if limit >= len(pieces) else [*pieces[: limit - 1], text[limit - 2 :]]
    return text.split(pattern, limit - 1)


def rsplitn(text: str, limit: int, pattern: str) -> list[str]:
    limit = _limit("rsplitn", limit)
    if limit <= 1:
        return [text][:limit]
    if pattern == "":
        pieces = _pieces(text, pattern)[::-1]
        if limit >= len(pieces):
            return pieces
        return [*pieces[: limit - 1], text[: len(text) - (limit - 2)]]
    return text.rsplit(pattern, limit - 1)[::-1]


def split_whitespace(text: str) -> list[str]:
    return text.split()


def split_ascii_whitespace(text: str) -> list[str]:
    return text.split(None) if text.isascii() else [p for p in _ascii_split(text) if p]


def _ascii_split(text: str) -> list[str]:
    for ch in "\t\n\x0c\r":
        text = text.replace(ch, " ")
    return text.split(" ")


def replace(text: str, old: str, new: str) -> str:
    return text.replace(old, new)


def replacen(text: str, old: str, new: str, count: int) -> str:
    return text.replace(old, new, _limit("replacen", count))


def starts_with(text: str, prefix: str) -> bool:
    return text.startswith(prefix)


def ends_with(text: str, suffix: str) -> bool:
    return text.endswith(suffix)


def trim(text: str) -> str:
    return text.strip()


def trim_start(text: str) -> str:
    return text.lstrip()


def trim_end(text: str) -> str:
    return text.rstrip()


def wrap(text: str, soft_limit: int | None = None, hard_limit: int | None = None) -> str:
    """Break ``text`` at whitespace to keep lines under ``soft_limit`` (default 75); words
    longer than ``hard_limit`` (default 900) are cut. Breaks are CR LF TAB."""
    soft = 75 if soft_limit is None else _limit("wrap", soft_limit)
    hard = 900 if hard_limit is None else _limit("wrap", hard_limit)
    if hard < 1 or soft < 1:
        raise ConfigError("kumo.string.wrap: the limits must be at least 1")
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > hard:  # a word that can never fit: hard break it
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:hard])
            word = word[hard:]
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= soft or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return "\r\n\t".join(lines).rstrip()


def string_functions() -> dict[str, Callable[..., Any]]:
    functions: dict[str, Callable[..., Any]] = {
        "split": split, "rsplit": rsplit, "splitn": splitn, "rsplitn": rsplitn,
        "split_whitespace": split_whitespace, "split_ascii_whitespace": split_ascii_whitespace,
        "replace": replace, "replacen": replacen, "starts_with": starts_with,
        "ends_with": ends_with, "trim": trim, "trim_start": trim_start, "trim_end": trim_end,
        "wrap": wrap,
    }  # fmt: skip
    return {f"string.{name}": fn for name, fn in functions.items()}
