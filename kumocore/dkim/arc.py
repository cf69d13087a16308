"""``msg:arc_verify()``: the Authenticated Received Chain of RFC 8617, checked the way
KumoMTA checks it, with keys fetched through kumocore's resolvers.

The result is an authentication result ``{method='arc', result='none'|'pass'|'fail',
reason=<first problem>, props={['header.oldest-pass']=...}}``. As in KumoMTA, every ARC
set's ARC-Message-Signature and ARC-Seal are validated from instance 1 upwards, stopping
at the first that fails; ``header.oldest-pass`` is the last instance that validated when
the chain fails and ``0`` otherwise (absent when there is no ARC set).

Bounds: instances are 1..50 (RFC 8617 4.2.1); kumocore also refuses to look at more than
:data:`MAX_ARC_FIELDS` ARC header fields or any ARC field longer than
:data:`MAX_FIELD_BYTES`, so a hostile message costs no DNS query and no RSA operation.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kumocore.dkim.arc_crypto import (
    ArcSignatureError,
    BodyHashes,
    Fields,
    check_signature,
    decode_b64,
    field_value,
    parse_tags,
    public_keys,
    select_headers,
    signed_data,
)
from kumocore.dkim.canonicalization import parse_fields, split_message
from kumocore.dkim.verify import key_resolver
from kumocore.dns.errors import DnsError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

MAX_ARC_INSTANCE = 50
#: Three fields per set, twice over: room for duplicates to be reported, not examined.
MAX_ARC_FIELDS = 6 * MAX_ARC_INSTANCE
MAX_FIELD_BYTES = 16 * 1024
SEAL = "ARC-Seal"
AMS = "ARC-Message-Signature"
AAR = "ARC-Authentication-Results"
_NAMES = {b"arc-seal": SEAL, b"arc-message-signature": AMS, b"arc-authentication-results": AAR}
_AAR_INSTANCE = re.compile(r"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]+)[ \t\r\n]*;")
_REQUIRED = {SEAL: ("a", "b", "d", "s", "i", "cv"), AMS: ("a", "b", "bh", "d", "h", "s", "i")}
_EXPIRY_DRIFT = 15 * 60  # KumoMTA accepts an x= up to 15 minutes past


@dataclass(slots=True)
class ArcSet:
    instance: int
    seal: dict[str, str]
    seal_raw: bytes
    ams: dict[str, str]
    ams_raw: bytes
    aar_raw: bytes


@dataclass(slots=True)
class ArcChain:
    """What verification found: the sets, the problems, how far validation got."""

    sets: list[ArcSet] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    last_validated: int = 0

    def status(self) -> str:
        if self.issues:
            return "fail"
        if not self.sets:
            return "none"
        return "pass" if self.last_validated == len(self.sets) else "fail"

    def authentication_result(self) -> dict[str, Any]:
        status = self.status()
        props = {}
        if self.sets:
            props["header.oldest-pass"] = str(self.last_validated if status == "fail" else 0)
        return {
            "method": "arc",
            "method_version": None,
            "result": status,
            "reason": self.issues[0] if self.issues else None,
            "props": props,
        }


def crlf(data: bytes) -> bytes:
    """The message with CRLF line ends (kumocore may hold LF-only test input)."""
    if b"\n" in data and b"\r\n" not in data:
        return data.replace(b"\n", b"\r\n")
    return data


def _signature_tags(name: str, raw: bytes) -> tuple[int, dict[str, str]]:
    """The instance and tags of an ARC-Seal / ARC-Message-Signature (KumoMTA's checks)."""
    if len(raw) > MAX_FIELD_BYTES:
        raise ArcSignatureError(f"header is longer than {MAX_FIELD_BYTES} bytes")
    tags = parse_tags(field_value(raw))
    for required in _REQUIRED[name]:
        if required not in tags:
            raise ArcSignatureError(f"signature missing required tag ({required})")
    if name == AMS:
        if not any(h.strip().lower() == "from" for h in tags["h"].split(":")):
            raise ArcSignatureError("From field not signed")
        if tags.get("q", "dns/txt") != "dns/txt":
            raise ArcSignatureError("unsupported query method")
        expiry = tags.get("x")
        if expiry is not None and (
            not expiry.isdigit() or int(expiry) + _EXPIRY_DRIFT < time.time()
        ):
            raise ArcSignatureError("signature expired")
    instance = tags["i"]
    if not instance.isdigit() or not 1 <= int(instance) <= MAX_ARC_INSTANCE:
        raise ArcSignatureError("ARC instance tag is invalid")
    return int(instance), tags


def _aar_instance(raw: bytes) -> int:
    if len(raw) > MAX_FIELD_BYTES:
        raise ArcSignatureError(f"header is longer than {MAX_FIELD_BYTES} bytes")
    match = _AAR_INSTANCE.match(field_value(raw))
    if match is None or int(match.group(1)) > 255:
        raise ArcSignatureError("expected 'i=<instance>;' at the start")
    return int(match.group(1))


def collect_sets(fields: Fields) -> ArcChain:
    """Group the ARC fields into sets by instance, noting every structural problem."""
    chain = ArcChain()
    arc_fields = [(name, raw) for name, raw in fields if name in _NAMES]
    if len(arc_fields) > MAX_ARC_FIELDS:
        chain.issues.append(
            f"The message has {len(arc_fields)} ARC header fields; "
            f"more than {MAX_ARC_FIELDS} are not examined"
        )
        return chain
    found: dict[str, dict[int, list[tuple[dict[str, str], bytes]]]] = {SEAL: {}, AMS: {}, AAR: {}}
    for wanted in (SEAL, AMS, AAR):  # KumoMTA reports seal problems first, then AMS, AAR
        for name, raw in arc_fields:
            if _NAMES[name] != wanted:
                continue
            tags: dict[str, str] = {}
            try:
                if wanted == AAR:
                    instance = _aar_instance(raw)
                    if not 1 <= instance <= MAX_ARC_INSTANCE:
                        chain.issues.append(f"An {AAR} header has an invalid instance value")
                        continue
                else:
                    instance, tags = _signature_tags(wanted, raw)
            except ArcSignatureError as exc:
                chain.issues.append(f"An {wanted} header could not be parsed: {exc}")
                continue
            found[wanted].setdefault(instance, []).append((tags, raw))
    for instance in range(1, MAX_ARC_INSTANCE + 1):
        parts = [found[name].get(instance, []) for name in (SEAL, AMS, AAR)]
        if not any(parts):
            continue
        if not all(parts):
            chain.issues.append(
                f"The ARC Set with instance {instance} is missing some of its constituent headers"
            )
            continue
        duplicated = [
            name for name, part in zip((SEAL, AMS, AAR), parts, strict=True) if len(part) > 1
        ]
        if duplicated:
            chain.issues.append(
                f"There are duplicate {', '.join(duplicated)} header(s) for instance {instance}"
            )
            continue
        (seal, seal_raw), (ams, ams_raw), (_, aar_raw) = (part[0] for part in parts)
        chain.sets.append(ArcSet(instance, seal, seal_raw, ams, ams_raw, aar_raw))
    present = {arc_set.instance for arc_set in chain.sets}
    for instance in sorted(present):
        if instance > 1 and instance - 1 not in present:
            chain.issues.append(f"The ARC Set with instance {instance - 1} is missing")
    return chain


class _Keys:
    """Key records per selector, each looked up once per verification."""

    def __init__(self, resolver_name: str | None) -> None:
        self.resolver = key_resolver(resolver_name, "msg:arc_verify")
        self._keys: dict[str, list[rsa.RSAPublicKey | ed25519.Ed25519PublicKey]] = {}

    async def get(self, tags: dict[str, str]) -> list[rsa.RSAPublicKey | ed25519.Ed25519PublicKey]:
        name = f"{tags['s']}._domainkey.{tags['d']}"
        if name not in self._keys:
            try:
                records = await self.resolver.lookup_records(name, "TXT")
            except DnsError as exc:
                raise ArcSignatureError(f"key unavailable: {exc}") from None
            self._keys[name] = public_keys(records or [])
        return self._keys[name]


async def _check_ams(arc_set: ArcSet, fields: Fields, bodies: BodyHashes, keys: _Keys) -> None:
    tags = arc_set.ams
    canon = tags.get("c", "simple/simple").lower()
    head_canon, _, body_canon = canon.partition("/")
    body_canon = body_canon or "simple"
    if head_canon not in ("simple", "relaxed") or body_canon not in ("simple", "relaxed"):
        raise ArcSignatureError(f"unsupported canonicalization: {canon}")
    length = tags.get("l")
    if length is not None and not length.isdigit():
        raise ArcSignatureError("signature syntax error: l= is not a number")
    digest = bodies.digest(
        body_canon == "relaxed", None if length is None else int(length), tags["a"]
    )
    if digest != decode_b64(tags["bh"], "bh"):
        raise ArcSignatureError("body hash did not verify")
    headers = select_headers(fields, tags["h"].split(":"))
    data = signed_data(headers, arc_set.ams_raw, head_canon == "relaxed")
    check_signature(await keys.get(tags), tags["a"], data, decode_b64(tags["b"], "b"))


async def _check_seal(arc_set: ArcSet, prior: list[bytes], keys: _Keys) -> None:
    tags = arc_set.seal
    data = signed_data([*prior, arc_set.aar_raw, arc_set.ams_raw], arc_set.seal_raw, True)
    check_signature(await keys.get(tags), tags["a"], data, decode_b64(tags["b"], "b"))


def _cv_problem(arc_set: ArcSet) -> str | None:
    cv = arc_set.seal["cv"].lower()
    where = f"The {SEAL} for instance {arc_set.instance}"
    if cv == "pass":
        return (
            f"{where} is marked as cv=pass but that is invalid" if arc_set.instance == 1 else None
        )
    if cv == "none":
        return f"{where} is marked as cv=none but that is invalid" if arc_set.instance > 1 else None
    if cv == "fail":
        return f"{where} is marked as failing its chain validation"
    return f"{where} has an invalid chain validation status"


async def validate(chain: ArcChain, fields: Fields, body: bytes, resolver_name: str | None) -> None:
    """Check each set's signatures in instance order; stop at the first failure."""
    if not chain.sets:
        return
    keys = _Keys(resolver_name)
    bodies = BodyHashes(body)
    prior: list[bytes] = []
    for arc_set in chain.sets:
        try:
            await _check_ams(arc_set, fields, bodies, keys)
        except ArcSignatureError:
            chain.issues.append(f"The {AMS} for instance {arc_set.instance} failed to validate")
            return
        try:
            await _check_seal(arc_set, prior, keys)
        except ArcSignatureError:
            chain.issues.append(f"The {SEAL} for instance {arc_set.instance} failed to validate")
            return
        problem = _cv_problem(arc_set)
        if problem is not None:
            chain.issues.append(problem)
            return
        prior += [arc_set.aar_raw, arc_set.ams_raw, arc_set.seal_raw]
        chain.last_validated = arc_set.instance


async def verify_chain(data: bytes, resolver_name: str | None = None) -> tuple[ArcChain, Fields]:
    """The message's ARC chain, validated; and its header fields (for sealing)."""
    if resolver_name is not None:
        _Keys(resolver_name)  # an undefined resolver is an error even without ARC sets
    head, body = split_message(crlf(data))
    fields = parse_fields(head)
    chain = collect_sets(fields)
    await validate(chain, fields, body, resolver_name)
    return chain, fields


async def arc_verify(data: bytes, resolver_name: str | None = None) -> dict[str, Any]:
    """``msg:arc_verify([resolver])``: the chain's authentication result."""
    chain, _ = await verify_chain(data, resolver_name)
    return chain.authentication_result()
