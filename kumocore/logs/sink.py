"""The log sink contract: where log records go (local files, webhooks, Kafka...).

A plugin returns sinks from ``kumo_register_log_sinks``. The
:class:`~kumocore.logs.dispatch.LogDispatcher` feeds each sink from its own bounded buffer
and task, in batches, so a sink may take its time (compress, retry an HTTP POST); only a
sink that falls ``buffer_size`` records behind holds reception back.

Besides the three required members a sink may declare, as plain attributes:

``header_names: Sequence[str]``
    Header names (``X-*`` wildcards allowed) the sink will select with
    :meth:`LogRecord.to_json`. Records only capture headers some sink declared, so a sink
    that selects headers without declaring them gets an empty ``headers`` map.
``buffer_size: int``
    How many records may wait for this sink before reception is held back and rejection
    records are shed (KumoMTA's ``back_pressure``); the dispatcher's default otherwise.
``batch_size: int``
    The most records handed to one :meth:`LogSink.write_batch` call.
``filter_event: str | None``
    A policy event asked, per record about a message, whether this sink logs it
    (KumoMTA's ``filter_event``; see :mod:`kumocore.logs.filter_event`). A sink that has
    one may also offer ``record_enabled(record_type: str) -> bool``, so the event is not
    asked about records the sink would drop anyway.
``logger_name: str``
    The ``logger`` label of the sink's ``log_submit_latency`` and ``log_submit_full`` on
    ``/metrics``: what KumoMTA shows for the equivalent logger (``dir-<log_dir>`` for
    local logs, ``hook-<name>`` for a log hook); the sink's ``name`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kumocore.logs.record import LogRecord


@runtime_checkable
class LogSink(Protocol):
    """Receives every log record, in submission order, in batches."""

    #: Names the sink in diagnostics and in :meth:`LogDispatcher.stats`; unique per server.
    name: str

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        """Persist or forward ``records``. Called by one task at a time per sink.

        Raising counts the batch as failed: the dispatcher logs it and calls again with
        the same batch, with backoff, until it succeeds (records about messages must not
        be lost). A sink must therefore leave no half-written record behind when it raises,
        or accept that a retried record may appear twice.
        """
        ...

    async def close(self) -> None:
        """Flush what is buffered and release resources. Called once, after the last
        :meth:`write_batch`; it should tolerate being called again."""
        ...


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """The optional attributes of a sink, validated, with the dispatcher's defaults."""

    header_names: tuple[str, ...]
    buffer_size: int
    batch_size: int
    filter_event: str | None = None
    logger_name: str = ""


def sink_options(sink: LogSink, *, buffer_size: int, batch_size: int) -> SinkOptions:
    """Read a sink's optional attributes; a malformed one is a plugin bug, said loudly."""
    headers = getattr(sink, "header_names", ())
    if isinstance(headers, str) or not all(isinstance(h, str) for h in headers):
        raise TypeError(f"log sink {sink.name!r}: header_names must be a sequence of str")
    size = _positive(sink, "buffer_size", buffer_size)
    batch = _positive(sink, "batch_size", batch_size)
    event = getattr(sink, "filter_event", None)
    if event is not None and (not isinstance(event, str) or not event):
        raise TypeError(f"log sink {sink.name!r}: filter_event must be an event name, "
                        f"got {event!r}")
    logger = getattr(sink, "logger_name", None)
    if logger is None:
        logger = sink.name
    elif not isinstance(logger, str) or not logger:
        raise TypeError(f"log sink {sink.name!r}: logger_name must be a non-empty str, "
                        f"got {logger!r}")
    return SinkOptions(tuple(headers), size, batch, event, logger)


def _positive(sink: LogSink, attr: str, default: int) -> int:
    value = getattr(sink, attr, None)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"log sink {sink.name!r}: {attr} must be a positive int, got {value!r}")
    return value
