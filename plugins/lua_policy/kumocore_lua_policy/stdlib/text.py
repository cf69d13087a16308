"""``kumo.string.*``: string helpers beyond Lua's own ``string`` library.

They take plain substrings (not Lua patterns), as KumoMTA's Rust versions do; ``rsplit``
returns the pieces last-first, and the ``n`` variants stop after ``LIMIT`` pieces with the
rest of the string in the last one. A number is taken as the string Lua's ``tostring`` gives
(KumoMTA's mlua coerces numbers to strings); anything else, nil included, is refused with
the argument's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError
from kumocore_lua_policy.byte_strings import takes_bytes
from kumocore_lua_policy.stdlib.arguments import string_arg


def _text(function: str, what: str, value: Any) -> str:
    return string_arg(f"kumo.string.{function}", what, value)


def _pieces(text: str, pattern: str) -> list[str]:
    """``text`` split at every ``pattern``, as Rust's ``str::split``. An empty pattern
    matches before every character and at the end: ``'abc'`` -> ``['', 'a', 'b', 'c', '']``."""
    return ["", *text, ""] if pattern == "" else text.split(pattern)


def split(text: Any, pattern: Any) -> list[str]:
    return _pieces(_text("split", "TEXT", text), _text("split", "PATTERN", pattern))


def rsplit(text: Any, pattern: Any) -> list[str]:
    text, pattern = _text("rsplit", "TEXT", text), _text("rsplit", "PATTERN", pattern)
    # Matched from the end (rsplit), so overlapping separators pair up as Rust's do.
    return _pieces(text, pattern)[::-1] if pattern == "" else text.rsplit(pattern)[::-1]


def _limit(name: str, limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"kumo.string.{name}: LIMIT must be a non-negative integer, "
                          f"got {limit!r}")
    return limit


def splitn(text: Any, limit: Any, pattern: Any) -> list[str]:
    text, pattern = _text("splitn", "TEXT", text), _text("splitn", "PATTERN", pattern)
    limit = _limit("splitn", limit)
    if limit <= 1:
        return [text][:limit]
    if pattern == "":  # the (limit-1) first pieces, then the rest from the next match
        pieces = _pieces(text, pattern)
        return pieces if limit >= len(pieces) else [*pieces[: limit - 1], text[limit - 2 :]]
    parts: list[str] = text.split(pattern, limit - 1)
    return parts


def rsplitn(text: Any, limit: Any, pattern: Any) -> list[str]:
    text, pattern = _text("rsplitn", "TEXT", text), _text("rsplitn", "PATTERN", pattern)
    limit = _limit("rsplitn", limit)
    if limit <= 1:
        return [text][:limit]
    if pattern == "":
        pieces = _pieces(text, pattern)[::-1]
        if limit >= len(pieces):
            return pieces
        return [*pieces[: limit - 1], text[: len(text) - (limit - 2)]]
    parts: list[str] = text.rsplit(pattern, limit - 1)
    return parts[::-1]


def split_whitespace(text: Any) -> list[str]:
    return _text("split_whitespace", "TEXT", text).split()


def split_ascii_whitespace(text: Any) -> list[str]:
    text = _text("split_ascii_whitespace", "TEXT", text)
    return text.split(None) if text.isascii() else [p for p in _ascii_split(text) if p]


def _ascii_split(text: str) -> list[str]:
    for ch in "\t\n\x0c\r":
        text = text.replace(ch, " ")
    return text.split(" ")


def replace(text: Any, old: Any, new: Any) -> str:
    return _text("replace", "TEXT", text).replace(
        _text("replace", "FROM", old), _text("replace", "TO", new))


def replacen(text: Any, old: Any, new: Any, count: Any) -> str:
    return _text("replacen", "TEXT", text).replace(
        _text("replacen", "FROM", old), _text("replacen", "TO", new), _limit("replacen", count))


def _bytes(function: str, what: str, value: Any) -> bytes:
    """An argument KumoMTA takes as a Lua byte string (``mlua::String``): a string that
    is not UTF-8 arrives as ``bytes`` (``takes_bytes``), any other as text."""
    return value if isinstance(value, bytes) else _text(function, what, value).encode()


@takes_bytes
def starts_with(text: Any, prefix: Any) -> bool:
    return _bytes("starts_with", "TEXT", text).startswith(_bytes("starts_with", "PATTERN", prefix))


@takes_bytes
def ends_with(text: Any, suffix: Any) -> bool:
    return _bytes("ends_with", "TEXT", text).endswith(_bytes("ends_with", "PATTERN", suffix))


def trim(text: Any) -> str:
    return _text("trim", "TEXT", text).strip()


def trim_start(text: Any) -> str:
    return _text("trim_start", "TEXT", text).lstrip()


def trim_end(text: Any) -> str:
    return _text("trim_end", "TEXT", text).rstrip()


# KumoMTA's kumo-wrap splits at ASCII whitespace only (a no-break space is part of a word)
# and measures lines in UTF-8 bytes, not characters.
_ASCII_WHITESPACE = re.compile(r"[ \t\n\x0c\r]+")


def _size(text: str) -> int:
    # surrogateescape: the bytes of a binary (non-UTF-8) text count one each.
    return len(text.encode("utf-8", "surrogateescape"))


def _hard_pieces(word: str, hard: int) -> list[str]:
    """``word`` cut into pieces of at most ``hard`` bytes. KumoMTA cuts at the byte; a
    Python string cannot hold half a character, so a cut falls before the character that
    would cross the limit (a piece holds at least one character)."""
    pieces: list[str] = []
    piece = ""
    for char in word:
        if piece and _size(piece) + _size(char) > hard:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece]


@takes_bytes
def wrap(
    text: Any, soft_limit: int | None = None, hard_limit: int | None = None
) -> str | bytes:
    """Break ``text`` at ASCII whitespace to keep lines under ``soft_limit`` bytes (default
    75); words longer than ``hard_limit`` bytes (default 900) are cut. Breaks are CR LF TAB,
    as KumoMTA's header wrapping (kumo-wrap) makes them. Binary text is wrapped as bytes and
    given back as bytes, as KumoMTA's ``mlua::String`` argument is."""
    soft = 75 if soft_limit is None else _limit("wrap", soft_limit)
    hard = 900 if hard_limit is None else _limit("wrap", hard_limit)
    if hard < 1 or soft < 1:
        raise ConfigError("kumo.string.wrap: the limits must be at least 1")
    lines: list[str] = []
    line = ""
    binary = isinstance(text, bytes)
    source = text.decode("utf-8", "surrogateescape") if binary else _text("wrap", "TEXT", text)
    for word in _ASCII_WHITESPACE.split(source):
        if not word:
            continue
        # The separating space is not counted, as in kumo-wrap.
        if _size(line) + _size(word) < soft:
            line = f"{line} {word}" if line else word
            continue
        if line:
            lines.append(line)
        if _size(word) <= hard:
            line = word
            continue
        *full, line = _hard_pieces(word, hard)
        lines.extend(full)
        if _size(line) >= hard:  # a last piece that filled the limit ends its line too
            lines.append(line)
            line = ""
    if line:
        lines.append(line)
    wrapped = "\r\n\t".join(lines).rstrip()
    return wrapped.encode("utf-8", "surrogateescape") if binary else wrapped


def string_functions() -> dict[str, Callable[..., Any]]:
    functions: dict[str, Callable[..., Any]] = {
        "split": split, "rsplit": rsplit, "splitn": splitn, "rsplitn": rsplitn,
        "split_whitespace": split_whitespace, "split_ascii_whitespace": split_ascii_whitespace,
        "replace": replace, "replacen": replacen, "starts_with": starts_with,
        "ends_with": ends_with, "trim": trim, "trim_start": trim_start, "trim_end": trim_end,
        "wrap": wrap,
    }  # fmt: skip
    return {f"string.{name}": fn for name, fn in functions.items()}
