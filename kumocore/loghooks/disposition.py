"""``kumo.configure_log_disposition_hook { name = ... }``: a policy handler per log record.

KumoMTA's disposition hook calls the event ``log_disposition_<name>(msg, log_record)`` for
each record about a message, while that message still exists — the documented way to send
delivery status notifications (``kumo.generate_rfc3464_message`` + ``kumo.inject_message``
from ``log_hooks:new_disposition_hook``). kumocore feeds it as a log sink: a message with a
final outcome leaves the spool only once every sink wrote its record, so the handler sees
the message (and can read its body from the spool) before it is deleted.

Handlers: the Lua policy's ``kumo.on('log_disposition_<name>', fn)`` and every Python
``kumo_log_disposition(hook_name, message, log_record)`` implementation. As in KumoMTA,
records of log-hook messages (``reception_protocol == "LogRecord"``) and records with no
message (``Rejection``) are not handed over, and a failing handler is logged, never
retried: it must not hold the message, or every other log sink, back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from kumocore.errors import ConfigError
from kumocore.loghooks.options import LOG_RECORD_PROTOCOL, parse_per_record

if TYPE_CHECKING:
    from kumocore.logs.record import LogRecord

log = structlog.get_logger("kumocore.loghooks")

_FN = "configure_log_disposition_hook"
_KEYS = frozenset({"name", "per_record"})
#: Records handed to the handlers at once (they run concurrently within a batch).
BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class DispositionHookConfig:
    name: str
    enabled: Mapping[str, bool] = field(default_factory=dict)

    @property
    def event(self) -> str:
        """The Lua event KumoMTA calls: ``log_disposition_<name>``."""
        return f"log_disposition_{self.name}"

    def wants(self, record_type: str) -> bool:
        if record_type in self.enabled:
            return self.enabled[record_type]
        return self.enabled.get("Any", True)


def parse_disposition_options(options: Mapping[str, Any]) -> DispositionHookConfig:
    """KumoMTA's options (``name``, ``per_record``); anything else is an error."""
    for unknown in sorted(set(options) - _KEYS):
        raise ConfigError(f"{_FN}: unknown option {unknown!r} (known: name, per_record)")
    name = options.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{_FN}: name is required (a non-empty string)")
    enabled: dict[str, bool] = {}
    if options.get("per_record") is not None:
        enabled = parse_per_record(options["per_record"], _FN)
    return DispositionHookConfig(name, enabled)


class DispositionHandlers(Protocol):
    """What the sink needs from the server
    (:class:`kumocore.loghooks.policy_dispositions.PolicyDispositions` provides it over
    the runtime; kept abstract so this module stays out of the runtime's
    import circle)."""

    def has_handler(self, event: str) -> bool:
        """Whether the policy or a plugin handles ``event`` (or the Python hook)."""
        ...

    def message(self, message_id: str) -> Any | None:
        """The queued message with this id, while the queue still owns it."""
        ...

    async def call(self, hook_name: str, event: str, message: Any,
                   log_record: dict[str, Any]) -> None:
        """Run the Lua handler of ``event`` and every ``kumo_log_disposition``."""
        ...


class DispositionHookSink:
    """The sink behind one disposition hook: each wanted record → the policy's handlers."""

    def __init__(self, handlers: DispositionHandlers, config: DispositionHookConfig) -> None:
        self.handlers = handlers
        self.config = config
        self.name = f"log_disposition:{config.name}"
        self.logger_name = f"hook-{config.name}"  # KumoMTA's ``logger`` label on /metrics
        self.batch_size = BATCH_SIZE
        #: ``called`` (handlers ran), ``skipped`` (hook records, disabled types, no
        #: message), ``errors`` (a handler failed).
        self.counts = {"called": 0, "skipped": 0, "errors": 0}

    def check_handlers(self) -> None:
        """Refuse a hook nothing would handle (a typo in the event name, most likely)."""
        if not self.handlers.has_handler(self.config.event):
            raise ConfigError(
                f"{_FN}: nothing handles hook {self.config.name!r}: register "
                f"kumo.on('{self.config.event}', function(msg, log_record) ... end) in Lua, "
                "or implement kumo_log_disposition in Python")

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        await asyncio.gather(*(self._one(record) for record in records))

    async def close(self) -> None:
        return None

    def _message(self, record: LogRecord) -> Any | None:
        if record.reception_protocol == LOG_RECORD_PROTOCOL or not record.id \
                or not self.config.wants(record.type.value):
            return None
        # The queue owns the message until its final record is written (this one).
        return self.handlers.message(record.id)

    async def _one(self, record: LogRecord) -> None:
        message = self._message(record)
        if message is None:
            self.counts["skipped"] += 1
            return
        as_json = record.to_json()  # no meta or headers selected, as in KumoMTA
        try:
            await self.handlers.call(self.config.name, self.config.event, message, as_json)
            self.counts["called"] += 1
        except Exception as exc:
            self.counts["errors"] += 1
            log.error("log disposition hook failed", hook=self.config.name, id=record.id,
                      type=record.type.value, error=str(exc))
