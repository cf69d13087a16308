"""The status page's parts without a browser: the response aggregator, the node merge,
the escaped HTML snapshot, the access rule and the event stream on a real listener."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp

from kumocore.admin.merge import merge_statuses
from kumocore.admin.routes import status_of
from kumocore.mail.response import Response
from kumocore.node.runtime import Runtime
from kumocore.status.page import render_page
from kumocore.status.responses import MAX_KEYS, OTHER, WINDOW_MINUTES, ResponseLog
from tests.http.conftest import HttpEnv

UNTRUSTED = "127.0.0.5"
IMPORTED = time.time()  # this process started before it imported this module


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_response_log_counts_refusals_per_site_and_bounce_classes_only() -> None:
    log = ResponseLog()
    deferral = Response.parse(451, "4.3.0 try later")
    log.add("TransientFailure", "mx.a", deferral, "Uncategorized")
    log.add("TransientFailure", "mx.a", deferral, "Uncategorized")
    log.add("Bounce", "mx.b", Response.parse(550, "5.1.1 no such user"), "InvalidRecipient")
    log.add("Delivery", "mx.a", Response.parse(250, "ok"), "Uncategorized")
    recent = log.recent()
    assert recent["responses"][0] == {"kind": "TransientFailure", "site": "mx.a", "code": 451,
                                      "enhanced_code": "4.3.0", "text": "try later", "count": 2}
    assert [r["site"] for r in recent["responses"]] == ["mx.a", "mx.b"]
    assert recent["bounce_classes"] == {"InvalidRecipient": 1}


def test_response_log_forgets_minutes_outside_its_window() -> None:
    clock = Clock()
    log = ResponseLog(clock)
    log.add("Bounce", "mx.a", Response.parse(550, "5.0.0 old"), "X")
    clock.now += 60 * WINDOW_MINUTES
    log.add("Bounce", "mx.a", Response.parse(550, "5.0.0 new"), "X")
    assert [r["text"] for r in log.recent()["responses"]] == ["new"]
    assert [r["text"] for r in log.recent(minutes=WINDOW_MINUTES + 5)["responses"]] == ["new"]


def test_response_log_is_bounded_when_every_response_differs() -> None:
    log = ResponseLog()
    for n in range(MAX_KEYS + 50):
        log.add("TransientFailure", "mx.a", Response.parse(451, f"4.0.0 id {n}"), "")
    responses = log.recent()["responses"]
    assert len(responses) == MAX_KEYS
    other = [r for r in responses if r["text"] == OTHER]
    assert other and other[0]["count"] == 50


def _status(counters: dict[str, Any], queue_age: float, rule_id: str, count: int) -> dict[str, Any]:
    return {
        "time": 1.0, "workers": 1, "counters": counters,
        "queues": {"scheduled": [{"name": "q.test", "count": count, "egress_pool": "p",
                                  "oldest_age": queue_age, "suspended_until": None}],
                   "ready": [], "totals": {"messages": count}},
        "suspensions": [{"id": rule_id, "reason": "r", "remaining": 5.0}], "bounces": [],
        "recent": {"minutes": 15, "bounce_classes": {"X": 1}, "responses": [
            {"kind": "Bounce", "site": "s", "code": 550, "enhanced_code": "5.1.1",
             "text": "no", "count": count}]},
        "node": {"hostname": "h", "log_sinks": {"file": {"written": count, "pending": 1}}},
    }  # fmt: skip


def test_node_status_sums_workers_and_keeps_each_rule_once() -> None:
    first = _status({"received": 3, "received_by_listener": {"esmtp_listener": 3}}, 10.0, "a", 2)
    second = _status({"received": 4, "received_by_listener": {"esmtp_listener": 4}}, 30.0, "a", 5)
    merged = merge_statuses([first, second])
    assert merged["workers"] == 2
    assert merged["counters"] == {"received": 7, "received_by_listener": {"esmtp_listener": 7}}
    (queue,) = merged["queues"]["scheduled"]
    assert (queue["count"], queue["oldest_age"]) == (7, 30.0)
    assert merged["queues"]["totals"]["messages"] == 7
    assert [r["id"] for r in merged["suspensions"]] == ["a"]
    assert merged["recent"]["responses"][0]["count"] == 7
    assert merged["recent"]["bounce_classes"] == {"X": 2}
    assert merged["node"]["log_sinks"] == {"file": {"written": 7, "pending": 2}}


def test_snapshot_html_escapes_what_senders_and_receivers_control() -> None:
    status = _status({"received": 1}, 1.0, "a", 1)
    status["queues"]["scheduled"][0]["name"] = "<script>x</script>@q.test"
    status["recent"]["responses"][0]["text"] = "<img src=x onerror=alert(1)>"
    status["node"].update(version="1", uptime=5.0, policy_path=None, spools=[])
    html = render_page(status)
    assert "<script>x</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;x&lt;/script&gt;@q.test" in html


async def test_status_page_stream_and_assets_are_trusted_hosts_only(http: HttpEnv) -> None:
    for path in ("/status", "/status/events", "/status/static/status.js",
                 "/api/admin/status/v1"):  # fmt: skip
        status, text, _ = await http.request("GET", path, source=UNTRUSTED)
        assert (status, text) == (401, f"{UNTRUSTED} not permitted GET on {path}")
    status, text, response = await http.request("GET", "/status")
    assert status == 200 and response.content_type == "text/html"
    assert (await http.request("GET", "/status/static/status.css"))[0] == 200
    status, text, _ = await http.request("GET", "/status/static/../../cli.py")
    assert status == 404


async def test_event_stream_sends_the_status_every_second_until_the_listener_closes(
        http: HttpEnv) -> None:  # fmt: skip
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, \
            session.get(http.url + "/status/events") as response:  # fmt: skip
        assert response.headers["Content-Type"] == "text/event-stream"
        started = time.monotonic()
        async for line in response.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
        assert 0.5 < time.monotonic() - started < 10
        assert events[1]["time"] > events[0]["time"]
        assert events[0]["counters"]["received"] == 0
        closing = asyncio.ensure_future(http.listener.close())
        rest = await asyncio.wait_for(response.content.read(), 4)  # the stream ends
        assert b"event: status" not in rest or rest.endswith(b"\n\n")
        await asyncio.wait_for(closing, 5)


def test_local_status_without_queues_reports_counters_and_node_facts() -> None:
    status = status_of(Runtime(load_entrypoints=False))  # not started: no queues yet
    assert status["queues"] is None and status["counters"]["delivered"] == 0
    node = status["node"]
    assert node["started"] <= IMPORTED + 0.05  # /proc start times tick every 10 ms
    assert node["uptime"] == status["time"] - node["started"]
    assert node["uptime"] >= status["time"] - IMPORTED - 0.05


def test_the_process_start_time_is_exact_to_a_clock_tick_not_to_a_second() -> None:
    # /proc/stat's btime has whole seconds: a start time built on it was up to a second
    # off, either way, and once after the import it was checked against.
    code = ("import time; before = time.time(); import kumocore.status.data as data; "
            "print(before - data.process_start_time())")
    lead = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)
    assert 0.0 <= lead < 0.5  # from the process's start to the line that read the clock


def test_automation_actions_are_listed_once_per_id_with_their_expiry() -> None:
    action = {"id": "t1", "kind": "SetConfig", "rule": "shaping.toml: gmail.com.automation[1]",
              "reason": "421 4.7.28 <rate limited>", "site": "ip-1->gmail@smtp_client",
              "domain": "gmail.com", "name": "max_message_rate", "value": "4/s",
              "remaining_seconds": 65.0}  # fmt: skip
    first = _status({"received": 1}, 1.0, "a", 1)
    second = _status({"received": 1}, 1.0, "a", 1)
    first["automation"], second["automation"] = [action], [action]
    merged = merge_statuses([first, second])
    assert [a["id"] for a in merged["automation"]] == ["t1"]
    merged["node"].update(version="1", uptime=5.0, policy_path=None, spools=[])
    html = render_page(merged)
    assert "automation: SetConfig" in html
    assert "ip-1-&gt;gmail@smtp_client max_message_rate=4/s" in html
    assert "&lt;rate limited&gt;" in html and "1m5s" in html
