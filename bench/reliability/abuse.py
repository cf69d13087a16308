"""Hostile clients: relay abuse, SMTP smuggling, fuzzed sessions, floods and slow clients.

Everything here talks to a running kumocore (a :class:`bench.reliability.crash.KumoServer`) over
loopback with blocking sockets, so the same functions serve the pytest suite
(``tests/reliability``) and the bench (``python -m bench.reliability``). Untrusted peers
bind their client socket to ``127.0.0.5``; the bench listener trusts ``127.0.0.1`` only.

* :data:`RELAY_CASES` — issue 9 part 3 / peers.md tests 1-2: routing tricks aimed at a
  foreign domain (``%``-hack, source routes, quoted local parts with ``@``, ``!`` paths,
  case and trailing-dot variants, IP literals) must get a 5xx and never reach the sink,
  while the listener's ``relay_to`` domain still accepts.
* :data:`SMUGGLING_VARIANTS` — peers.md test 4: a DATA section hiding a second transaction
  behind a non-CRLF end-of-data must give exactly one message or a 5xx, never two.
* :func:`smtp_sessions` — a hypothesis strategy of whole sessions (command orders, huge
  lines, binary bytes, NUL, smuggling, unterminated DATA, pauses); :func:`play` runs one
  and :func:`check_played` states what must hold.
* :func:`connection_flood`, :func:`idle_client`, :func:`trickle_client`,
  :func:`hold_connections` — resource limits (issue 9 part 4).
"""

from __future__ import annotations

from bench.common.client import (
    TRUSTED,
    UNTRUSTED,
    ProtocolViolation,
    SyncClient,
    body_for,
    parse_replies,
    probe,
    wait_until,
)
from bench.common.smtp_client import Reply
from bench.reliability.abuse_fuzz import (
    TAG,
    Played,
    check_played,
    model_accepted,
    play,
    smtp_sessions,
)
from bench.reliability.abuse_http import HttpFuzzReport, http_fuzz
from bench.reliability.abuse_limits import (
    FloodResult,
    connection_flood,
    hold_connections,
    idle_client,
    trickle_client,
)
from bench.reliability.abuse_policy import (
    BOOM_DOMAINS,
    BUILTIN_PLUGINS,
    FAILING_EVENTS,
    POLICY_FAILURES,
    WRONG_ARGUMENTS,
    kumo_wrong_types,
    policy_failure_problem,
    policy_failure_session,
    unclear_error,
)
from bench.reliability.abuse_relay import (
    RELAY_CASES,
    ROUTING_SYNTAX_CASES,
    F,
    R,
    RelayCase,
    RelayResult,
    run_relay_battery,
    try_relay,
)
from bench.reliability.abuse_smuggling import SMUGGLING_VARIANTS, SmugglingResult, try_smuggling
from bench.reliability.abuse_spool import meta_record, new_id, undecodable_records
from bench.reliability.crash import CRASH_DOMAIN, FOREIGN_DOMAIN, RELAY_DOMAIN

__all__ = [
    "BOOM_DOMAINS",
    "BUILTIN_PLUGINS",
    "CRASH_DOMAIN",
    "FAILING_EVENTS",
    "FOREIGN_DOMAIN",
    "POLICY_FAILURES",
    "RELAY_CASES",
    "RELAY_DOMAIN",
    "ROUTING_SYNTAX_CASES",
    "SMUGGLING_VARIANTS",
    "TAG",
    "TRUSTED",
    "UNTRUSTED",
    "WRONG_ARGUMENTS",
    "F",
    "FloodResult",
    "HttpFuzzReport",
    "Played",
    "ProtocolViolation",
    "R",
    "RelayCase",
    "RelayResult",
    "Reply",
    "SmugglingResult",
    "SyncClient",
    "body_for",
    "check_played",
    "connection_flood",
    "hold_connections",
    "http_fuzz",
    "idle_client",
    "kumo_wrong_types",
    "meta_record",
    "model_accepted",
    "new_id",
    "parse_replies",
    "play",
    "policy_failure_problem",
    "policy_failure_session",
    "probe",
    "run_relay_battery",
    "smtp_sessions",
    "trickle_client",
    "try_relay",
    "try_smuggling",
    "unclear_error",
    "undecodable_records",
    "wait_until",
]
