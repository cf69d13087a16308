"""The Public Suffix List is parsed in a background thread once the policy functions are
registered, so that no ``kumo.string.psl_*`` call holds the event loop for the parse
(a tenth of a second or more). Measured with a ticker task on the same loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kumocore.dmarc import psl
from tests.support.ticker import LoopTicker

#: Longest pause between two ticks accepted: the inline parse pauses 90-200 ms; sharing
#: the GIL with the loading thread costs a few switch intervals (5 ms each).
MAX_STALL = 0.05


@pytest.fixture
def unparsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The module as in a fresh process: nothing parsed, no loader started (the list the
    other tests parsed comes back afterwards)."""
    monkeypatch.setattr(psl, "_list", None)
    monkeypatch.setattr(psl, "_loaded", threading.Event())
    monkeypatch.setattr(psl, "_loader", None)
    monkeypatch.setattr(psl, "_load_error", None)
    yield


@pytest.fixture
async def ticker() -> AsyncIterator[LoopTicker]:
    async with LoopTicker() as running:
        yield running


async def _until_loaded(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not psl.is_loaded():
        assert time.monotonic() < deadline, "the list was never loaded"
        await asyncio.sleep(0.005)


async def test_the_list_is_parsed_in_the_background_without_stalling_the_loop(
    unparsed: None, ticker: LoopTicker,
) -> None:
    await asyncio.sleep(0.01)  # the ticker is going
    started = time.perf_counter()
    psl.start_loading()
    await _until_loaded()
    assert time.perf_counter() - started > 0.02  # there was a parse to hide
    assert ticker.longest < MAX_STALL
    assert psl.psl_domain("www.example.co.uk") == "example.co.uk"


async def test_a_call_during_the_background_parse_waits_for_it_and_parses_no_second_copy(
    unparsed: None,
) -> None:
    psl.start_loading()
    loader = psl._loader
    answer = await asyncio.to_thread(psl.psl_suffix, "mail.example.com")
    assert answer == "com"
    assert psl._loader is loader  # the same, single parse
    await psl.load_in_thread()  # and awaiting it afterwards returns at once


async def test_the_dmarc_check_waits_for_the_list_without_stalling_the_loop(
    unparsed: None, ticker: LoopTicker,
) -> None:
    await asyncio.sleep(0.01)
    await psl.load_in_thread()
    assert psl.is_loaded()
    assert ticker.longest < MAX_STALL


POLICY = '''
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg, conn_meta)
  msg:set_meta('org', kumo.string.psl_domain(msg:from_header().domain))
end)
'''


async def test_a_node_parses_the_list_at_startup_so_a_policy_call_never_stalls_the_loop(
    unparsed: None, make_node: Any,
) -> None:
    node = await make_node(POLICY)
    await _until_loaded()  # nobody has asked yet: registering the functions started it
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)
        mail = "From: a@news.brand.example.co.uk\r\nTo: u@dest.example\r\n\r\nhi\r\n"
        assert await node.send("a@brand.example.co.uk", "u@dest.example", mail) == {}
        [delivery] = await node.wait_for("Delivery")
    assert delivery["meta"]["org"] == "example.co.uk"
    assert ticker.longest < 0.1  # the message's whole reception and delivery, in-process
