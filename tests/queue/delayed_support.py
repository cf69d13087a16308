"""What the ``Delayed`` record tests share: a real node (ESMTP listener, test DNS, SMTP
sink) whose Lua policy writes local logs, and readers for the records in those files."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kumocore.logs.reader import iter_records
from kumocore.testing import Node

#: The policy every test starts from; ``{extra}`` adds its own events.
POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.configure_local_logs {{
    log_dir = '{logs}', max_segment_duration = '100ms', meta = {{ 'seen' }},
    {local_logs}
  }}
  {init}
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{ retry_interval = '1h', {queue} }}
end)

{extra}
"""

#: humantime's units, as KumoMTA writes an interval ("59m 59s 999ms 12us").
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_DELAYED = re.compile(r"Context: (?P<context>[A-Za-z, ]+)\. Next due in "
                      r"(?P<due_in>(?:\d+(?:h|m|s|ms|us|ns) ?)+) at (?P<at>\S+)")  # fmt: skip


def policy(logs: Path, *, extra: str = "", init: str = "", queue: str = "",
           local_logs: str = "") -> str:  # fmt: skip
    return POLICY.format(logs=logs, extra=extra, init=init, queue=queue,
                         local_logs=local_logs)  # fmt: skip


async def start(tmp_path: Path, text: str, **options: Any) -> Node:
    return await Node(text, tmp_path=tmp_path, **options).start()


def records(logs: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in iter_records(logs) if kind is None or r["type"] == kind]


async def wait_for_records(
    logs: Path, kind: str, count: int = 1, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The ``kind`` records of the local log files once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while len(found := records(logs, kind)) < count:
        if time.monotonic() > deadline:
            seen = [r["type"] for r in records(logs)]
            raise AssertionError(f"expected {count} {kind} record(s); have {seen}")
        await asyncio.sleep(0.05)
    return found


def rfc3339(stamp: str) -> float:
    """``2026-12-06T02:44:00.123456789Z`` as unix seconds (to the microsecond)."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def humantime_seconds(text: str) -> float:
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([a-z]+)", text))


def split_delayed(record: dict[str, Any]) -> tuple[str, float, str]:
    """A Delayed record's context, its ``Next due in`` interval (seconds) and its ``at``
    text; fails unless the content has KumoMTA's exact shape."""
    match = _DELAYED.fullmatch(record["response"]["content"])
    assert match is not None, record["response"]["content"]
    return match["context"], humantime_seconds(match["due_in"]), match["at"]


def assert_delayed_record(
    record: dict[str, Any], *, context: str, due: float, at: str, queue: str
) -> None:
    """``record`` is KumoMTA's Delayed record of a message waiting until ``due`` (whose
    chrono form is ``at``) for the reasons ``context``."""
    assert record["type"] == "Delayed"
    got_context, due_in, got_at = split_delayed(record)
    assert (got_context, got_at) == (context, at)
    # "Next due in" is the wait from the moment of the record (to the microsecond)
    assert abs(due_in - (due - rfc3339(record["event_time"]))) < 0.005
    assert record["response"]["code"] == 400
    assert record["response"]["enhanced_code"] is None
    assert record["response"]["command"] is None
    # KumoMTA's Delayed record names no site, pool, source, peer or protocol
    assert record["queue"] == queue and record["site"] == ""
    assert record["egress_pool"] is None and record["egress_source"] is None
    assert record["peer_address"] is None and record["delivery_protocol"] is None
    assert record["bounce_classification"] == "Uncategorized"


def future(seconds: float) -> tuple[float, str]:
    """A whole-second unix time ``seconds`` from now, and its RFC 3339 UTC form."""
    due = float(int(time.time() + seconds))
    return due, datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
