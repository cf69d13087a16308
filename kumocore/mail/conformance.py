"""``msg:check_fix_conformance(CHECKS, FIXES)``: find RFC 5322/MIME conformance issues,
refuse on some, repair others.

The issue names and what they mean are KumoMTA's (``MISSING_COLON_VALUE``,
``NON_CANONICAL_LINE_ENDINGS``, ``NAME_ENDS_WITH_SPACE``, ``LINE_TOO_LONG`` — a line over 78
bytes —, ``NEEDS_TRANSFER_ENCODING`` — 8-bit bytes —, ``MISSING_DATE_HEADER``,
``MISSING_MESSAGE_ID_HEADER``, ``MISSING_MIME_VERSION``, ``INVALID_MIME_HEADERS``).
A set is written ``'A|B|C'``.

Repairs: line endings become CRLF; header names lose the space before their colon; a
header without a colon gets an empty value; missing Date, Message-ID and MIME-Version are
added; long lines and 8-bit content are re-encoded quoted-printable part by part (the body
is rebuilt, so earlier DKIM signatures no longer verify — as in KumoMTA).
"""

from __future__ import annotations

import email.utils
import re
import uuid
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser

ISSUES = (
    "MISSING_COLON_VALUE", "NON_CANONICAL_LINE_ENDINGS", "NAME_ENDS_WITH_SPACE",
    "LINE_TOO_LONG", "NEEDS_TRANSFER_ENCODING", "MISSING_DATE_HEADER",
    "MISSING_MESSAGE_ID_HEADER", "MISSING_MIME_VERSION", "INVALID_MIME_HEADERS",
)
MAX_LINE = 78
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)( *):")
_BARE_LF_OR_CR = re.compile(rb"(?<!\r)\n|\r(?!\n)")


def parse_issue_set(text: object, what: str) -> frozenset[str]:
    """``'A|B'`` → {A, B}; an unknown name is an error listing the known ones."""
    if text is None:
        return frozenset()
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string like 'LINE_TOO_LONG|MISSING_DATE_HEADER'")
    names = frozenset(part for part in text.split("|") if part)
    for name in names:
        if name not in ISSUES:
            raise ValueError(
                f"unknown conformance issue {name!r} in {what}; known: {', '.join(ISSUES)}")
    return names


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (with continuations folded in, line endings dropped) and the body."""
    normalised = data.replace(b"\r\n", b"\n")
    head, sep, body = normalised.partition(b"\n\n")
    if not sep:
        head, body = normalised, b""
    lines: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\r\n" + line
        elif line:
            lines.append(line)
    return lines, body


def find_issues(data: bytes) -> set[str]:
    """Every conformance issue of ``data``."""
    issues: set[str] = set()
    if _BARE_LF_OR_CR.search(data):
        issues.add("NON_CANONICAL_LINE_ENDINGS")
    if not data.isascii():
        issues.add("NEEDS_TRANSFER_ENCODING")
    if any(len(line.rstrip(b"\r")) > MAX_LINE for line in data.split(b"\n")):
        issues.add("LINE_TOO_LONG")
    lines, _ = _split(data)
    names: set[str] = set()
    for line in lines:
        match = _HEADER_NAME.match(line)
        if match is None:
            issues.add("MISSING_COLON_VALUE")
            continue
        if match.group(2):
            issues.add("NAME_ENDS_WITH_SPACE")
        names.add(match.group(1).decode("ascii").lower())
    if "date" not in names:
        issues.add("MISSING_DATE_HEADER")
    if "message-id" not in names:
        issues.add("MISSING_MESSAGE_ID_HEADER")
    version = _header_value(lines, b"mime-version")
    if version is None or version.strip() != b"1.0":
        issues.add("MISSING_MIME_VERSION")
    return issues


def _header_value(lines: list[bytes], name: bytes) -> bytes | None:
    for line in lines:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value
    return None


def _fixed_headers(lines: list[bytes], fix: frozenset[str], issues: set[str]) -> list[bytes]:
    out: list[bytes] = []
    for line in lines:
        match = _HEADER_NAME.match(line)
        if match is None and "MISSING_COLON_VALUE" in fix:
            line = line.rstrip() + b":"
        elif match is not None and match.group(2) and "NAME_ENDS_WITH_SPACE" in fix:
            line = match.group(1) + b":" + line[match.end():]
        if line.partition(b":")[0].strip().lower() == b"mime-version" \
                and "MISSING_MIME_VERSION" in fix & issues:
            continue  # replaced below by "MIME-Version: 1.0"
        out.append(line)
    if "MISSING_DATE_HEADER" in fix & issues:
        out.append(b"Date: " + email.utils.formatdate(usegmt=True).encode("ascii"))
    if "MISSING_MESSAGE_ID_HEADER" in fix & issues:
        out.append(f"Message-ID: <{uuid.uuid4().hex}@kumocore>".encode("ascii"))
    if "MISSING_MIME_VERSION" in fix & issues:
        out.append(b"MIME-Version: 1.0")
    return out


#: Above this share of 8-bit bytes (or this size) a text part is base64-encoded rather than
#: quoted-printable: QP triples each such byte and is encoded in pure Python.
_QP_MAX_8BIT_SHARE = 0.1
_QP_MAX_SIZE = 256 * 1024


def _text_cte(payload: bytes) -> str:
    if len(payload) > _QP_MAX_SIZE:
        return "base64"
    eight_bit = len(payload) - len(payload.decode("latin-1").encode("ascii", "ignore"))
    return "base64" if eight_bit > _QP_MAX_8BIT_SHARE * max(1, len(payload)) else "quoted-printable"


def _reencode(data: bytes) -> bytes:
    """Re-encode every leaf part to 7 bits with short lines (QP for text, else base64)."""
    parsed = BytesParser(policy=email_policy.SMTP.clone(cte_type="7bit")).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
        params = {k: v for k, v in part.get_params() or [] if k != maintype + "/" + subtype}
        del part["Content-Transfer-Encoding"]
        if maintype == "text":
            charset = str(params.pop("charset", "utf-8"))
            text = payload.decode(charset, "replace")
            part.set_content(text, subtype=subtype, charset="utf-8",
                             cte=_text_cte(text.encode("utf-8")), params=params)
        else:
            part.set_content(payload, maintype=maintype, subtype=subtype, cte="base64",
                             params=params)
    return parsed.as_bytes()


def check_fix(
    data: bytes, checks: frozenset[str], fixes: frozenset[str]
) -> tuple[str | None, bytes]:
    """``(error, data)``: the error text when a checked issue is present (data unchanged),
    else None and the data with the issues named in ``fixes`` repaired."""
    issues = find_issues(data)
    failed = [name for name in ISSUES if name in issues & checks]
    if failed:
        return f"Message has conformance issues: {'|'.join(failed)}", data
    if not issues & fixes:
        return None, data
    lines, body = _split(data)
    head = b"\r\n".join(_fixed_headers(lines, fixes, issues))
    # The message is rebuilt line by line, so it always comes out with CRLF endings.
    body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    fixed = head + b"\r\n\r\n" + body
    if {"LINE_TOO_LONG", "NEEDS_TRANSFER_ENCODING"} & issues & fixes:
        try:
            fixed = _reencode(fixed)
        except RecursionError as exc:  # a crafted message nesting thousands of parts
            raise ValueError("cannot re-encode: MIME parts nested too deeply") from exc
    return None, fixed
