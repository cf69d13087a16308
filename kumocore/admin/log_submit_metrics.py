"""KumoMTA's log submission metrics of one node, for ``/metrics``.

KumoMTA hands each log record to each of its loggers (its local logs, each log hook)
through a bounded queue and exports, by ``logger``:

* ``log_submit_latency``: how long each hand-over took, a wait for room in a full queue
  included;
* ``log_submit_full``: hand-overs that found the queue full;
* ``log_hook_backlog_count`` (labelled with the hook's bare name): records a log hook had
  to hold because its ``back_pressure`` was reached.

kumocore's loggers are the log dispatcher's sink lanes (:mod:`kumocore.logs.dispatch`):
the hand-over is the lane's append, and the wait for room happens at reception, before a
message is stored (:meth:`~kumocore.logs.dispatch.LogDispatcher.room`), once per lane it
waits for. A log hook's one queue is its lane, bounded by its ``back_pressure``, so a
hook hitting its back-pressure is exactly its lane being full: ``log_hook_backlog_count``
is that lane's ``log_submit_full``, under the name KumoMTA gives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumocore.admin.series_cap import Families, capped_series
from kumocore.node.latency import histogram_series

if TYPE_CHECKING:
    from kumocore.logs.dispatch import LogDispatcher

__all__ = ["log_submit_metrics"]

_HELP = {
    "log_submit_latency": "Seconds to hand a log record to a logger, a wait for room in "
                          "its queue included, by logger.",
    "log_submit_full": "Log records handed to a logger whose queue was full (receptions "
                       "held for room included), by logger.",
    "log_hook_backlog_count": "Log records that reached a log hook while its back_pressure "
                              "was reached, by hook.",
}


def log_submit_metrics(logs: LogDispatcher, cap: int, other: str) -> Families:
    """The three families, each capped at ``cap`` series."""
    from kumocore.loghooks.sink import LogHookSink

    yield from histogram_series("log_submit_latency", _HELP["log_submit_latency"],
                                label="logger", series=logs.submit_latency.series,
                                limit=cap, other=other)  # fmt: skip
    full: dict[str, int] = {}
    hooks: dict[str, int] = {}
    for lane in logs.lanes:
        logger = lane.options.logger_name
        full[logger] = full.get(logger, 0) + lane.full
        sink = lane.sink
        if isinstance(sink, LogHookSink):
            hooks[sink.config.name] = lane.full
    for name, values in (("log_submit_full", full), ("log_hook_backlog_count", hooks)):
        yield from capped_series(name, _HELP[name], "counter", ("logger",), values, cap,
                                 other)  # fmt: skip
