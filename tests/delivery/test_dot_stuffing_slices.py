"""Dot-stuffing a large body a slice at a time: the same bytes as stuffing it whole, and
the event loop free for other sessions between slices."""

from __future__ import annotations

import random

import pytest

from kumocore.delivery.dot_stuffing import STUFF_SLICE, dot_stuffed, dot_stuffed_in_slices
from tests.delivery.test_wire import reference_dot_stuff
from tests.support.ticker import LoopTicker

#: Line pieces chosen to hit every edge: dots, bare CR and LF, CRLF split across a slice.
PIECES = [b".", b"..", b"a", b"\r\n", b"\r", b"\n", b"\r\n.", b"\n.", b"\r.", b"xyz"]


def random_body(rng: random.Random, clean: bool) -> bytes:
    body = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 120)))
    if clean:  # every CR and LF part of a CRLF pair
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return body


@pytest.mark.parametrize("clean", [True, False], ids=["crlf-clean", "bare line ends"])
async def test_stuffing_in_slices_gives_the_bytes_stuffing_whole_gives(clean: bool) -> None:
    rng = random.Random(7)
    for _ in range(3000):
        head = random_body(rng, clean) if rng.random() < 0.3 else b""
        if head and clean and rng.random() < 0.5:
            head += b"\r\n"  # a message's own header lines end with CRLF
        data = random_body(rng, clean)
        sliced = await dot_stuffed_in_slices(
            data, crlf_clean=clean, head=head, slice_size=rng.randrange(1, 12))
        whole = dot_stuffed(data, crlf_clean=clean, head=head)
        assert b"".join(sliced) == b"".join(whole) == reference_dot_stuff(head + data), (
            head, data)


async def test_a_body_without_dot_lines_is_sent_as_it_is_without_a_copy() -> None:
    data = b"x" * (3 * STUFF_SLICE) + b"\r\n"
    pieces = await dot_stuffed_in_slices(data, crlf_clean=True, no_dot_lines=True)
    assert pieces[0] is data


@pytest.mark.parametrize("clean", [True, False], ids=["crlf-clean", "bare line ends"])
async def test_a_huge_body_of_dot_lines_leaves_the_loop_free_between_slices(
    clean: bool,
) -> None:
    # 32 MB of lines that each need a dot: stuffed whole, one replace (and, with bare line
    # ends, one splitlines) held the loop 150-300 ms here; a slice takes a few ms.
    data = (b"..\r\n" if clean else b".\n") * (8 << 20)
    async with LoopTicker() as ticker:
        pieces = await dot_stuffed_in_slices(data, crlf_clean=clean)
    assert len(pieces) > 16
    assert ticker.longest < 0.07, ticker.longest
