"""The top-level structure of an address header, found in one bounded, linear pass.

An address list is mailboxes and groups (``Friends: a@x, b@y;``). Finding the groups takes
knowing which ``:`` and ``;`` are structure and which sit inside a quoted string, a
comment or an angle address. The standard library's readers find out by recursing once
per nested comment (``From: ((((...`` of a few hundred parentheses raises
``RecursionError``) and its group reader is quadratic in the members of a group. This
pass walks the special characters once, with an explicit depth counter: a comment nested
deeper than :data:`MAX_COMMENT_DEPTH` is refused with :class:`AddressHeaderError`, and
each piece it hands on holds no group, so that reading its mailboxes is linear too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kumocore.mail.rfc2047 import decode_rfc2047

__all__ = ["MAX_COMMENT_DEPTH", "AddressHeaderError", "Piece", "group_name", "split_groups"]

#: Comments nest this deep at most. Real mail nests two or three; the bound keeps every
#: reader of a header (this pass, the standard library's recursive one) far from Python's
#: recursion limit even when called from deep in a policy's stack.
MAX_COMMENT_DEPTH = 64

# An escaped pair (skipped whole, in every state) or one character that changes state.
_SPECIAL = re.compile(r'\\.|["()<>:;,]', re.DOTALL)
_TOP, _QUOTE, _COMMENT, _ANGLE = range(4)


class AddressHeaderError(ValueError):
    """An address header that no reader should follow (comments nested too deeply)."""


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of an address header: plain mailboxes (``group`` is None) or one group's
    members (``group`` is the raw text of its name, before the ``:``)."""

    text: str
    group: str | None = None


class _Splitter:
    """The state of one pass over a header (see :func:`split_groups`)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pieces: list[Piece] = []
        self.plain_start = 0  # where the current run of plain mailboxes began
        self.entry_start = 0  # where the current entry (mailbox or group name) began
        self.members_start = -1  # inside a group: where its members begin
        self.group_name = ""  # inside a group: the raw text of its name

    def structure(self, char: str, pos: int) -> None:
        """A ``:``, ``;`` or ``,`` outside quotes, comments and angle brackets."""
        if char == ":" and self.members_start < 0:
            self._flush_plain(self.entry_start)
            self.group_name = self.text[self.entry_start : pos]
            self.members_start = pos + 1
        elif char == ";" and self.members_start >= 0:
            self.pieces.append(Piece(self.text[self.members_start : pos], self.group_name))
            self.members_start = -1
            self.plain_start = self.entry_start = pos + 1
        elif char == "," and self.members_start < 0:
            self.entry_start = pos + 1

    def finish(self) -> list[Piece]:
        if self.members_start >= 0:  # a group without its ';': members run to the end
            self.pieces.append(Piece(self.text[self.members_start :], self.group_name))
        else:
            self._flush_plain(len(self.text))
        return self.pieces

    def _flush_plain(self, end: int) -> None:
        # Without the commas that ended a group: a mailbox's leading comment is read as
        # its name only at the start of a list (as when the header is read whole).
        chunk = self.text[self.plain_start : end].lstrip(" \t\r\n,")
        if chunk.strip():
            self.pieces.append(Piece(chunk))


def split_groups(text: str) -> list[Piece]:
    """``text`` cut into runs of plain mailboxes and groups, in header order.

    Raises :class:`AddressHeaderError` for a comment nested deeper than
    :data:`MAX_COMMENT_DEPTH`. Linear in ``len(text)``: each special character is looked
    at once and no state is ever re-read.
    """
    splitter = _Splitter(text)
    mode, outer, depth = _TOP, _TOP, 0
    for match in _SPECIAL.finditer(text):
        char = match.group()
        if len(char) == 2:  # a quoted pair: whatever it escapes is plain text
            continue
        if mode == _QUOTE:
            if char == '"':
                mode = outer
        elif mode == _COMMENT:
            if char == "(":
                depth += 1
                if depth > MAX_COMMENT_DEPTH:
                    raise AddressHeaderError(
                        f"address header nests comments too deeply (more than "
                        f"{MAX_COMMENT_DEPTH} levels, at character {match.start()})"
                    )
            elif char == ")":
                depth -= 1
                if depth == 0:
                    mode = outer
        elif char == '"':
            mode, outer = _QUOTE, mode
        elif char == "(":
            mode, outer, depth = _COMMENT, mode, 1
        elif char == "<":
            mode = _ANGLE
        elif char == ">":
            mode = _TOP
        elif mode == _TOP:
            splitter.structure(char, match.start())
    return splitter.finish()


def group_name(raw: str) -> str | None:
    """The display name of a group from the raw text before its ``:``: comments dropped,
    quoted strings unquoted, runs of whitespace made one space, encoded words decoded.
    (The text has been through :func:`split_groups`, so its comments are bounded.)"""
    out: list[str] = []
    pos, depth, quoted = 0, 0, False
    for match in _SPECIAL.finditer(raw):
        token, start, end = match.group(), match.start(), match.end()
        if depth:
            depth += {"(": 1, ")": -1}.get(token, 0)
            pos = end if depth == 0 else pos
        elif quoted and (len(token) == 2 or token == '"'):
            out.append(raw[pos:start] + token[1:])  # the escaped character, or nothing
            pos, quoted = end, token != '"'
        elif not quoted and token in '"(':
            out.append(raw[pos:start] + " " * (token == "("))
            pos, quoted, depth = end, token == '"', int(token == "(")
    if depth == 0:
        out.append(raw[pos:])
    return decode_rfc2047(" ".join("".join(out).split())) or None
