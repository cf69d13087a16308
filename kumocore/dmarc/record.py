"""DMARC policy records (RFC 7489 §6.3) and their discovery in DNS (§6.6.3).

Tag values are checked as KumoMTA checks them (``p``/``sp`` one of none, quarantine,
reject; ``adkim``/``aspf`` ``r`` or ``s``; ``pct`` 0..255; ``fo``, ``rf``, ``ri``, ``rua``,
``ruf`` well-formed); a record with a bad value is not used. Unlike KumoMTA, tags this
code does not know (``np``, ``psd``, ``t`` of newer drafts) are ignored, as §6.3 requires,
instead of discarding the whole record.

Bounds: one TXT query per name, at most :data:`MAX_TXT_RECORDS` answers examined, and a
record longer than :data:`MAX_RECORD_LENGTH` characters is not parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from kumocore.dns.errors import DnsError
from kumocore.dns.resolver import Resolver

MAX_RECORD_LENGTH = 2048
MAX_TXT_RECORDS = 16

POLICIES = ("none", "quarantine", "reject")
MODES = {"r": "relaxed", "s": "strict"}
_FAILURE_OPTIONS = {"0", "1", "d", "s"}
_SIZE = re.compile(r"[0-9]+[kmgt]?")


class RecordError(ValueError):
    """A DMARC record that cannot be used; the message says which tag is wrong."""


@dataclass(frozen=True)
class DmarcRecord:
    policy: str
    subdomain_policy: str | None = None
    align_dkim: str = "relaxed"
    align_spf: str = "relaxed"
    pct: int = 100
    #: Every known tag as published (without ``v``): reported as ``policy.<tag>`` props.
    tags: dict[str, str] = field(default_factory=dict)

    def policy_for(self, organizational: bool) -> str:
        """``sp`` (falling back to ``p``) when the record was found at the organizational
        domain, ``p`` when at the From domain itself."""
        if organizational and self.subdomain_policy is not None:
            return self.subdomain_policy
        return self.policy


def _one_of(tag: str, value: str, allowed: tuple[str, ...] | dict[str, str]) -> str:
    if value not in allowed:
        raise RecordError(f"invalid value {value!r} for {tag}")
    return allowed[value] if isinstance(allowed, dict) else value


def _number(tag: str, value: str, maximum: int) -> int:
    if not value.isdigit() or not value.isascii() or int(value) > maximum:
        raise RecordError(f"invalid value {value!r} for {tag}")
    return int(value)


def _check_failure_options(value: str) -> None:
    for option in value.split(":"):
        if option.strip() not in _FAILURE_OPTIONS:
            raise RecordError(f"invalid report failure {value!r}")


def _check_feedback_uris(tag: str, value: str) -> None:
    """``uri[!size]`` entries separated by commas; only their form is checked (reports
    are not sent)."""
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            raise RecordError(f"empty feedback address in {tag}")
        uri, bang, size = entry.rpartition("!")
        if bang and (not uri or not _SIZE.fullmatch(size.strip())):
            raise RecordError(f"invalid size in {entry!r}")


def parse_record(text: str) -> DmarcRecord:
    """Parse ``v=DMARC1; p=...`` text; RecordError when it is not a usable record."""
    if len(text) > MAX_RECORD_LENGTH:
        raise RecordError(f"record longer than {MAX_RECORD_LENGTH} characters")
    tags: dict[str, str] = {}
    version = False
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, equals, value = part.partition("=")
        if not equals:
            raise RecordError(f"invalid part {part!r}")
        key, value = key.strip(), value.strip()
        if not version:
            if (key, value) != ("v", "DMARC1"):
                raise RecordError(f"invalid key {key!r}")
            version = True
            continue
        tags[key] = value
    if "p" not in tags:
        raise RecordError(f"missing policy in {text!r}")
    return _record_from_tags(tags)


def _record_from_tags(tags: dict[str, str]) -> DmarcRecord:
    known = {key: value for key, value in tags.items() if key in _KNOWN_TAGS}
    if "fo" in known:
        _check_failure_options(known["fo"])
    if "rf" in known and known["rf"] != "afrf":
        raise RecordError(f"invalid format {known['rf']!r}")
    if "ri" in known:
        _number("ri", known["ri"], 2**32 - 1)
    for tag in ("rua", "ruf"):
        if tag in known:
            _check_feedback_uris(tag, known[tag])
    return DmarcRecord(
        policy=_one_of("p", known["p"], POLICIES),
        subdomain_policy=_one_of("sp", known["sp"], POLICIES) if "sp" in known else None,
        align_dkim=_one_of("adkim", known.get("adkim", "r"), MODES),
        align_spf=_one_of("aspf", known.get("aspf", "r"), MODES),
        pct=_number("pct", known.get("pct", "100"), 255),
        tags=known,
    )


_KNOWN_TAGS = frozenset({"p", "sp", "adkim", "aspf", "pct", "fo", "rf", "ri", "rua", "ruf"})


class Lookup(Enum):
    TEMPERROR = "temperror"  # DNS could not answer now
    NOT_FOUND = "not_found"  # no usable record at this name


@dataclass(frozen=True)
class Discovery:
    """What one ``_dmarc.<domain>`` query gave: a record, or why there is none."""

    record: DmarcRecord | None
    failure: Lookup | None = None
    detail: str = ""


async def fetch_record(resolver: Resolver, name: str) -> Discovery:
    """The DMARC record published at ``name`` (``_dmarc.<domain>``).

    TXT strings not starting with a ``v`` tag are other publishers' records and skipped;
    a ``v=DMARC1`` record that does not parse is skipped too. Several usable records
    mean none (§6.6.3), as the publisher's intent is then unknown.
    """
    try:
        answers = await resolver.lookup_records(name, "TXT")
    except DnsError as err:
        if err.transient:
            return Discovery(None, Lookup.TEMPERROR, str(err))
        return Discovery(None, Lookup.NOT_FOUND, str(err))  # not a name DNS can hold
    records: list[DmarcRecord] = []
    problems: list[str] = []
    for text in (answers or [])[:MAX_TXT_RECORDS]:
        if not _looks_like_dmarc(str(text)):
            continue
        try:
            records.append(parse_record(str(text)))
        except RecordError as err:
            problems.append(str(err))
    if len(records) == 1:
        return Discovery(records[0])
    if records:
        return Discovery(None, Lookup.NOT_FOUND, f"{len(records)} DMARC records at {name}")
    return Discovery(None, Lookup.NOT_FOUND, "; ".join(problems))


def _looks_like_dmarc(text: str) -> bool:
    key, _, value = text.partition(";")[0].partition("=")
    return key.strip() == "v" and value.strip().upper().startswith("DMARC")
