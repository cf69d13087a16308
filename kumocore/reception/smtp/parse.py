"""Parsing SMTP command lines: the verb, ``FROM:<path>``/``TO:<path>`` and ESMTP params.

Only syntax lives here; what an address may contain is decided by
:func:`kumocore.mail.address.parse_envelope_address`, and what a parameter means by the
command handlers.
"""

from __future__ import annotations

import re

__all__ = ["CommandSyntaxError", "parse_params", "split_command", "split_path"]

_PARAM_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 5321 esmtp-value: any printable ASCII except "=" and space; UTF-8 is tolerated.
_PARAM_VALUE = re.compile(r"[^\x00-\x20=\x7f]+")


class CommandSyntaxError(ValueError):
    """The command line does not follow the grammar; the message says how."""


def split_command(line: str) -> tuple[str, str]:
    """``"mail FROM:<a@b>"`` -> ``("MAIL", "FROM:<a@b>")``."""
    verb, _, arg = line.partition(" ")
    return verb.upper(), arg.strip(" ")


def split_path(arg: str, keyword: str) -> tuple[str, list[str]]:
    """Split ``FROM:<a@b> SIZE=10`` into ``("<a@b>", ["SIZE=10"])`` for ``keyword`` FROM:.

    Spaces after the colon are tolerated (many clients send ``MAIL FROM: <a@b>``); a path
    without angle brackets is accepted as far as the next space, as Postfix does.
    """
    if arg[: len(keyword)].upper() != keyword:
        raise CommandSyntaxError(f"expected {keyword}<address>")
    rest = arg[len(keyword) :].lstrip(" ")
    if not rest:
        raise CommandSyntaxError("missing address")
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        path, params = rest[: end + 1], rest[end + 1 :]
        if params and not params.startswith(" "):
            raise CommandSyntaxError("expected a space after the address")
    else:
        path, _, params = rest.partition(" ")
    return path, params.split()


def parse_params(tokens: list[str]) -> dict[str, str | None]:
    """``["SIZE=10", "SMTPUTF8"]`` -> ``{"SIZE": "10", "SMTPUTF8": None}`` (keys upper-cased).

    A repeated parameter is a syntax error: which one applies would be ambiguous.
    """
    params: dict[str, str | None] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if _PARAM_KEY.fullmatch(key) is None or (eq and _PARAM_VALUE.fullmatch(value) is None):
            raise CommandSyntaxError(f"malformed parameter {token!r}")
        key = key.upper()
        if key in params:
            raise CommandSyntaxError(f"parameter {key} given twice")
        params[key] = value if eq else None
    return params


def _closing_bracket(text: str) -> int:
    """Index of the ``>`` closing the path that starts at ``text[0]``; quotes respected."""
    end = text.find(">")
    if end >= 0 and '"' not in text[:end]:
        return end  # nothing quoted before the first ">" (nearly every path): it closes
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    raise CommandSyntaxError("unbalanced angle brackets in address")
