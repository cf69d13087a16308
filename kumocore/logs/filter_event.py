"""``filter_event``: a policy event that decides, message by message, what a sink logs.

KumoMTA's ``configure_local_logs { filter_event = 'name' }`` calls the policy's event
``name(msg)`` for every record about a message, once per sink that names it, and writes
the record to that sink only when the answer is true. What kumocore keeps from KumoMTA:

* the answer is read with Lua truthiness: ``nil``, ``false`` or no value at all skip the
  record; anything else (``0``, ``''``, a table) logs it;
* a handler that raises skips the record for that sink (the error is logged);
* an event nobody registered skips every record (KumoMTA's default answer is false);
  kumocore also warns once per event name, since that is almost always a typo;
* ``Rejection`` records have no message and are never filtered, and a record type the
  sink does not log at all (``per_record { X = { enable = false } }``) is not asked about.

Where it runs: in the log dispatcher's drain task, on the event loop that runs the Lua
policy, just before a batch goes to the sink (whose writer thread must never call Lua).
The journal hands the message along with each record; only the lane of a sink with a
``filter_event`` keeps it, so sinks without one pay nothing. A failed batch is retried
with the records already chosen: the event is asked once per record and sink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    import pluggy

    from kumocore.logs.record import LogRecord
    from kumocore.logs.sink import LogSink

log = structlog.get_logger("kumocore.logs")

#: ``await log_filter(event, message)``: whether the policy's ``event`` wants ``message``.
LogFilter = Callable[[str, Any], Awaitable[bool]]


def lua_truthy(value: Any) -> bool:
    """Lua's truth: only ``nil`` (None) and ``false`` are false."""
    return value is not None and value is not False


def policy_log_filter(pm: pluggy.PluginManager) -> LogFilter:
    """The :data:`LogFilter` that calls the loaded policy's custom event by name.

    The policy plugin is found once (a runtime ``Protocol`` check costs more than the
    handler); whether it handles the event is asked on every call, so a policy reload that
    adds or fixes the handler takes effect.
    """
    from kumocore.policy.custom_events import CustomEventSource
    from kumocore.policy.plugins import POLICY_PLUGIN_NAME

    warned: set[str] = set()
    found: list[CustomEventSource | None] = []

    async def log_filter(event: str, message: Any) -> bool:
        if not found:
            policy = pm.get_plugin(POLICY_PLUGIN_NAME)
            found.append(policy if isinstance(policy, CustomEventSource) else None)
        source = found[0]
        if source is None or not source.has_custom_event(event):
            if event not in warned:
                warned.add(event)
                log.warning(
                    "filter_event names an event the policy does not register: "
                    "records it filters are not logged (as in KumoMTA)",
                    filter_event=event,
                )
            return False
        return lua_truthy(await source.call_custom_event(event, message))

    return log_filter


async def filter_batch(
    log_filter: LogFilter,
    sink: LogSink,
    event: str,
    records: Sequence[LogRecord],
    messages: Sequence[Any],
    counts: MutableMapping[str, int],
) -> list[LogRecord]:
    """The records of a batch that ``sink`` logs, asking ``event`` about each one that has
    a message; ``counts["filtered"]`` counts the records left out."""
    enabled: Callable[[str], bool] | None = getattr(sink, "record_enabled", None)
    kept: list[LogRecord] = []
    for record, message in zip(records, messages, strict=True):
        if message is None or (enabled is not None and not enabled(record.type.value)):
            kept.append(record)  # nothing to ask about, or the sink drops it anyway
            continue
        try:
            wanted = await log_filter(event, message)
        except Exception as exc:
            log.error(
                "filter_event handler failed; record not logged to this sink",
                sink=sink.name,
                filter_event=event,
                id=record.id,
                type=record.type.value,
                error=str(exc),
            )
            wanted = False
        if wanted:
            kept.append(record)
        else:
            counts["filtered"] += 1
    return kept
