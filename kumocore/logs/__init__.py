"""Log records, the sink contract, and the dispatcher that feeds sinks without blocking.

Reading local log segments lives in :mod:`kumocore.logs.reader` (imported on demand: it
needs ``zstandard``).
"""

from __future__ import annotations

from kumocore.logs.dispatch import LogDispatcher
from kumocore.logs.record import (
    LogRecord,
    MessageLike,
    PeerAddress,
    RecordType,
    make_record,
    select_headers,
    select_meta,
)
from kumocore.logs.sink import LogSink

__all__ = [
    "LogDispatcher",
    "LogRecord",
    "LogSink",
    "MessageLike",
    "PeerAddress",
    "RecordType",
    "make_record",
    "select_headers",
    "select_meta",
]
