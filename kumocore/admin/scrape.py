"""``GET /metrics`` and ``/metrics.json`` without holding up the event loop.

The loop that answers a scrape also serves the SMTP clients. At its caps (500 series per
family ranked out of 100,000 scheduled queues, 10,000 policy timers, 10,000 providers) a
node's families took 0.4 s to collect and write, all at once, and eight scrapers at once
held every SMTP client for 3 s. So:

* the families are collected and written in steps (:mod:`kumocore.admin.series_cap`),
  run a slice of :data:`~kumocore.node.stepwise.SLICE_SECONDS` at a time
  (:func:`~kumocore.node.stepwise.run_stepwise`): another client waits one slice, not a
  scrape;
* scrapes that arrive together share the work (:class:`Coalesced`): while one scrape is
  being written, those that arrive wait for the next one, which starts when it ends and
  answers them all. However many scrape at once, at most one is being computed, and
  none is answered with numbers from before it arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric

from kumocore.admin.exposition import family_lines, json_samples
from kumocore.admin.metrics import KumocoreCollector
from kumocore.node.stepwise import Steps, run_stepwise

if TYPE_CHECKING:
    from kumocore.node.services import Services

__all__ = ["Coalesced", "collect_steps", "json_steps", "scrape_json", "scrape_text",
           "text_steps"]

T = TypeVar("T")

#: Lines written (or JSON samples added) between two points where the loop may run.
_LINES_PER_STEP = 500

#: ``process_*`` (registered beside the collector in :func:`registry_for`); not
#: registered anywhere itself: it only reads /proc.
_PROCESS = ProcessCollector(registry=None)


def collect_steps(services: Services) -> Steps[list[Metric]]:
    """The families :func:`~kumocore.admin.metrics.registry_for` collects, in steps."""
    collected: list[Metric] = []
    for family in KumocoreCollector(services).stream():
        if family is None:
            yield
        else:
            collected.append(family)
    collected.extend(_PROCESS.collect())
    return collected


def text_steps(families: list[Metric]) -> Steps[bytes]:
    """The text format of ``families``, a few hundred lines per step."""
    lines: list[str] = []
    for metric in families:
        for line in family_lines(metric):
            lines.append(line)
            if len(lines) % _LINES_PER_STEP == 0:
                yield
    return "".join(lines).encode("utf-8")


def json_steps(families: list[Metric]) -> Steps[dict[str, Any]]:
    """The ``/metrics.json`` answer for ``families``, a few hundred samples per step."""
    result: dict[str, Any] = {}
    added = 0
    for metric in families:
        for _ in json_samples(result, metric):
            added += 1
            if added % _LINES_PER_STEP == 0:
                yield
    return result


async def scrape_text(services: Services) -> bytes:
    """The node's ``/metrics`` text, computed a slice at a time."""
    return await run_stepwise(text_steps(await run_stepwise(collect_steps(services))))


async def scrape_json(services: Services) -> bytes:
    """The node's ``/metrics.json`` body, computed a slice at a time."""
    import orjson

    result = await run_stepwise(json_steps(await run_stepwise(collect_steps(services))))
    # orjson: json.dumps of a full node's answer took 30 ms in one go.
    return orjson.dumps(result)


class Coalesced(Generic[T]):
    """Callers of ``read`` that arrive together share one call: a caller gets the result
    of a call that started after it arrived (never an older one), and at most one call
    runs at a time."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._next: asyncio.Future[T] | None = None  # the call the newcomers wait for
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
        waiting = self._next
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        # shield: a caller that goes away does not cancel the call the others wait for.
        return await asyncio.shield(waiting)

    async def _run(self) -> None:
        while (waiting := self._next) is not None:
            self._next = None  # who arrives from now on waits for the next call
            try:
                waiting.set_result(await self._read())
            except asyncio.CancelledError:  # the loop is closing: nobody is answered
                waiting.cancel()
                if self._next is not None:
                    self._next.cancel()
                    self._next = None
                raise
            except Exception as exc:  # each caller gets it (the handler answers 500)
                waiting.set_exception(exc)
                waiting.exception()  # retrieved, even if every caller went away
