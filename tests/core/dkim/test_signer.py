"""Signer: signatures verify with dkimpy for every key kind and canonicalisation, and the
header selection / folding / tags follow RFC 6376 and KumoMTA's options."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kumocore.dkim.canonicalization as canonicalization_module
from kumocore import ConfigError
from kumocore.dkim import Signer
from kumocore.dkim.canonicalization import canonicalize_body, canonicalize_header
from tests.core.dkim.conftest import MESSAGE, KeyFile, Verify
from tests.support.sparse import tiny_spans

HEADERS = ("From", "To", "Subject", "Date", "Message-ID")
CANONS = [
    ("Relaxed", "Relaxed"),
    ("Relaxed", "Simple"),
    ("Simple", "Relaxed"),
    ("Simple", "Simple"),
]


def signer_for(key: KeyFile, **kwargs: Any) -> Signer:
    options: dict[str, Any] = {
        "domain": "example.com",
        "selector": "sel",
        "headers": HEADERS,
        "algorithm": "ed25519-sha256" if "ed25519" in key.path.name else "rsa-sha256",
        "key_path": str(key.path),
        **kwargs,
    }
    return Signer(**options)


def tags(header: bytes) -> dict[str, str]:
    value = header.decode().split(":", 1)[1]
    pairs = (item.split("=", 1) for item in value.split(";") if item.strip())
    return {k.strip(): re.sub(r"\s+", "", v) for k, v in pairs}


@pytest.mark.parametrize(
    "key_name", ["rsa1024-pkcs1", "rsa1024-pkcs8", "rsa2048-pkcs1", "rsa2048-pkcs8", "ed25519"]
)
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS)
def test_signature_verifies_with_dkimpy_for_each_key_and_canonicalization(
    keys: dict[str, KeyFile],
    dkimpy_verify: Verify,
    key_name: str,
    header_canon: str,
    body_canon: str,
) -> None:
    key = keys[key_name]
    signer = signer_for(key, header_canonicalization=header_canon, body_canonicalization=body_canon)
    header = signer.sign(MESSAGE)
    assert tags(header)["c"] == f"{header_canon}/{body_canon}".lower()
    assert dkimpy_verify(header + MESSAGE, key.record)


@pytest.mark.parametrize("key_name", ["rsa2048-pkcs8", "ed25519"])
@pytest.mark.parametrize(("header_canon", "body_canon"), CANONS)
def test_modified_message_fails_verification(
    keys: dict[str, KeyFile],
    dkimpy_verify: Verify,
    key_name: str,
    header_canon: str,
    body_canon: str,
) -> None:
    key = keys[key_name]
    signer = signer_for(key, header_canonicalization=header_canon, body_canonicalization=body_canon)
    header = signer.sign(MESSAGE)
    assert not dkimpy_verify(header + MESSAGE.replace(b"last line", b"last lime"), key.record)
    assert not dkimpy_verify(header + MESSAGE.replace(b"Bob <", b"Rob <"), key.record)


def test_relaxed_survives_refolding_and_whitespace_changes_but_simple_does_not(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    key = keys["rsa2048-pkcs1"]
    rewrapped = MESSAGE.replace(
        b"Subject:   A   folded\r\n\tsubject line  \r\n", b"Subject: A folded subject line\r\n"
    )
    rewrapped = rewrapped.replace(b"Hello  Bob,\t\r\n", b"Hello Bob,\r\n")
    relaxed = signer_for(key).sign(MESSAGE)
    simple = signer_for(key, header_canonicalization="Simple", body_canonicalization="Simple").sign(
        MESSAGE
    )
    assert dkimpy_verify(relaxed + rewrapped, key.record)
    assert not dkimpy_verify(simple + rewrapped, key.record)


def test_listed_headers_absent_from_the_message_are_left_out_of_h(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    key = keys["rsa2048-pkcs8"]
    signer = signer_for(key, headers=("From", "Reply-To", "To", "Cc", "Subject", "List-Id"))
    header = signer.sign(MESSAGE)
    assert tags(header)["h"] == "From:To:Subject"
    assert dkimpy_verify(header + MESSAGE, key.record)


def test_over_sign_lists_each_header_once_more_than_it_occurs(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    key = keys["rsa2048-pkcs8"]
    signer = signer_for(key, headers=("From", "To", "Cc", "Received"), over_sign=True)
    header = signer.sign(MESSAGE)
    assert tags(header)["h"] == "From:From:To:To:Cc:Received:Received"
    assert dkimpy_verify(header + MESSAGE, key.record)
    # The extra entries sign "no further instance": adding one breaks the signature.
    forged = MESSAGE.replace(b"Subject:", b"Cc: eve@evil.example\r\nSubject:", 1)
    assert not dkimpy_verify(header + forged, key.record)


def test_repeated_header_instances_are_signed_from_the_bottom_up(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    key = keys["rsa2048-pkcs8"]
    message = b"Received: first\r\nReceived: second\r\n" + MESSAGE
    header = signer_for(key, headers=("From", "Received", "Received")).sign(message)
    assert tags(header)["h"] == "From:Received:Received"
    assert dkimpy_verify(header + message, key.record)


def test_signature_header_is_folded_with_crlf_and_short_lines(keys: dict[str, KeyFile]) -> None:
    signer = signer_for(keys["rsa2048-pkcs8"], headers=HEADERS * 3, over_sign=True)
    header = signer.sign(MESSAGE)
    assert header.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert header.endswith(b"\r\n") and b"\n" not in header.replace(b"\r\n", b"")
    lines = header[:-2].split(b"\r\n")
    assert len(lines) > 5
    assert all(len(line) <= 78 for line in lines)
    assert all(line[:1] == b" " for line in lines[1:])


def test_optional_tags_follow_the_options(keys: dict[str, KeyFile], dkimpy_verify: Verify) -> None:
    key = keys["rsa2048-pkcs8"]
    signer = signer_for(
        key,
        expiration=3600,
        body_length=True,
        reporting=True,
        agent_user_identifier="alice@mail.example.com",
        atps="esp.example",
    )
    header = signer.sign(MESSAGE, timestamp=1_900_000_000)
    got = tags(header)
    assert (got["t"], got["x"]) == ("1900000000", "1900003600")
    assert got["l"] == str(len(canonicalize_body(MESSAGE.split(b"\r\n\r\n", 1)[1], True)))
    assert (got["r"], got["i"], got["atps"], got["atpsh"]) == (
        "y",
        "alice@mail.example.com",
        "esp.example",
        "sha256",
    )
    assert list(got)[-1] == "b"
    assert dkimpy_verify(signer_for(key, body_length=True).sign(MESSAGE) + MESSAGE, key.record)


def test_body_canonicalization_matches_rfc6376_examples() -> None:
    body = b" C \r\nD \t E\r\n\r\n\r\n"  # RFC 6376 section 3.4.6
    assert canonicalize_body(body, relaxed=True) == b" C\r\nD E\r\n"
    assert canonicalize_body(body, relaxed=False) == b" C \r\nD \t E\r\n"
    assert canonicalize_body(b"", relaxed=True) == b""
    assert canonicalize_body(b"", relaxed=False) == b"\r\n"
    assert canonicalize_body(b"no newline", relaxed=False) == b"no newline\r\n"


def test_header_canonicalization_matches_rfc6376_examples() -> None:
    assert canonicalize_header(b"A: X\r\n", True) == b"a:X\r\n"
    assert canonicalize_header(b"B : Y\t\r\n\tZ  \r\n", True) == b"b:Y Z\r\n"
    assert canonicalize_header(b"B : Y\t\r\n\tZ  \r\n", False) == b"B : Y\t\r\n\tZ  \r\n"


def test_message_with_only_headers_signs_an_empty_body(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    key = keys["rsa2048-pkcs8"]
    message = b"From: a@example.com\r\nSubject: no body\r\n"
    assert dkimpy_verify(signer_for(key).sign(message) + message, key.record)


def test_message_without_any_listed_header_cannot_be_signed(keys: dict[str, KeyFile]) -> None:
    with pytest.raises(ValueError, match="none of the header fields"):
        signer_for(keys["rsa2048-pkcs8"]).sign(b"X-Other: 1\r\n\r\nbody\r\n")


def test_signer_is_hashable_and_compares_by_value(keys: dict[str, KeyFile]) -> None:
    a = signer_for(keys["rsa2048-pkcs8"], headers=["From", "To"])
    b = signer_for(keys["rsa2048-pkcs8"], headers=("From", "To"))
    assert a == b and hash(a) == hash(b) and a.headers == ("From", "To")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"headers": ("To", "Subject")}, "must include 'From'"),
        ({"headers": ("From", "Bad Name")}, "invalid header name"),
        ({"header_canonicalization": "loose"}, "'Relaxed' or 'Simple'"),
        ({"expiration": 0}, "positive"),
        ({"agent_user_identifier": "a@elsewhere.example"}, "agent_user_identifier"),
        ({"algorithm": "rsa-sha1"}, "algorithm"),
        ({"selector": "s1; x=1"}, "'selector' is not a valid domain name"),
        ({"agent_user_identifier": "a b@example.com"}, "agent_user_identifier"),
    ],
)
def test_invalid_signer_settings_raise_config_error(
    keys: dict[str, KeyFile], options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        signer_for(keys["rsa2048-pkcs8"], **options)


_BODY_PIECES = st.lists(
    st.sampled_from([b"a", b" ", b"  ", b"\t", b"\r\n", b" \r\n", b"x y", b"QUJD", b"\r", b"\n"]),
    max_size=60,
).map(b"".join)


@given(_BODY_PIECES)
@settings(max_examples=400, deadline=None)
def test_the_space_search_answers_as_plain_searches_at_every_span_boundary(body: bytes) -> None:
    # Tiny spans and no small-body shortcut put every boundary of the spans handed to re
    # (a pair or a space-CRLF straddling one) within reach of short bodies.
    with tiny_spans(3):
        expected = (b"\t" in body or b"  " in body, b" \r\n" in body)
        assert canonicalization_module._spaces_to_relax(body) == expected


def test_relaxed_body_of_a_large_message_matches_the_rfc_definition() -> None:
    # Base64 (no spaces) with prose around it: the memchr walk, the re spans, no copy.
    prose = b"Dear reader,  this line has a run  of spaces and ends with one \r\n" * 40
    base64ish = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==\r\n" * 2000
    for body in (base64ish, prose + base64ish, base64ish + prose, base64ish + b"a \r\n"):
        assert canonicalize_body(body, relaxed=True) == reference_relaxed_body(body)


def reference_relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, line by line: runs of WSP to one space, none at a line's end, no
    empty lines at the end, and a non-empty body ends with CRLF."""
    lines = body.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()  # the body ended with CRLF
    relaxed = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in lines]
    while relaxed and relaxed[-1] == b"":
        relaxed.pop()
    return b"".join(line + b"\r\n" for line in relaxed)
