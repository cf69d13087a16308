"""Work a request can make the listener do, bounded (stalls found by an outside check):
compressed bodies are decoded only once the request was let in, never past
``request_body_limit`` and off the event loop (a refused client still had each 1 MB gzip
body inflated to 1 GiB), and templates that compute render a message at a time."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from kumocore.http import encoding, guard
from kumocore.http.encoding import BodyEncodingError, BodyTooLarge, decode_body
from tests.http.conftest import HttpEnv

LIMIT = 2 * 1024 * 1024


def _bomb(inflated: int) -> bytes:
    """A gzip body of ``inflated`` zero bytes (about a thousandth of that on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(inflated >> 20)]
    return b"".join(parts) + packer.flush()


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each body the listener decoded."""
    calls: list[int] = []

    def counting(raw: bytes, coding: str, limit: int) -> bytes:
        calls.append(len(raw))
        return encoding.decode_body(raw, coding, limit)

    monkeypatch.setattr(guard, "decode_body", counting)
    return calls


async def test_a_refused_client_s_compressed_body_is_never_decoded(
    http: HttpEnv, decoded: list[int]
) -> None:
    status, text, _ = await http.request(
        "POST", "/api/inject/v1", data=_bomb(64 << 20), source="127.0.0.5",
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert (status, text) == (401, "127.0.0.5 not permitted POST on /api/inject/v1")
    assert decoded == []


async def test_a_decompression_bomb_from_a_trusted_client_is_413_at_the_limit(
    http: HttpEnv, decoded: list[int]
) -> None:
    status, text, _ = await http.request(
        "POST", "/api/inject/v1", data=_bomb(64 << 20),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert status == 413 and "length limit exceeded" in text
    assert len(decoded) == 1 and http.messages == []


@pytest.mark.parametrize(
    ("coding", "status", "error"),
    [
        ("br", 415, "Content-Encoding 'br' is not supported"),
        ("gzip, gzip", 415, "is not supported"),
        ("deflate", 400, "body does not decode"),  # a gzip body labelled deflate still works
    ],
)
async def test_an_encoding_kumocore_does_not_take_or_a_broken_body_is_a_json_error(
    http: HttpEnv, coding: str, status: int, error: str
) -> None:
    raw = b"not compressed at all"
    got, body, _ = await http.request(
        "POST", "/api/inject/v1", data=raw,
        headers={"Content-Encoding": coding, "Content-Type": "application/json"})
    assert got == status and error in body["error"]


async def test_deflate_and_identity_bodies_are_accepted(http: HttpEnv) -> None:
    payload: dict[str, Any] = {"envelope_sender": "s@example.com", "content": "Subject: z\n\nx",
                               "recipients": [{"email": "r@example.com"}]}
    raw = json.dumps(payload).encode()
    for coding, data in (("deflate", zlib.compress(raw)), ("identity", raw)):
        status, body, _ = await http.request(
            "POST", "/api/inject/v1", data=data,
            headers={"Content-Encoding": coding, "Content-Type": "application/json"})
        assert status == 200 and body["success_count"] == 1, body


def test_decoding_stops_one_byte_past_the_limit() -> None:
    with pytest.raises(BodyTooLarge):
        decode_body(_bomb(256 << 20), "gzip", LIMIT)
    assert decode_body(gzip.compress(bytes(LIMIT)), "gzip", LIMIT) == bytes(LIMIT)
    with pytest.raises(BodyEncodingError, match="truncated"):
        decode_body(gzip.compress(b"x" * 1000)[:-12], "gzip", LIMIT)


@pytest.mark.serial  # a stall bound: measured on a machine not running other tests
async def test_templates_that_compute_let_other_clients_in_between_renders(
    http: HttpEnv,
) -> None:
    # 80 bytes of loops burn a render's whole fuel (0.1-0.15 s); a chunk rendered in one
    # piece, 20 recipients stalled every other client for over two seconds (an outside
    # check saw 24 s with 200). Rendered a message at a time (kumocore.node.stepwise),
    # the loop waits for a render or two: minijinja holds the GIL while it renders, so
    # one render's fuel is the bound, on the loop or on a thread.
    import asyncio
    import time

    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    payload = {"envelope_sender": "s@example.com", "content": "Subject: t\n\n" + loops,
               "recipients": [{"email": f"r{n}@example.com"} for n in range(20)]}
    begun = time.monotonic()
    inject = asyncio.ensure_future(http.inject(payload))
    worst = 0.0
    while not inject.done():
        started = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - started - 0.01)
    status, body = await inject
    assert status == 200 and body["fail_count"] == 20
    # Relative, so a busy machine slows both alike: inline, the stall was the whole run.
    elapsed = time.monotonic() - begun
    assert worst < elapsed / 4, f"the event loop stalled {worst:.2f}s of {elapsed:.2f}s"
