"""More of KumoMTA's message methods, mixed into :class:`kumocore.mail.message.Message`.

Kept apart from ``message.py`` (envelope, meta, headers, spool records) because these are
policy conveniences built on other subsystems — scheduling, conformance repair, DKIM
verification, report and MIME parsing. Every method uses only the message's public API.
Names, arguments and results are KumoMTA's (docs/reference/message/*).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from kumocore.mail.scheduling import META_KEY, Schedule, ScheduleError, message_schedule
from kumocore.policy.policyfn import lua_type_name

if TYPE_CHECKING:
    from kumocore.mail.address import EnvelopeAddress
    from kumocore.mail.mime_view import MimePart


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _dsn_table(report: Any) -> dict[str, Any]:
    """A parsed RFC 3464 report in KumoMTA's shape (per_message, per_recipient...)."""

    def mta(value: Any) -> dict[str, str] | None:
        return None if value is None else value.to_dict()

    def rcpt(value: Any) -> dict[str, str] | None:
        return None if value is None else {
            "recipient_type": value.recipient_type, "recipient": value.recipient}

    return {
        "per_message": {
            "original_envelope_id": report.original_envelope_id,
            "reporting_mta": mta(report.reporting_mta),
            "dsn_gateway": mta(report.dsn_gateway),
            "received_from_mta": mta(report.received_from_mta),
            "arrival_date": _iso(report.arrival_date),
            "extensions": report.extensions,
        },
        "per_recipient": [
            {
                "final_recipient": rcpt(entry.final_recipient),
                "action": entry.action.lower(),
                "status": {**entry.status.to_enhanced_code(), "comment": entry.status.comment},
                "original_recipient": rcpt(entry.original_recipient),
                "remote_mta": mta(entry.remote_mta),
                "diagnostic_code": None if entry.diagnostic_code is None else {
                    "diagnostic_type": entry.diagnostic_code.diagnostic_type,
                    "diagnostic": entry.diagnostic_code.diagnostic},
                "last_attempt_date": _iso(entry.last_attempt_date),
                "final_log_id": entry.final_log_id,
                "will_retry_until": _iso(entry.will_retry_until),
                "extensions": entry.extensions,
            }
            for entry in report.per_recipient
        ],
        "original_message": report.original_message,
    }


class MessageMethods:
    """Mixin of :class:`kumocore.mail.message.Message` (no state of its own)."""

    if TYPE_CHECKING:
        # Message's own slots: declared here for the type checker only.
        meta: dict[str, Any]
        due: float | None
        num_attempts: int
        recipient: EnvelopeAddress

        @property
        def recipients(self) -> tuple[EnvelopeAddress, ...]: ...


        def get_data(self) -> bytes: ...
        def set_data(self, data: bytes | str) -> None: ...
        def get_first_named_header_value(self, name: str) -> str | None: ...
        def remove_all_named_headers(self, name: str) -> None: ...
        def _prepend(self, lines: bytes) -> None: ...

    else:
        __slots__ = ()  # Message has __slots__; an empty base keeps it dict-free

    # ------------------------------------------------------------------ envelope
    def recipient_list(self) -> list[EnvelopeAddress]:
        """``msg:recipient_list()``: every envelope recipient, the first first."""
        return list(self.recipients)

    # ------------------------------------------------------------------ scheduling
    def set_scheduling(self, table: Mapping[str, Any] | None = None) -> dict[str, str] | None:
        """``msg:set_scheduling{first_attempt=, expires=, dow=, tz=, start=, ['end']=}``;
        ``nil`` clears it. Returns the schedule as a table."""
        if table is None:
            self.meta.pop(META_KEY, None)
            return None
        if not isinstance(table, Mapping):
            raise ScheduleError("msg:set_scheduling takes a table or nil")
        schedule = Schedule.parse(table)
        self.meta[META_KEY] = schedule.to_table()
        now = time.time()
        due = schedule.adjust(max(now, self.due or now))
        self.due = due if due > now else self.due
        return schedule.to_table()

    def get_scheduling(self) -> dict[str, str] | None:
        """``msg:get_scheduling()``: the table ``set_scheduling`` stored, or nil."""
        schedule = message_schedule(self.meta)
        return None if schedule is None else schedule.to_table()

    def import_scheduling_header(
        self, header_name: str, remove: bool = False
    ) -> dict[str, str] | None:
        """Apply the JSON scheduling table in header ``header_name``; nil if absent."""
        value = self.get_first_named_header_value(header_name)
        if value is None:
            return None
        try:
            table = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ScheduleError(f"{header_name}: not a JSON scheduling object: {exc}") from None
        if not isinstance(table, dict):
            raise ScheduleError(f"{header_name}: not a JSON scheduling object")
        result = self.set_scheduling(table)
        if remove:
            self.remove_all_named_headers(header_name)
        return result

    def set_due(self, due: str | None = None) -> None:
        """``msg:set_due(nil | 'RFC 3339 time')``: the next delivery attempt time."""
        if due is None:
            self.due = None
            return
        try:
            when = dt.datetime.fromisoformat(str(due).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ScheduleError(f"msg:set_due: {due!r} is not an ISO 8601 date/time") from exc
        if when.tzinfo is None:
            raise ScheduleError(f"msg:set_due: {due!r} has no UTC offset")
        self.due = when.timestamp()

    # ------------------------------------------------------------------ content
    def check_fix_conformance(
        self, checks: str | None = None, fixes: str | None = None, settings: Any = None
    ) -> str | None:
        """Nil when fine (after fixing ``fixes``), else ``'Message has conformance
        issues: A|B'`` for the issues in ``checks``."""
        from kumocore.mail.conformance import check_fix, parse_issue_set

        if settings is not None:
            raise ValueError("msg:check_fix_conformance: OPT_SETTINGS is not supported by "
                             "kumocore yet")
        error, data = check_fix(self.get_data(), parse_issue_set(checks, "CHECKS"),
                                parse_issue_set(fixes, "FIXES"))
        if error is None and data != self.get_data():
            self.set_data(data)
        return error

    async def dkim_verify(self, resolver_name: str | None = None) -> list[dict[str, Any]]:
        """One authentication result per DKIM signature (see kumocore.dkim.verify)."""
        from kumocore.dkim.verify import verify_message

        return await verify_message(self.get_data(), resolver_name)

    async def arc_verify(self, resolver_name: str | None = None) -> dict[str, Any]:
        """The ARC chain's authentication result (see kumocore.dkim.arc)."""
        from kumocore.dkim.arc import arc_verify

        return await arc_verify(self.get_data(), resolver_name)

    async def arc_seal(self, signer: Any, server_id: Any, results: Any,
                       resolver_name: str | None = None) -> None:
        """Add this hop's ARC set on top, unless the chain already fails
        (see kumocore.dkim.arc_seal)."""
        from kumocore.dkim.arc_seal import arc_seal

        headers = await arc_seal(self.get_data(), signer, server_id, results, resolver_name)
        if headers is None:
            return
        from kumocore.mail.headers import newline_of

        if newline_of(self.get_data()) == b"\n":  # new lines match the message's own
            headers = headers.replace(b"\r\n", b"\n")
        self._prepend(headers)

    def append_text_plain(self, content: str) -> bool:
        """Append ``content`` to the primary text/plain part (:mod:`.text_append`);
        False when the message has none."""
        return self._append_text("text/plain", content)

    def append_text_html(self, content: str) -> bool:
        """Insert ``content`` ahead of ``</body>`` in the primary text/html part (appended
        when there is no body tag); False when the message has none."""
        return self._append_text("text/html", content)

    def _append_text(self, content_type: str, content: str) -> bool:
        from kumocore.mail.text_append import append_text

        if not isinstance(content, str):
            raise TypeError(f"expected a string to append, got {lua_type_name(content)}")
        data = append_text(self.get_data(), content_type, content)
        if data is None:
            return False
        self.set_data(data)
        return True

    def parse_rfc3464(self) -> dict[str, Any] | None:
        """The delivery status report this message is, or nil; malformed raises."""
        from kumocore.reports.rfc3464 import parse_rfc3464

        report = parse_rfc3464(self.get_data())
        return None if report is None else _dsn_table(report)

    def parse_rfc5965(self) -> dict[str, Any] | None:
        """The ARF feedback report this message is, or nil; malformed raises."""
        from kumocore.reports.rfc5965 import parse_rfc5965

        return parse_rfc5965(self.get_data())

    def parse_mime(self) -> MimePart:
        """A read-only MIME view for header and part inspection."""
        from kumocore.mail.mime_view import parse_mime

        return parse_mime(self.get_data())

    # ------------------------------------------------------------------ spool
    def increment_num_attempts(self) -> None:
        """``msg:increment_num_attempts()``: one more delivery attempt counted. (kumocore
        spools the count with the meta whenever the message is next saved.)"""
        self.num_attempts += 1

    def set_force_sync(self, force: bool) -> None:
        """``msg:set_force_sync(bool)``: accepted; no effect. Every kumocore spool write is
        already a high-durability one (synced before it returns), whatever this says."""
        if not isinstance(force, bool):
            raise TypeError(f"msg:set_force_sync expects a boolean, got {lua_type_name(force)}")

    def save(self) -> None:
        """``msg:save()`` is refused: a kumocore message does not know its spool. kumocore
        itself saves a message once reception accepts it and again when its queue state
        changes, so policies do not need to."""
        raise NotImplementedError(
            "msg:save() is not supported by kumocore yet: a message is written to the "
            "spool by kumocore itself, after reception and on queue changes")

    # ------------------------------------------------------------------ memory
    def shrink(self) -> None:
        """Accepted for compatibility. kumocore already drops a queued message's body from
        memory once it is spooled; before that (in reception events) it must stay."""

    def shrink_data(self) -> None:
        """As :meth:`shrink`."""
