"""Reading an ``Authentication-Results`` header (RFC 8601) into KumoMTA's shape, for
``hdr.authentication_results`` and ``hdr.value`` of ``kumo.mimepart`` headers.

The shape is ``{serv_id=, version=?, results={ {method=, method_version=?, result=,
reason=?, props={["header.d"]=...}}, ... }}``, the same fields ``msg:dkim_verify()``
returns and ``msg:add_authentication_results`` writes. Comments are dropped, quoted
strings unquoted; ``none`` (no results) gives an empty ``results``.
"""

from __future__ import annotations

import re
from typing import Any

from kumocore.mail.mime_header_values import HeaderValueError

__all__ = ["parse_authentication_results"]

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_VALUE = rf"({_QUOTED}|[^\s;\"]+)"
_METHOD = re.compile(rf"\s*([A-Za-z0-9][\w.-]*)\s*(?:/\s*(\d+))?\s*=\s*{_VALUE}")
_PROP = re.compile(rf"\s*([A-Za-z0-9][\w.-]*)\s*=\s*{_VALUE}")
_SEGMENT = re.compile(rf"(?:{_QUOTED}|[^;\"])+")


def _strip_comments(text: str) -> str:
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
            continue
        elif char == '"' and not depth:
            quoted = not quoted
        elif char == "(" and not quoted:
            depth += 1
            continue
        elif char == ")" and depth and not quoted:
            depth -= 1
            out.append(" ")
            continue
        if not depth:
            out.append(char)
    return "".join(out)


def _value(token: str) -> str:
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _invalid(raw: str) -> HeaderValueError:
    return HeaderValueError(f"invalid header: {raw!r} is not an Authentication-Results")


def _result(text: str, raw: str) -> dict[str, Any]:
    found = _METHOD.match(text)
    if found is None:
        raise _invalid(raw)
    method, version, result = found.groups()
    entry: dict[str, Any] = {
        "method": method,
        "method_version": None if version is None else int(version),
        "result": _value(result),
        "reason": None,
        "props": {},
    }
    pos = found.end()
    while text[pos:].strip():
        prop = _PROP.match(text, pos)
        if prop is None:
            raise _invalid(raw)
        key, value = prop.group(1), _value(prop.group(2))
        if key.lower() == "reason":
            entry["reason"] = value
        else:
            entry["props"][key] = value
        pos = prop.end()
    return entry


def parse_authentication_results(raw: str) -> dict[str, Any]:
    text = _strip_comments(re.sub(r"\r?\n", "", raw))
    segments = [m.group(0) for m in _SEGMENT.finditer(text)] if text.strip() else []
    head = segments[0].split() if segments and not text.lstrip().startswith(";") else []
    if not head:
        raise HeaderValueError(f"invalid header: {raw!r} has no authserv-id")
    version = int(head[1]) if len(head) > 1 and head[1].isdigit() else None
    results = [
        _result(segment, raw)
        for segment in segments[1:]
        if segment.strip() and segment.strip().lower() != "none"
    ]
    return {"serv_id": _value(head[0]), "version": version, "results": results}
