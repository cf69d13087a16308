"""Micro-benchmark: the search for lines starting with a dot, ``re`` against memchr first.

``python -m bench.micro.dot_search [--rounds 5]``

Reception (``unstuff``) and delivery (``dot_stuff``) each ask whether a body has a line
that starts with a dot. Old: ``re.compile(rb"\\r\\n\\.").search`` over the whole body.
New: :func:`kumocore.reception.smtp.dots.has_dot_line` (``bytes.find`` of each full stop, ``re``
only where they come thick). Bodies: the benchmark's 2, 50 and 100 KB messages
(``bench.perf.load.make_message``, CRLF) and 100 KB of prose with a full stop in every
line. Old and new alternate ``--rounds`` times; medians of the rounds, µs per search.
"""

from __future__ import annotations

import argparse
import re
import statistics
import timeit
from collections.abc import Callable

from bench.perf.load import make_message
from kumocore.reception.smtp.dots import has_dot_line

_CRLF_DOT = re.compile(rb"\r\n\.")


def _old(data: bytes) -> bool:
    return _CRLF_DOT.search(data) is not None


def bodies() -> dict[str, bytes]:
    found = {f"bench {size // 1024} KB": make_message(size).replace(b"\n", b"\r\n")
             for size in (2048, 51200, 102400)}
    line = b"A sentence ends here. Another one, shorter. And a third one ends here.\r\n"
    found["prose 100 KB"] = line * (102400 // len(line))
    return found


def measure(data: bytes, rounds: int) -> tuple[float, float]:
    assert _old(data) == has_dot_line(data)
    number = 20_000 if len(data) < 10_000 else 1_000
    runs: dict[str, Callable[[], bool]] = {
        "old": lambda: _old(data), "new": lambda: has_dot_line(data)}
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(rounds):
        for name, run in runs.items():
            best = min(timeit.repeat(run, number=number, repeat=3))
            times[name].append(best / number * 1e6)
    return statistics.median(times["old"]), statistics.median(times["new"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'body':>14} {'old us':>8} {'new us':>8}")
    for name, data in bodies().items():
        old, new = measure(data, args.rounds)
        print(f"{name:>14} {old:8.1f} {new:8.1f}")


if __name__ == "__main__":
    main()
