"""Log records, the sink contract, the dispatcher that feeds sinks without blocking, and
the journal (:mod:`kumocore.logs.journal`), which builds every record the node writes.

Reading local log segments lives in :mod:`kumocore.logs.reader` (imported on demand: it
needs ``zstandard``).

Owns the record format, the journal that builds every record, and their way to the sinks
(buffered per sink, never losing the record of an accepted message). It does not own any
particular sink's storage (local files are the ``local_logs`` plugin, log hooks are
:mod:`kumocore.loghooks`).
"""

from __future__ import annotations

from kumocore.logs.dispatch import LogDispatcher
from kumocore.logs.journal import Journal
from kumocore.logs.options import names, per_record_entries
from kumocore.logs.record import LogRecord, PeerAddress, RecordType
from kumocore.logs.record_builder import MessageLike, Subject, make_record
from kumocore.logs.select import select_headers, select_meta
from kumocore.logs.sink import LogSink

__all__ = [
    "Journal",
    "LogDispatcher",
    "LogRecord",
    "LogSink",
    "MessageLike",
    "PeerAddress",
    "RecordType",
    "Subject",
    "make_record",
    "names",
    "per_record_entries",
    "select_headers",
    "select_meta",
]
