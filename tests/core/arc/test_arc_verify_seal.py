"""``msg:arc_seal`` and ``msg:arc_verify`` against keys served by a real DNS server: seal
and verify round trips, two hops, tampering, and hostile chains (RFC 8617 bounds)."""

from __future__ import annotations

import re
import time
from typing import Any

import dkim
import pytest

from kumocore.dkim import Signer, public_key_record
from kumocore.dkim.arc_seal import ArcSealError
from kumocore.mail.message import Message
from tests.core.arc.conftest import MESSAGE, Hops

SPF_PASS = {"method": "spf", "result": "pass", "props": {"smtp.mailfrom": "alice@sender.example"}}


def message(data: bytes = MESSAGE) -> Message:
    return Message("alice@sender.example", "list@lists.example", data)


def arc(result: str, reason: str | None = None, oldest: str | None = None) -> dict[str, Any]:
    props = {} if oldest is None else {"header.oldest-pass": oldest}
    return {"method": "arc", "method_version": None, "result": result, "reason": reason,
            "props": props}


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in " \t"]


async def sealed_by(hops: Hops, *signers: Signer) -> Message:
    msg = message()
    for signer in signers:
        await msg.arc_seal(signer, f"mx.{signer.domain}", [SPF_PASS, await msg.arc_verify()])
    return msg


async def test_a_message_without_arc_headers_is_none(hops: Hops) -> None:
    assert await message().arc_verify() == arc("none")


async def test_seal_adds_aar_ams_and_seal_on_top_and_the_result_verifies(hops: Hops) -> None:
    msg = await sealed_by(hops, hops.hop1)
    data = msg.get_data()
    assert header_names(data)[:3] == [
        "ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal"]
    assert data.startswith(
        b"ARC-Authentication-Results: i=1; mx.relay.example;\r\n"
        b"\tspf=pass\r\n\tsmtp.mailfrom=alice@sender.example;\r\n\tarc=none\r\n")
    seal = data.split(b"ARC-Seal:", 1)[1]
    assert re.search(rb"i=1;.*cv=none;.*d=relay\.example;.*s=arc;", seal.replace(b"\r\n", b""))
    assert await msg.arc_verify() == arc("pass", oldest="0")


async def test_an_independent_verifier_accepts_kumocores_seal(hops: Hops) -> None:
    """dkimpy's ARC validator (a separate implementation) checks both hops' sets."""
    msg = await sealed_by(hops, hops.hop1, hops.hop2)
    published = {f"arc._domainkey.{signer.domain}.".encode():
                 public_key_record(signer.private_key()).encode()
                 for signer in (hops.hop1, hops.hop2)}

    def txt(name: bytes, timeout: int = 5) -> bytes:
        return published[name]

    cv, results, comment = dkim.arc_verify(msg.get_data(), dnsfunc=txt)
    assert (cv, comment) == (b"pass", "success"), results


async def test_a_chain_sealed_by_two_hops_passes_with_cv_pass_on_the_second_seal(
    hops: Hops,
) -> None:
    msg = await sealed_by(hops, hops.hop1, hops.hop2)
    data = msg.get_data()
    assert header_names(data).count("ARC-Seal") == 2
    assert data.startswith(b"ARC-Authentication-Results: i=2; mx.forward.example;")
    newest_seal = data.split(b"ARC-Seal:", 1)[1].split(b"ARC-")[0].replace(b"\r\n", b"")
    assert b"i=2;" in newest_seal and b"cv=pass;" in newest_seal
    assert await msg.arc_verify() == arc("pass", oldest="0")


async def test_a_body_changed_after_sealing_fails_and_is_not_sealed_again(hops: Hops) -> None:
    msg = await sealed_by(hops, hops.hop1)
    msg.set_data(msg.get_data() + b"A footer added later.\r\n")
    failed = arc("fail", "The ARC-Message-Signature for instance 1 failed to validate", "0")
    assert await msg.arc_verify() == failed
    before = msg.get_data()
    await msg.arc_seal(hops.hop2, "mx.forward.example", [failed])
    assert msg.get_data() == before  # a broken chain of custody is left alone


async def test_an_altered_earlier_aar_breaks_that_sets_seal(hops: Hops) -> None:
    msg = await sealed_by(hops, hops.hop1, hops.hop2)
    data = msg.get_data().replace(b"i=1; mx.relay.example;", b"i=1; mx.evil.example;")
    assert await message(data).arc_verify() == arc(
        "fail", "The ARC-Seal for instance 1 failed to validate", "0")


async def test_the_second_set_failing_reports_the_first_as_oldest_pass(hops: Hops) -> None:
    msg = await sealed_by(hops, hops.hop1, hops.hop2)
    data = msg.get_data().replace(b"i=2; mx.forward.example;", b"i=2; mx.evil.example;")
    assert await message(data).arc_verify() == arc(
        "fail", "The ARC-Seal for instance 2 failed to validate", "1")


async def test_a_missing_set_and_an_incomplete_set_are_reported(hops: Hops) -> None:
    msg = await sealed_by(hops, hops.hop1, hops.hop2)
    first_aar = re.compile(rb"ARC-Authentication-Results: i=1;[^\r]*(\r\n[ \t][^\r]*)*\r\n")
    data = first_aar.sub(b"", msg.get_data())
    assert await message(data).arc_verify() == arc(
        "fail", "The ARC Set with instance 1 is missing some of its constituent headers", "0")


async def test_sixty_arc_sets_end_quickly_with_an_invalid_instance(hops: Hops) -> None:
    """Sets 51..60 are refused by their instance; 2..50 are forged copies of set 1."""
    msg = await sealed_by(hops, hops.hop1)
    head, body = msg.get_data().split(b"\r\n\r\n", 1)
    one_set, rest = head.split(b"\r\nFrom:", 1)
    forged = b"".join(re.sub(rb"i=1;", f"i={n};".encode(), one_set) + b"\r\n"
                      for n in range(60, 1, -1))
    hostile = message(forged + one_set + b"\r\nFrom:" + rest + b"\r\n\r\n" + body)
    started = time.monotonic()
    result = await hostile.arc_verify()
    assert time.monotonic() - started < 2.0
    assert result == arc(
        "fail", "An ARC-Seal header could not be parsed: ARC instance tag is invalid", "1")
    assert hops.dns.query_count("arc._domainkey.relay.example") <= 1


async def test_hundreds_of_arc_fields_are_not_examined(hops: Hops) -> None:
    flood = b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=relay.example; s=arc; b=AAAA\r\n" * 400
    started = time.monotonic()
    result = await message(flood + MESSAGE).arc_verify()
    assert time.monotonic() - started < 1.0
    assert result == arc(
        "fail", "The message has 400 ARC header fields; more than 300 are not examined")
    assert hops.dns.query_count("arc._domainkey.relay.example") == 0


async def test_a_giant_arc_header_is_refused_unparsed(hops: Hops) -> None:
    giant = b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=relay.example; s=arc; b=" \
        + b"A" * 2_000_000 + b"\r\n"
    started = time.monotonic()
    result = await message(giant + MESSAGE).arc_verify()
    assert time.monotonic() - started < 1.0
    assert result == arc(
        "fail", "An ARC-Seal header could not be parsed: header is longer than 16384 bytes")


async def test_sealing_stops_at_fifty_sets(hops: Hops) -> None:
    msg = message()
    for _ in range(50):
        await msg.arc_seal(hops.hop1, "mx.relay.example", [])
    assert await msg.arc_verify() == arc("pass", oldest="0")
    with pytest.raises(ArcSealError, match="already has 50 ARC sets"):
        await msg.arc_seal(hops.hop1, "mx.relay.example", [])


async def test_a_signer_option_without_meaning_in_arc_is_refused(hops: Hops) -> None:
    signer = Signer("relay.example", "arc", ("From",), key_data=b"unused",
                    agent_user_identifier="@relay.example")
    with pytest.raises(ArcSealError, match="agent_user_identifier"):
        await message().arc_seal(signer, "mx.relay.example", [])
    with pytest.raises(ArcSealError, match=r"kumo\.dkim\.rsa_sha256_signer"):
        await message().arc_seal("not a signer", "mx.relay.example", [])
