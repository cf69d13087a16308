"""``msg:dkim_verify()``: verify each top-level DKIM signature (at most 10) with dkimpy,
fetching the keys through kumocore's resolver.

Each signature gives one authentication result, shaped as KumoMTA's
``authenticationresult``: ``{method='dkim', result=..., reason=..., props={['header.d']=,
['header.i']=, ['header.s']=, ['header.a']=, ['header.b']= (first 8 characters)}}``.
Results: ``pass``, ``fail`` (the signature does not match), ``permerror`` (malformed
signature, missing or invalid key), ``temperror`` (the key lookup failed transiently).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import dkim

from kumocore.dns.errors import DnsError
from kumocore.dns.resolver import Resolver

if TYPE_CHECKING:
    from kumocore.dns.lists import NamedResolvers

MAX_SIGNATURES = 10
# dkimpy logs every failed verification at error level; a bad signature is not ours.
_quiet = logging.getLogger("kumocore.dkim.verify.dkimpy")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

_resolvers: NamedResolvers | None = None


def use_resolvers(resolvers: NamedResolvers) -> None:
    """The resolvers ``dkim_verify`` looks keys up with (set when the runtime starts)."""
    global _resolvers
    _resolvers = resolvers


def key_resolver(resolver_name: str | None, who: str) -> Resolver:
    """The resolver that looks DKIM (and ARC) keys up: the named one, or the default.
    ``who`` names the caller in the error raised before the runtime set them up."""
    if _resolvers is None:
        raise RuntimeError(f"{who}: no resolver (the server runtime is not set up)")
    return _resolvers.get(resolver_name)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _result(result: str, sig: dict[bytes, bytes], reason: str | None) -> dict[str, Any]:
    props = {
        "header.d": _text(sig.get(b"d")),
        "header.i": _text(sig.get(b"i")) or (
            "@" + sig[b"d"].decode("utf-8", "replace") if b"d" in sig else None),
        "header.s": _text(sig.get(b"s")),
        "header.a": _text(sig.get(b"a")),
        "header.b": (_text(sig.get(b"b")) or "").replace(" ", "")[:8] or None,
    }
    return {
        "method": "dkim", "method_version": None, "result": result, "reason": reason,
        "props": {key: value for key, value in props.items() if value is not None},
    }


async def _key_record(name: str, resolver_name: str | None) -> tuple[bytes | None, str | None]:
    """The key TXT record of ``name``, or (None, 'temperror'|'permerror' reason)."""
    resolver = key_resolver(resolver_name, "msg:dkim_verify")
    try:
        records = await resolver.lookup_records(name, "TXT")
    except DnsError as exc:
        return None, f"temperror:key lookup failed: {exc}"
    if not records:
        return None, f"permerror:no key for signature at {name}"
    return records[0].encode("utf-8"), None


def _answer(record: bytes) -> Any:
    """dkimpy's ``dnsfunc``: the key record was fetched beforehand (asynchronously)."""

    def dnsfunc(*_args: Any, **_kwargs: Any) -> bytes:
        return record

    return dnsfunc


async def verify_message(data: bytes, resolver_name: str | None = None) -> list[dict[str, Any]]:
    """One authentication result per DKIM-Signature header (the first 10)."""
    verifier = dkim.DKIM(data, logger=_quiet)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(min(count, MAX_SIGNATURES)):
        verifier = dkim.DKIM(data, logger=_quiet)
        try:
            prepared = verifier.verify_headerprep(index)
        except dkim.ValidationError as exc:
            results.append(_result("permerror", {}, f"signature is malformed: {exc}"))
            continue
        if not prepared:
            continue
        sig, include_headers, sig_headers = prepared
        name = (sig[b"s"] + b"._domainkey." + sig[b"d"]).decode("utf-8", "replace")
        record, problem = await _key_record(name, resolver_name)
        if record is None:
            result, _, reason = (problem or "permerror:").partition(":")
            results.append(_result(result, sig, reason))
            continue
        try:
            ok = verifier.verify_sig(sig, include_headers, sig_headers[index],
                                     _answer(record))
        except dkim.DKIMException as exc:
            # A body changed after signing is a failed signature, not a malformed one.
            mismatch = "body hash mismatch" in str(exc)
            results.append(_result("fail" if mismatch else "permerror", sig, str(exc)))
            continue
        if ok:
            results.append(_result("pass", sig, None))
        else:
            results.append(_result("fail", sig, "signature did not verify"))
    return results
