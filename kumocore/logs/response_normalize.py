"""Normalising SMTP response text, as KumoMTA's ``normalize_smtp_response`` does.

The aim is to group similar responses in logs: the per-message parts of a reply (queue
ids, addresses, timestamps, durations...) become placeholders such as ``{hash}`` or
``{ipaddr}`` and the prose stays. It is a best effort, not a PII scrubber.

The text is first rewritten twice: runs of humantime-style durations (``11s 999ms``)
become one word, and brackets that open after a space or close before a space or a
punctuation mark become spaces (``(RFC5322)`` -> ``RFC5322``). Then each word, split at
ASCII whitespace, is tried by the tokenizers below in order; the first that recognises it
decides. Words rejoin with single spaces.

The dictionary test comes first and matters most: many words (``mail``, ``This``) are
also valid base64. KumoMTA builds its dictionary from ``/usr/share/dict/words``, each word
also title-cased, plus a few SMTP terms; kumocore reads the same file when first needed
(Debian/Ubuntu package ``wamerican``) and refuses to normalise without it rather than
turn every four-letter word into ``{base64}``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string
from collections.abc import Callable
from functools import cache
from pathlib import Path

from kumocore.errors import ConfigError

WORDS_FILE = Path("/usr/share/dict/words")

#: Added to the word list as KumoMTA's generator does: words (also title-cased), and
#: acronyms (lower and upper case) that would otherwise read as base64 or hashes.
_EXTRA_WORDS = ("SpamCop", "ehlo", "helo", "rcpt", "smtp", "vrfy")
_ACRONYMS = ("arc", "bimi", "dkim", "dmarc", "dns", "rbl", "spf", "surbl", "uuid", "esmtp",
             "lmtp")

_ASCII_SPACE = " \t\n\x0c\r"
_DURATION_PLACEHOLDER = "__DURATION__"
_UNIT = r"\d+(?:ns|us|ms|s|m|h|day|month|year)"
_DURATION_RUN = re.compile(rf"\b{_UNIT}(?:\s+{_UNIT})*\b")
_NUMBER = r"\d+(?:\.\d+)?"
_ISO_DURATION = re.compile(
    rf"P(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?"
                      r"(?:[Zz]|[+-](\d{2}):(\d{2}))")
_HEX = "[0-9a-fA-F]"
_HYPHENATED = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_UUID = re.compile(rf"{_HEX}{{32}}|{_HYPHENATED}|\{{{_HYPHENATED}\}}|urn:uuid:{_HYPHENATED}")
_LOOSE_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_PORT_SUFFIX = re.compile(r"::?\d{1,5}\Z")
_BASE64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/_-")
_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_QUOTED = re.compile(r'"(?:[\x01-\x08\x0b\x0c\x0e-\x1f\x21\x23-\x5b\x5d-\x7f]'
                     r'|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"')
_HOSTNAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_V4_LITERAL = re.compile(r"\[(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\]")


@cache
def dictionary() -> frozenset[str]:
    """The word list, read once; a :class:`ConfigError` names the missing file."""
    try:
        lines = WORDS_FILE.read_text("utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"normalize_smtp_response needs the word list {WORDS_FILE} ({exc.strerror}); "
            "install it with Debian's or Ubuntu's package 'wamerican'") from None
    words: set[str] = set()
    for word in (*lines, *_EXTRA_WORDS):
        words.add(word)
        # Title case as KumoMTA's generator makes it: words already mixed-case stay.
        if word[:1].islower() and word[1:] == word[1:].lower():
            words.add(word[:1].upper() + word[1:])
    for acronym in _ACRONYMS:
        words.update((acronym.lower(), acronym.upper()))
    return frozenset(words)


def _dictionary_word(word: str) -> str | None:
    return word if word in dictionary() else None


def _duration(word: str) -> str | None:
    if word == _DURATION_PLACEHOLDER:
        return "{duration}"
    return "{duration}" if _ISO_DURATION.fullmatch(word) else None


def _timestamp(word: str) -> str | None:
    found = _RFC3339.fullmatch(word)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    try:
        dt.date(year, month, day)
    except ValueError:
        return None
    offset_ok = found.group(7) is None or (int(found.group(7)) < 24 and int(found.group(8)) < 60)
    # RFC 3339 allows a leap second (:60).
    return "{timestamp}" if hour < 24 and minute < 60 and second <= 60 and offset_ok else None


def _uuid(word: str) -> str | None:
    return "{uuid}" if _UUID.fullmatch(word) else None


def _hash(word: str) -> str | None:
    """Ids such as ``41be03b00d2f7-b93bf44f0c0si6882731a12.803``: eight or more ASCII
    letters, digits and ``-._``, with at least three letters and three digits."""
    if len(word.encode()) < 8:
        return None
    letters = digits = 0
    for char in word:
        if char.isascii() and char.isalpha():
            letters += 1
        elif char.isascii() and char.isdigit():
            digits += 1
        elif char not in "-._":
            return None
    return "{hash}" if letters > 2 and digits > 2 else None


def _is_ip(text: str) -> bool:
    if _LOOSE_IPV4.fullmatch(text):  # octets are not range-checked, as KumoMTA's pattern
        return True
    if "%" in text and not text.lower().startswith("fe80:"):
        return False  # KumoMTA's pattern takes a zone (%eth0) on link-local addresses only
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ip_address(word: str) -> bool:
    """An IPv4 or IPv6 address, maybe followed by ``:port`` (or ``::port``)."""
    if _is_ip(word):
        return True
    port = _PORT_SUFFIX.search(word)
    return port is not None and port.start() > 0 and _is_ip(word[: port.start()])


def _base64(word: str) -> bool:
    """Standard or URL-safe base64 of at least four characters, ``=`` padding optional."""
    body = word.rstrip("=")
    padding = len(word) - len(body)
    if padding > 2 or not body or not set(body) <= _BASE64_ALPHABET:
        return False
    if padding == 0:
        return len(body) % 4 == 0
    # One '=' completes a group of three characters, two '=' a group of two.
    return len(body) > 4 and len(body) % 4 == 4 - padding


def _email(word: str) -> bool:
    """An RFC 5321-style address in lower case: dot-atom or quoted local part, and a host
    name of two labels or more or an IPv4 literal."""
    local, at, domain = word.rpartition("@")
    if not at or not (_ATOM.fullmatch(local) or _QUOTED.fullmatch(local)):
        return False
    if _HOSTNAME.fullmatch(domain):
        return True
    literal = _V4_LITERAL.fullmatch(domain)
    return literal is not None and all(
        int(part) <= 255 and (part == "0" or not part.startswith("0"))
        for part in literal.groups())


def _pattern(word: str) -> str | None:
    if _ip_address(word):
        return "{ipaddr}"
    if _base64(word):
        return "{base64}"
    return "{email}" if _email(word) else None


def _compound(word: str) -> str | None:
    """``key=value``: the value is normalised on its own (``ids={uuid}``)."""
    key, equals, value = word.partition("=")
    if not equals:
        return None
    token = normalize_word(value)
    return None if token is None else f"{key}={token}"


_TOKENIZERS: tuple[Callable[[str], str | None], ...] = (
    _dictionary_word, _duration, _timestamp, _uuid, _hash, _pattern, _compound)


def normalize_word(word: str) -> str | None:
    """The placeholder (or the word itself, for a dictionary word) of the first tokenizer
    that recognises ``word``; ``None`` when none does."""
    for tokenizer in _TOKENIZERS:
        found = tokenizer(word)
        if found is not None:
            return found
    return None


def _unbracket(text: str) -> str:
    """Brackets that open after a space (or at the start) or close before a space, a
    punctuation mark or the end become one space, together with that neighbour."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        after = text[i + 1] if i + 1 < len(text) else None
        opens = after is not None and after in "[({" and (char in _ASCII_SPACE or not out)
        closes = char in "])}" and (after is None or after in _ASCII_SPACE
                                    or after in string.punctuation)
        if opens or closes:
            out.append(" ")
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def normalize_smtp_response(text: str) -> str:
    """``text`` with its per-message parts replaced by placeholders (see the module)."""
    text = _DURATION_RUN.sub(_DURATION_PLACEHOLDER, text)
    if any(bracket in text for bracket in "[({"):
        text = _unbracket(text)
    words = [w for w in re.split(r"[ \t\n\x0c\r]+", text) if w]
    return " ".join(normalize_word(word) or word for word in words)
