"""RFC 2047 encoded words in header values: decoding what a message says, encoding what a
policy adds.

Decoding is lenient, as KumoMTA reads a header: an encoded word that cannot be decoded is
left exactly as written, and adjacent words are joined before decoding. Encoding folds a
value to the line length RFC 5322 recommends and uses UTF-8 ``Q`` or ``B`` words, whichever
is shorter.

Its own module because it is about the characters of one value, not about the header
block (:mod:`kumocore.mail.headers`, which reads values through :func:`decode_rfc2047` and
writes them through :func:`encode_header_value`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

__all__ = ["decode_rfc2047", "encode_header_value"]

_EW = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_MAX_LINE = 78  # RFC 5322 2.1.1 "SHOULD"; an encoded word is at most 75 (RFC 2047 2).


# --------------------------------------------------------------------- RFC 2047 decoding


def _decode_word(charset: str, enc: str, text: str) -> bytes | None:
    try:
        codecs.lookup(charset)
        if enc in "Bb":
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        return binascii.a2b_qp(text.encode("ascii"), header=True)
    except (LookupError, ValueError, binascii.Error):
        return None


def decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words; anything undecodable is left exactly as written.

    Whitespace between adjacent encoded words is dropped (RFC 2047 6.2), and adjacent
    words in one charset are joined before decoding, because broken encoders split a
    multi-byte character across two words.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    after_word = False
    pos = 0
    for m in _EW.finditer(value):
        between = value[pos : m.start()]
        charset = m.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language suffix
        raw = _decode_word(charset, m.group(2), m.group(3))
        if raw is None:  # not decodable: keep it verbatim, like any other text
            _flush(out, pending, pending_charset)
            out.append(value[pos : m.end()])
            after_word = False
        else:
            if not (after_word and (between == "" or between.isspace())):
                _flush(out, pending, pending_charset)
                out.append(between)
            elif charset != pending_charset:
                _flush(out, pending, pending_charset)
            pending.append(raw)
            pending_charset = charset
            after_word = True
        pos = m.end()
    _flush(out, pending, pending_charset)
    out.append(value[pos:])
    return "".join(out)


def _flush(out: list[str], pending: list[bytes], charset: str) -> None:
    if pending:
        out.append(b"".join(pending).decode(charset, "replace"))
        pending.clear()


# --------------------------------------------------------------------- RFC 2047 encoding


def encode_header_value(name: str, value: str) -> str:
    """Fold ``value`` to ~76 columns, RFC 2047-encoding it (UTF-8) if it is not ASCII.

    The value is treated as unstructured text (a Subject); do not use it for address
    headers, whose addresses must stay unencoded.
    """
    room = max(_MAX_LINE - len(name) - 2, 20)  # the first line also holds "Name: "
    if value.isascii():
        return _fold_ascii(value, room)
    enc = "q" if _word_len(value, "q") <= _word_len(value, "b") else "b"
    words: list[str] = []
    chunk = ""
    limit = min(room, 75)
    for c in value:  # split between characters, never inside a UTF-8 sequence
        if chunk and _word_len(chunk + c, enc) > limit:
            words.append(_encode_word(chunk, enc))
            chunk, limit = "", 75
        chunk += c
    words.append(_encode_word(chunk, enc))
    return "\r\n ".join(words)


def _word_len(text: str, enc: str) -> int:
    raw = text.encode()
    if enc == "b":
        return 12 + 4 * -(-len(raw) // 3)  # 12 = len("=?utf-8?b??=")
    return 12 + sum(1 if b == 0x20 or chr(b) in _Q_SAFE else 3 for b in raw)


def _encode_word(text: str, enc: str) -> str:
    raw = text.encode()
    if enc == "b":
        return f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?="
    body = "".join("_" if b == 0x20 else chr(b) if chr(b) in _Q_SAFE else f"={b:02X}" for b in raw)
    return f"=?utf-8?q?{body}?="


def _fold_ascii(value: str, room: int) -> str:
    lines: list[str] = []
    line = ""
    for word in value.split(" "):
        if line and len(line) + 1 + len(word) > room:
            lines.append(line)
            line, room = word, _MAX_LINE - 1
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)
