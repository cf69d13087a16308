"""The responses kumocore makes up itself, in the words KumoMTA uses for them.

A log record's ``response`` is usually the peer's reply. When no peer said anything (no
host could be reached, the MX lookup failed, the message expired, an operator bounced
it), kumocore writes a response of its own. Log parsers, bounce classifier rules and
traffic shaping automation rules are written against KumoMTA's texts for these cases,
so they are built here, in one place, with KumoMTA's code, enhanced code and wording
(and its ``KumoMTA internal: `` prefix where KumoMTA puts one: automation rules match
such responses only with ``match_internal = true``). Where kumocore knows more than
KumoMTA's text says (which hosts failed, and how), the detail goes where KumoMTA puts
its own detail. Durations and times are printed as KumoMTA's Rust code prints them (a
timeout as Rust's ``Duration`` debug form, ``300s``; an age as humantime, ``5m``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from kumocore.config.duration import humantime
from kumocore.mail.response import EnhancedCode, Response

__all__ = [
    "BULK_DELAY",
    "EIGHT_BIT_BODY",
    "EIGHT_BIT_ENVELOPE",
    "INTERNAL_PREFIX",
    "MAX_HOSTS_LISTED",
    "MAX_HOST_REASON",
    "ONLY_SKIP_HOSTS",
    "PAYLOAD_TIMED_OUT",
    "RETURNED_TO_SCHEDULED_QUEUE",
    "admin_bounce",
    "chrono_utc",
    "connect_failed",
    "debug_duration",
    "delayed",
    "deliver_error",
    "expired_due",
    "expired_max_age",
    "expired_schedule",
    "human_duration",
    "insert_throttled",
    "internal",
    "iso_duration",
    "mx_unresolved",
    "no_eligible_sources",
    "no_sources",
    "null_mx",
    "prohibited_host",
    "queue_rate_throttled",
    "queue_suspended",
    "queue_unresolved",
    "rebound",
    "send_failed",
    "send_timed_out",
    "send_write_timed_out",
    "utc_time",
]

#: What every KumoMTA-internal response's content starts with.
INTERNAL_PREFIX = "KumoMTA internal: "


def _make(code: int, enhanced: str | None, content: str, command: str | None = None) -> Response:
    klass = subject = detail = 0
    if enhanced is not None:
        klass, subject, detail = (int(part) for part in enhanced.split("."))
    return Response(code=code, content=content, command=command,
                    enhanced_code=EnhancedCode(klass, subject, detail) if enhanced else None)


def internal(code: int, enhanced: str | None, text: str, command: str | None = None) -> Response:
    """A response whose content carries the ``KumoMTA internal: `` prefix."""
    return _make(code, enhanced, INTERNAL_PREFIX + text, command)


# ------------------------------------------------------------------ connecting
#: Bounds of a connection failure's text, which goes into the log record of every message
#: the round failed: a peer's refusal may be 100 lines of 4 KiB (the reply reader's
#: bounds), and a site may have many hosts. Past them the text is cut, saying so.
MAX_HOST_REASON = 512
MAX_HOSTS_LISTED = 16


def connect_failed(failures: Sequence[str]) -> Response:
    """No candidate host took a connection; ``failures`` say, per host, why (joined with
    ``", "`` as KumoMTA joins them). Code 400 without enhanced code: transient."""
    listed = [_cut(reason, MAX_HOST_REASON) for reason in failures[:MAX_HOSTS_LISTED]]
    if len(failures) > MAX_HOSTS_LISTED:
        listed.append(f"and {len(failures) - MAX_HOSTS_LISTED} more hosts")
    return internal(400, None, "failed to connect to any candidate hosts: " + ", ".join(listed))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mx_unresolved(errors: Sequence[str] = ()) -> Response:
    """The MX hosts gave no address to connect to (the lookups' errors appended)."""
    text = "MX didn't resolve to any hosts"
    return _make(451, "4.4.4", f"{text}: {'; '.join(errors)}" if errors else text)


def null_mx() -> Response:
    """The domain publishes a null MX (RFC 7505): it takes no mail, a bounce."""
    return _make(556, "5.1.10", "Recipient address has a null MX")


def prohibited_host(address: str, hosts: str) -> Response:
    """An MX address is one the path may never connect to (a mail loop): a bounce."""
    return _make(550, "5.4.4", f"{address} is on the list of prohibited_hosts {hosts}")


#: Every MX address was excluded by ``skip_hosts`` (transient: the list may change).
ONLY_SKIP_HOSTS = internal(451, "4.4.4", "MX consisted solely of hosts on the skip_hosts list")

#: KumoMTA's response for the messages of a ready queue delayed after too many rounds.
BULK_DELAY = _make(
    451, "4.4.1", "bulk delay of ready queue: too many successive connection failures "
    "where there was no answer from any hosts listed in MX")


# ------------------------------------------------------------------ routing
def queue_unresolved(queue_name: str, error: str) -> Response:
    """The scheduled queue could not be tied to a ready queue (MX lookup, egress path
    or source configuration failed)."""
    return _make(451, "4.4.4", f"failed to resolve queue {queue_name}: {error}")


def queue_suspended(reason: str) -> Response:
    """An operator's suspension (``/api/admin/suspend/v1``) holds the message's scheduled
    queue: a transient failure, retried on the queue's schedule."""
    return internal(451, "4.4.4", f"scheduled queue is suspended: {reason}")


def queue_rate_throttled(queue_name: str, delay_seconds: int) -> Response:
    """The scheduled queue's ``max_message_rate`` holds the message back for
    ``delay_seconds`` (KumoMTA's throttles wait whole seconds); the delay is printed as
    KumoMTA prints its time-delta type with ``{:?}``."""
    return internal(451, "4.4.4", f"{queue_name} throttled message rate, "
                    f"delay=TimeDelta {{ secs: {delay_seconds}, nanos: 0 }}")


def insert_throttled(queue_name: str, due: float) -> Response:
    """The ``throttle_insert_ready_queue`` event pushed the message's due time to ``due``
    (what the ``requeue_message`` event is told)."""
    return internal(451, "4.4.4", f"{queue_name} throttle_insert_ready_queue event "
                    f"throttled message rate, due={chrono_utc(due)}")


def delayed(context: str, due: float, now: float) -> Response:
    """A ``Delayed`` record's response: why the message waits in its scheduled queue
    (``context``: KumoMTA's insert reasons, ``Received, ScheduledForLater``), how long
    (humantime) and until when (chrono's debug form). ``400``, no enhanced code."""
    return _make(400, None, f"Context: {context}. Next due in "
                 f"{human_duration(max(0.0, due - now))} at {chrono_utc(due)}")


#: What ``requeue_message`` is told when an operator aborted the connection that held
#: the message (KumoMTA's dispatcher drop): it goes back to its scheduled queue.
RETURNED_TO_SCHEDULED_QUEUE = internal(451, "4.4.1", "returning message to scheduled queue")


def no_sources(queue_name: str, pool: str) -> Response:
    """The queue's egress pool has no source to send from."""
    return internal(451, "4.4.4", f"no sources available for {queue_name} pool=`{pool}`")


def no_eligible_sources(queue_name: str, pool: str) -> Response:
    """Every source of the queue's pool is past a ``source_selection_rate`` (or one of
    ``additional_source_selection_rates``) for now: a transient failure, retried on the
    queue's schedule."""
    return internal(451, "4.4.4", f"no sources for {queue_name} pool=`{pool}` are eligible "
                    "for selection at this time")


# ------------------------------------------------------------------ sending
def send_timed_out(site: str, peer: str, seconds: float, command: str) -> Response:
    """The MX did not answer ``command`` in time; the session is given up."""
    return internal(421, "4.4.2", f"failed to send message to {site} {peer}: Timed Out "
                    f"waiting {debug_duration(seconds)} for response to {command}",
                    command=command)


def send_write_timed_out(site: str, peer: str, seconds: float, commands: str) -> Response:
    """The MX did not take the ``commands`` kumocore wrote (its receive window stayed
    full) in time; the session is given up."""
    return internal(421, "4.4.2", f"failed to send message to {site} {peer}: Timed Out "
                    f"waiting {debug_duration(seconds)} to write {commands}",
                    command=commands)


#: The MX stopped taking the message body before it was all written.
PAYLOAD_TIMED_OUT = internal(
    400, None, "failed to send message: Timed Out sending message payload data")


def send_failed(error: str, command: str | None) -> Response:
    """The session broke while sending (connection lost, TLS error, bad reply)."""
    return internal(400, None, f"failed to send message: {error}", command=command)


def deliver_error(error: str) -> Response:
    """Delivery could not even start for a message (its body could not be read)."""
    return internal(400, None, f"error in deliver_message: {error}")


#: The MX lacks 8BITMIME and the body has 8-bit bytes: a bounce for this destination.
EIGHT_BIT_BODY = internal(
    554, "5.6.3", "DATA is 8bit, destination does not support 8BITMIME. Conversion via "
    "msg:check_fix_conformance during reception is required")
#: The MX lacks SMTPUTF8 and the envelope is UTF-8.
EIGHT_BIT_ENVELOPE = internal(
    554, "5.6.7", "envelope is 8bit, destination does not support SMTPUTF8.")


# ------------------------------------------------------------------ final outcomes
def expired_max_age(delayed_age: float, max_age: float) -> Response:
    """The next retry would come after the queue's ``max_age``."""
    return _make(551, "5.4.7", f"Next delivery time would be {human_duration(delayed_age)} "
                 f"after creation, which exceeds max_age={human_duration(max_age)}")


def expired_schedule(next_due: float, expires: float) -> Response:
    """The next retry would come after the ``expires`` of ``msg:set_scheduling``."""
    return _make(551, "5.4.7", f"Next delivery time would be at {utc_time(next_due)} which "
                 f"exceeds the expiry time {utc_time(expires)} configured via set_scheduling")


def expired_due(due_age: float, max_age: float) -> Response:
    """The message came due (or was found) older than ``max_age``."""
    return _make(551, "5.4.7",
                 f"Next delivery time {iso_duration(due_age)} > {iso_duration(max_age)}")


def rebound(old_queue: str, new_queue: str, reason: str) -> Response:
    """An operator's rebind moved the message to another queue (``AdminRebind``)."""
    return _make(250, None, f"Rebound from {old_queue} to {new_queue}: {reason}")


def admin_bounce(reason: str) -> Response:
    """An operator's bounce (``/api/admin/bounce/v1``, ``kcli bounce``)."""
    return _make(551, "5.7.1", f"Administrator bounced with reason: {reason}")


# ------------------------------------------------------------------ formatting
def human_duration(seconds: float) -> str:
    """``seconds`` as KumoMTA prints a duration in texts: ``"7days 2h 3m 4s 5ms"``
    (humantime's form, to the microsecond; ``"0s"`` for nothing)."""
    return humantime(max(0, round(seconds * 1_000_000)) * 1000)


def debug_duration(seconds: float) -> str:
    """``seconds`` as Rust prints a ``Duration`` with ``{:?}`` (KumoMTA's timeout texts):
    ``"300s"``, ``"1.5s"``, ``"250ms"``, ``"0ns"`` (kumocore keeps nanoseconds at most)."""
    nanos = max(0, round(seconds * 1_000_000_000))
    for size, unit in ((1_000_000_000, "s"), (1_000_000, "ms"), (1000, "\u00b5s")):
        if nanos >= size:
            whole, rest = divmod(nanos, size)
            digits = len(str(size)) - 1
            fraction = f".{rest:0{digits}d}".rstrip("0") if rest else ""
            return f"{whole}{fraction}{unit}"
    return f"{nanos}ns"


def iso_duration(seconds: float) -> str:
    """``seconds`` as KumoMTA's time-delta type prints itself: ``"PT3600.5S"``."""
    sign = "-" if seconds < 0 else ""
    nanos = round(abs(seconds) * 1_000_000) * 1000  # kumocore keeps microseconds at most
    whole, fraction = divmod(nanos, 1_000_000_000)
    if not whole and not fraction:
        return f"{sign}P0D"
    digits = f".{fraction:09d}".rstrip("0") if fraction else ""
    return f"{sign}PT{whole}{digits}S"


def chrono_utc(stamp: float) -> str:
    """A unix time as Rust's chrono prints a UTC time with ``{:?}``:
    ``"2026-12-06T02:44:00.123456Z"`` (the fraction in 3, 6 or 9 digits, none when whole;
    kumocore keeps microseconds)."""
    moment = datetime.fromtimestamp(round(stamp, 6), UTC)
    micros = moment.microsecond
    fraction = "" if not micros else (
        f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def utc_time(stamp: float) -> str:
    """A unix time as KumoMTA prints a UTC time: ``"2026-12-05 23:44:24.5 UTC"`` (the
    fraction in 3, 6 or 9 digits, none when whole)."""
    moment = datetime.fromtimestamp(stamp, UTC)
    micros = moment.microsecond
    fraction = "" if not micros else (
        f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + fraction + " UTC"
