"""JSON bombs sent to ``POST /api/inject/v1`` by a client that may inject.

orjson refuses nesting deeper than 1,024 and numbers beyond a double, so a 2 MB body of
``[`` or of digits is a ``400`` after a few milliseconds. What the event loop paid for
was the size of a valid request: decoding and checking 85,000 recipients (2 MB, within
``request_body_limit``) held it for 0.37 s before any message was generated. A body of
256 KiB or more is now decoded and checked in a worker thread.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator

import pytest

from tests.http.conftest import HttpEnv
from tests.support.adversary import rss_mib
from tests.support.ticker import LoopTicker

ONE = (
    '{"envelope_sender": "a@example.com", "content": "Subject: x\\r\\n\\r\\nhi", '
    '"recipients": [{"email": "b@example.com"}]'
)


def _recipients(count: int) -> str:
    return ",".join(f'{{"email":"b{n}@e.co"}}' for n in range(count))


BOMBS: dict[str, tuple[bytes, int]] = {
    "2 MB of [": (b"[" * 2_000_000, 400),
    "400,000 nested objects": (b'{"a":' * 400_000, 400),
    "a 2,000,000-digit number": ((ONE + ', "x": ' + "9" * 2_000_000 + "}").encode(), 400),
    "1e99999999": ((ONE + ', "x": 1e99999999}').encode(), 400),
    "150,000 substitution keys": (
        (
            ONE + ', "substitutions": {' + ",".join(f'"k{n}": 1' for n in range(150_000)) + "}}"
        ).encode(),
        200,
    ),
    # Checked in full, then refused for its template: nothing is generated.
    "85,000 recipients": (
        (
            '{"envelope_sender": "a@example.com", "content": '
            '"Subject: {{ broken\\r\\n\\r\\nhi", "recipients": [' + _recipients(85_000) + "]}"
        ).encode(),
        422,
    ),
}


@pytest.fixture
def no_full_collections() -> Iterator[None]:
    """The collector off while the request runs: a full collection over the objects a
    large request creates stalls the loop too, but that is the collector's cost, the
    same for any work (see docs/reliability.md), not what this test measures."""
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("name", BOMBS)
async def test_a_json_bomb_is_answered_without_stalling_the_loop(
    http: HttpEnv,
    no_full_collections: None,
    name: str,
) -> None:
    body, status = BOMBS[name]
    assert len(body) < 2 * 2**20  # within request_body_limit: the parser sees it all
    before = rss_mib()
    async with LoopTicker() as ticker:
        got, payload, _ = await http.request(
            "POST",
            "/api/inject/v1",
            data=io.BytesIO(body),
            headers={"Content-Type": "application/json"},
        )
    assert got == status, payload
    if status != 200:
        assert isinstance(payload, dict) and payload["error"]
    # 85,000 recipients: 0.37 s before (150,000 keys: 0.1 s); after: 25-30 ms.
    assert ticker.longest < 0.2, ticker.longest
    assert rss_mib() - before < 64
