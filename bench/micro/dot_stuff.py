"""Micro-benchmark: the delivery write path of a received message, old and new.

``python -m bench.micro.dot_stuff [--rounds 5]``

For the benchmark's 2 KB and 100 KB messages (``bench.load.make_message``, CRLF), one
recipient and three sharing a body, it times what happens to a message between
reception and the write to the next MTA that this change touches:

* old: ``Message(head + body)``, the supplemental trace header prepended, then
  ``dot_stuff(message.data)`` (normalising line endings: ``splitlines`` + ``join``);
* new: the same message marked CRLF-clean as reception now marks it (plus reception's
  check of the Received head), the same prepend (which now checks the prepended header),
  then ``dot_stuff(message.data, crlf_clean=message.crlf_clean)``.

Old and new alternate ``--rounds`` times; the medians of the rounds are printed, in µs
per message. Both produce the same bytes (checked before timing).
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable

from bench.perf.load import make_message
from kumocore.delivery.dot_stuffing import dot_stuff
from kumocore.mail.body import SharedBody
from kumocore.mail.message import Message
from kumocore.reception.smtp.data import check_line_endings

HEAD = (b"Received: from client.test (client.test [127.0.0.5])\r\n\tby node.test (kumocore)"
        b" with ESMTP id 0123456789abcdef0123456789abcdef\r\n\tfor <r@example.com>;"
        b" Thu, 3 Dec 2026 18:00:00 +0000\r\n")
TRACE = "eyJfQF8iOiJcXF8vIiwicmVjaXBpZW50IjoicjBAZXhhbXBsZS5jb20ifQ=="


def _message(body: bytes, shared: SharedBody | None, new: bool) -> Message:
    if shared is None:
        clean = new and check_line_endings(HEAD)
        return Message("s@example.org", "r@example.com", HEAD + body, crlf_clean=clean)
    return Message("s@example.org", "r@example.com", HEAD, shared=shared,
                   crlf_clean=new and check_line_endings(HEAD))


def write_path(body: bytes, recipients: int, new: bool) -> Callable[[], bytes]:
    """One message's path from reception's Message to the bytes written, as a callable."""
    shared = SharedBody(body, crlf_clean=new) if recipients > 1 else None

    def run() -> bytes:
        message = _message(body, shared, new)
        message.prepend_header("X-KumoRef", TRACE)
        if new:
            return dot_stuff(message.data, crlf_clean=message.crlf_clean)
        return dot_stuff(message.data)

    return run


def measure(size: int, recipients: int, rounds: int) -> tuple[float, float]:
    body = make_message(size).replace(b"\n", b"\r\n")
    old, new = write_path(body, recipients, False), write_path(body, recipients, True)
    assert old() == new(), "the fast path must send the same bytes"
    number = 20_000 if size < 10_000 else 1_000
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for is_new, run in ((False, old), (True, new)):
            best = min(timeit.repeat(run, number=number, repeat=3))
            times[is_new].append(best / number * 1e6)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'body':>8} {'rcpts':>5} {'old us':>8} {'new us':>8} {'saved':>7}")
    for size in (2048, 102400):
        for recipients in (1, 3):
            old, new = measure(size, recipients, args.rounds)
            print(f"{size:>8} {recipients:>5} {old:8.1f} {new:8.1f} {1 - new / old:7.0%}")


if __name__ == "__main__":
    main()
