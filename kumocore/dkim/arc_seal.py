"""``msg:arc_seal(signer, server_id, results[, resolver])``: add this hop's ARC set.

As KumoMTA does it: the chain already in the message is verified first, and a chain that
fails is left as it is (no headers are added). Otherwise three fields are put on top of
the message, in this order: ``ARC-Authentication-Results`` (``i=N;`` then ``server_id``
and ``results`` rendered like ``msg:add_authentication_results``),
``ARC-Message-Signature`` (a DKIM-style signature made with the signer's key, header list
and canonicalization) and ``ARC-Seal`` (``cv=none`` for the first set, ``cv=pass`` after,
signing every earlier set plus the new AAR and AMS with relaxed canonicalization).

Signer options that have no meaning for ARC are refused rather than ignored: ``atps``,
``agent_user_identifier`` (ARC's ``i=`` is the instance) and ``reporting``.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kumocore.dkim.arc import AAR, AMS, MAX_ARC_INSTANCE, SEAL, crlf, verify_chain
from kumocore.dkim.arc_crypto import BodyHashes, signed_data
from kumocore.dkim.canonicalization import canonicalize_body, select_headers, split_message
from kumocore.dkim.signer import Signer
from kumocore.mail.auth_results import render_authentication_results

_FOLD_AT = 78


class ArcSealError(ValueError):
    """The seal cannot be made (a signer option ARC cannot honour, a full chain)."""


def _check_signer(signer: Any) -> Signer:
    if not isinstance(signer, Signer):
        raise ArcSealError(
            "msg:arc_seal: SIGNER must come from kumo.dkim.rsa_sha256_signer "
            f"or kumo.dkim.ed25519_signer, got {type(signer).__name__}"
        )
    refused = [
        name
        for name, value in (
            ("atps", signer.atps),
            ("agent_user_identifier", signer.agent_user_identifier),
            ("reporting", signer.reporting),
        )
        if value
    ]
    if refused:
        raise ArcSealError(
            f"msg:arc_seal: the signer option(s) {', '.join(refused)} have no "
            "meaning in an ARC set; use a signer without them"
        )
    return signer


def _fold(name: str, tags: list[tuple[str, str]]) -> str:
    """``Name: t=v; ... b=`` folded at tag boundaries (and inside h=, at its colons)."""
    pieces: list[tuple[str, bool]] = []  # (text, joins the previous piece without a space)
    for tag, value in tags:
        if tag == "h":
            names = value.split(":")
            texts = [f"h={names[0]}", *names[1:]]
            pieces += [
                (t + (":" if i < len(texts) - 1 else ";"), i > 0) for i, t in enumerate(texts)
            ]
        else:
            pieces.append((f"{tag}={value};", False))
    pieces.append(("b=", False))
    lines: list[str] = []
    line = f"{name}:"
    for text, tight in pieces:
        glue = "" if tight else " "
        if len(line) + len(glue) + len(text) > _FOLD_AT:
            lines.append(line)
            line, glue = "", " "
        line += glue + text
    lines.append(line)
    return "\r\n".join(lines)


def _sign(signer: Signer, data: bytes) -> str:
    key = signer.private_key()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:  # RFC 8463: Ed25519 over the SHA-256 of the data
        signature = key.sign(hashlib.sha256(data).digest())
    return base64.b64encode(signature).decode()


def _finish(unsigned: str, signature: str) -> bytes:
    """The signed field: the signature after ``b=``, folded, with CRLF."""
    room = max(_FOLD_AT - len(unsigned.rsplit("\r\n", 1)[-1]), 0)
    out = [unsigned, signature[:room]]
    for start in range(room, len(signature), _FOLD_AT - 1):
        out.append("\r\n " + signature[start : start + _FOLD_AT - 1])
    return ("".join(out) + "\r\n").encode()


def _ams(
    signer: Signer, instance: int, head_fields: list[tuple[bytes, bytes]], body: bytes, now: int
) -> bytes:
    names = [h for h in signer.headers if h.lower() != "arc-seal"]  # RFC 8617 4.1.2
    names, signed = select_headers(head_fields, tuple(names), signer.over_sign)
    relaxed_body = signer.body_canonicalization == "Relaxed"
    digest = BodyHashes(body).digest(relaxed_body, None, signer.algorithm)
    tags = [
        ("i", str(instance)),
        ("a", signer.algorithm),
        ("c", f"{signer.header_canonicalization}/{signer.body_canonicalization}".lower()),
        ("d", signer.domain),
        ("s", signer.selector),
        ("t", str(now)),
    ]
    if signer.expiration is not None:
        tags.append(("x", str(now + int(signer.expiration))))
    if signer.body_length:
        tags.append(("l", str(len(canonicalize_body(body, relaxed=relaxed_body)))))
    tags += [("h", ":".join(names)), ("bh", base64.b64encode(digest).decode())]
    unsigned = _fold(AMS, tags)
    data = signed_data(
        signed, (unsigned + "\r\n").encode(), signer.header_canonicalization == "Relaxed"
    )
    return _finish(unsigned, _sign(signer, data))


async def arc_seal(
    data: bytes,
    signer: Any,
    server_id: Any,
    results: Any,
    resolver_name: str | None = None,
    *,
    timestamp: int | None = None,
) -> bytes | None:
    """The three new header fields (CRLF-terminated, AAR first), or None when the chain
    in ``data`` fails and the message must be left alone."""
    signer = _check_signer(signer)
    aar_value = render_authentication_results(server_id, results)  # validates the results
    chain, fields = await verify_chain(data, resolver_name)
    if chain.status() == "fail":
        return None
    instance = len(chain.sets) + 1
    if instance > MAX_ARC_INSTANCE:
        raise ArcSealError(
            f"msg:arc_seal: the message already has {MAX_ARC_INSTANCE} ARC "
            "sets, the most RFC 8617 allows"
        )
    now = int(time.time()) if timestamp is None else timestamp
    _, body = split_message(crlf(data))
    aar = f"{AAR}: i={instance}; {aar_value}\r\n".encode()
    ams = _ams(signer, instance, fields, body, now)
    prior = [raw for s in chain.sets for raw in (s.aar_raw, s.ams_raw, s.seal_raw)]
    cv = "none" if instance == 1 else "pass"
    unsigned = _fold(
        SEAL,
        [
            ("i", str(instance)),
            ("a", signer.algorithm),
            ("t", str(now)),
            ("cv", cv),
            ("d", signer.domain),
            ("s", signer.selector),
        ],
    )
    seal_data = signed_data([*prior, aar, ams], (unsigned + "\r\n").encode(), True)
    seal = _finish(unsigned, _sign(signer, seal_data))
    return aar + ams + seal
