"""The dispatcher's side of ``filter_event``: who is asked, when, and what a "no" means
for the record's ticket (the queue waits on it before deleting a message)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from structlog.testing import capture_logs

from kumocore.logs import LogDispatcher, RecordType
from kumocore.logs.filter_event import lua_truthy, policy_log_filter
from kumocore.policy.plugins import make_plugin_manager
from tests.core.logs.fakes import FakeMessage, RecordingSink, record


class Asked:
    """A log filter that answers from the message's ``keep`` meta and remembers calls."""

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on

    async def __call__(self, event: str, message: Any) -> bool:
        self.calls.append((event, message.id))
        self.threads.add(threading.get_ident())
        if message.id == self.fail_on:
            raise RuntimeError("handler exploded")
        return bool(message.meta.get("keep"))


def msg(id: str, keep: bool) -> FakeMessage:
    return FakeMessage(id=id, meta={"keep": keep})


async def test_a_record_left_out_still_completes_its_ticket() -> None:
    sink = RecordingSink("filtered", filter_event="pick")
    dispatcher = LogDispatcher([sink], batch_latency=0, log_filter=Asked())
    await dispatcher.start()
    no = msg("no", False)
    ticket = dispatcher.submit(record(message=no), no)
    assert await dispatcher.written(ticket, timeout=2.0)  # the queue may delete it now
    yes = msg("yes", True)
    assert await dispatcher.written(dispatcher.submit(record(message=yes), yes), timeout=2.0)
    await dispatcher.close()
    assert [r.id for r in sink.records] == ["yes"]
    stats = dispatcher.stats()["filtered"]
    assert stats["filtered"] == 1 and stats["written"] == 1 and stats["pending"] == 0


async def test_only_sinks_with_a_filter_event_ask_and_keep_messages() -> None:
    asked = Asked()
    plain, picky = RecordingSink("plain"), RecordingSink("picky", filter_event="pick")
    dispatcher = LogDispatcher([plain, picky], batch_latency=0, log_filter=asked)
    await dispatcher.start()
    messages = [msg(f"m{i}", i % 2 == 0) for i in range(6)]
    for message in messages:
        dispatcher.submit(record(message=message), message)
    await dispatcher.close()
    assert [r.id for r in plain.records] == [m.id for m in messages]
    assert [r.id for r in picky.records] == ["m0", "m2", "m4"]
    assert asked.calls == [("pick", m.id) for m in messages]  # once per record, in order
    assert asked.threads == {threading.get_ident()}  # on the loop, never a writer thread
    assert dispatcher.stats()["plain"]["filtered"] == 0


async def test_records_without_a_message_and_disabled_types_are_not_asked() -> None:
    asked = Asked()
    sink = RecordingSink(
        "picky", filter_event="pick", record_enabled=lambda kind: kind != "Delivery"
    )
    dispatcher = LogDispatcher([sink], batch_latency=0, log_filter=asked)
    await dispatcher.start()
    rejected, delivered, received = msg("r", False), msg("d", False), msg("c", False)
    dispatcher.submit(record(RecordType.Rejection, message=rejected))  # no message
    dispatcher.submit(record(RecordType.Delivery, message=delivered), delivered)
    dispatcher.submit(record(RecordType.Reception, message=received), received)
    await dispatcher.close()
    assert asked.calls == [("pick", "c")]
    # The sink itself drops the disabled type; the Rejection is always passed on.
    assert [r.id for r in sink.records] == ["r", "d"]


async def test_a_failing_filter_leaves_the_record_out_and_is_asked_once_despite_retries() -> None:
    asked = Asked(fail_on="bad")
    sink = RecordingSink("picky", filter_event="pick", fail_times=2)
    dispatcher = LogDispatcher([sink], batch_latency=0.05, log_filter=asked)
    bad, good = msg("bad", True), msg("good", True)
    dispatcher.submit(record(message=bad), bad)
    dispatcher.submit(record(message=good), good)
    with capture_logs() as events:
        await dispatcher.start()
        await dispatcher.close()
    assert sink.calls == 3 and [r.id for r in sink.records] == ["good"]
    assert asked.calls == [("pick", "bad"), ("pick", "good")]
    (error,) = [e for e in events if e["event"].startswith("filter_event handler failed")]
    assert error["filter_event"] == "pick" and "handler exploded" in error["error"]
    assert dispatcher.stats()["picky"]["filtered"] == 1


def test_a_sink_with_a_filter_event_needs_a_log_filter() -> None:
    with pytest.raises(ValueError, match="has a filter_event but the dispatcher has no"):
        LogDispatcher([RecordingSink("picky", filter_event="pick")])


@pytest.mark.parametrize("value", [3, ""])
def test_a_malformed_filter_event_attribute_is_a_plugin_bug(value: object) -> None:
    with pytest.raises(TypeError, match="filter_event must be an event name"):
        LogDispatcher([RecordingSink("picky", filter_event=value)], log_filter=Asked())


@pytest.mark.parametrize(
    "value,truth",
    [
        (None, False),
        (False, False),
        (True, True),
        (0, True),
        ("", True),
        ({}, True),
        ([], True),
        ("no", True),
    ],
)
def test_answers_are_read_with_lua_truthiness(value: object, truth: bool) -> None:
    assert lua_truthy(value) is truth


async def test_without_a_policy_handler_the_answer_is_no_and_a_warning_is_logged_once() -> None:
    log_filter = policy_log_filter(make_plugin_manager())
    with capture_logs() as events:
        answers = [await log_filter("missing", FakeMessage()) for _ in range(3)]
    assert answers == [False, False, False]
    warnings = [e for e in events if e.get("filter_event") == "missing"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
