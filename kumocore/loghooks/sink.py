"""A log hook as a log sink: each record it wants becomes a spooled message.

The dispatcher feeds the hook like any sink (own bounded lane, batches, retry until
written), and a record only counts as written once its message is in the spool. That is
what makes hook delivery durable: the original message is not deleted before its record
is either spooled as a hook message or refused by ``should_enqueue_log_record``; a crash
in between logs it again on restart (at-least-once).

As in KumoMTA, the hook message has the record's sender and recipient, the record's
(selected) meta, ``log_record`` meta holding the JSON record, ``reception_protocol`` =
``"LogRecord"``, and the record's JSON (plus a newline) as its body. Records about hook
messages themselves (``reception_protocol == "LogRecord"``) are never hooked again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from kumocore.loghooks.options import LOG_RECORD_PROTOCOL, LogHookConfig
from kumocore.queue.insert_context import RECEIVED

if TYPE_CHECKING:
    from kumocore.logs.record import LogRecord
    from kumocore.mail.message import Message
    from kumocore.policy.policy_host import PolicyHost

log = structlog.get_logger("kumocore.loghooks")

#: How many records one ``write_batch`` turns into messages (saves overlap in the spool).
HOOK_BATCH_SIZE = 256


class LogHookSink:
    """The sink behind one ``kumo.configure_log_hook``: records → spooled messages."""

    def __init__(self, runtime: PolicyHost, config: LogHookConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.name = f"log_hook:{config.name}"
        self.logger_name = f"hook-{config.name}"  # KumoMTA's ``logger`` label on /metrics
        self.header_names = config.headers
        self.buffer_size = config.back_pressure
        self.batch_size = HOOK_BATCH_SIZE
        #: Counters: ``enqueued`` (spooled), ``declined`` (the event said no),
        #: ``skipped`` (hook messages' own records, disabled types), ``unusable`` (no
        #: recipient), ``errors`` (the event failed).
        self.counts = {"enqueued": 0, "declined": 0, "skipped": 0, "unusable": 0,
                       "errors": 0}
        # Records of a batch already spooled, so a retried batch does not spool them
        # twice (the dispatcher retries the whole batch; ids are stable meanwhile).
        self._done: set[int] = set()

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        todo = [r for r in records if id(r) not in self._done]
        messages = await asyncio.gather(*(self._admit(r) for r in todo))
        pairs = [(r, m) for r, m in zip(todo, messages, strict=True) if m is not None]
        # Records not to be queued are done already: a retry must not ask the event again.
        self._done.update(id(r) for r, m in zip(todo, messages, strict=True) if m is None)
        results = await asyncio.gather(*(self._spool(m) for _, m in pairs),
                                       return_exceptions=True)
        failed = 0
        for (record, _), result in zip(pairs, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                last: BaseException = result
            else:
                self._done.add(id(record))
        if failed:
            raise RuntimeError(f"log hook {self.config.name!r}: {failed} record(s) could "
                               f"not be spooled: {last}")
        self._done.clear()  # the whole batch is in: ids may be reused from now on

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ steps
    async def _admit(self, record: LogRecord) -> Message | None:
        """The hook message for ``record``, or None when it is not to be queued."""
        if record.reception_protocol == LOG_RECORD_PROTOCOL or not self.config.wants(
                record.type.value):
            self.counts["skipped"] += 1
            return None
        try:
            message = self._message(record)
        except (ValueError, TypeError) as exc:
            # e.g. a Rejection record has no recipient: there is nothing to address.
            self.counts["unusable"] += 1
            log.debug("log record not usable as a hook message", hook=self.config.name,
                      type=record.type.value, id=record.id, error=str(exc))
            return None
        try:
            wanted = await self.runtime.hooks.should_enqueue_log_record(
                message, self.config.name)
        except Exception as exc:
            # As KumoMTA does: a failing handler loses this hook record (the local logs
            # still have it) rather than stalling every log sink behind it.
            self.counts["errors"] += 1
            log.error("should_enqueue_log_record failed; record not queued to the hook",
                      hook=self.config.name, id=record.id, error=str(exc))
            return None
        if not wanted:
            self.counts["declined"] += 1
            return None
        return message

    def _message(self, record: LogRecord) -> Message:
        from kumocore.mail.message import Message

        as_json: dict[str, Any] = record.to_json(self.config.meta, self.config.headers)
        body = orjson.dumps(as_json) + b"\n"
        message = Message(record.sender, record.recipient, body, meta=as_json["meta"])
        message.set_meta("log_record", as_json)
        message.set_meta("reception_protocol", LOG_RECORD_PROTOCOL)
        return message

    async def _spool(self, message: Message) -> None:
        """Save and queue one hook message (no Reception record, as in KumoMTA)."""
        services = self.runtime.services
        if services is None:
            raise RuntimeError("log hook used before the spool was started")
        queue, config = await services.intake.resolve_queue_config(message)
        if config is None:
            self.counts["declined"] += 1  # routed to the null queue by the policy
            return
        await services.store.save(message)
        services.queues.insert(message, queue, config, RECEIVED)
        self.counts["enqueued"] += 1
