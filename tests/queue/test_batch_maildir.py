"""Maildir delivery of a message with several recipients: as KumoMTA, a file per
recipient in the maildir its path renders to, one Delivery record for those written and
one TransientFailure for those whose write failed, which stay on the message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from tests.queue.harness import Bench

BODY = b"Subject: batch\r\n\r\nhello all\r\n"


async def _inject(bench: Bench, recipients: list[str]) -> Message:
    message = Message("sender@src.test", recipients, BODY)
    assert bench.runtime.services.store is not None
    await bench.runtime.services.store.save(message)
    bench.queues.insert(message, message.recipient.domain,
                        QueueConfig.from_options(bench.policy.queue))
    return message


async def test_every_recipient_gets_its_own_file_and_they_share_one_delivery_record(
    make_bench: Any, tmp_path: Path
) -> None:
    template = str(tmp_path) + "/{{ local_part }}"
    bench: Bench = await make_bench(queue={"protocol": {"maildir_path": template}})
    await _inject(bench, ["alice@example.com", "bob@example.com"])
    (record,) = await bench.wait_for_records("Delivery", 1)
    await bench.wait_until(lambda: bench.spooled() == 0)
    names = {}
    for user in ("alice", "bob"):
        (written,) = list((tmp_path / user / "new").iterdir())
        assert written.read_bytes() == BODY
        names[user] = written.name
    assert record["recipient"] == ["alice@example.com", "bob@example.com"]
    assert record["response"]["content"] == (
        f"alice@example.com: wrote to maildir with id={names['alice']}, "
        f"bob@example.com: wrote to maildir with id={names['bob']}")
    assert record["delivery_protocol"] == "Maildir"


async def test_a_recipient_whose_write_fails_stays_on_the_message_alone(
    make_bench: Any, tmp_path: Path
) -> None:
    (tmp_path / "blocked").write_text("a file where the maildir should be")
    template = str(tmp_path) + "/{{ local_part }}/box"
    bench: Bench = await make_bench(queue={"protocol": {"maildir_path": template}})
    message = await _inject(bench, ["ok@example.com", "blocked@example.com"])
    (delivered,) = await bench.wait_for_records("Delivery", 1)
    (deferred,) = await bench.wait_for_records("TransientFailure", 1)
    await bench.wait_until(lambda: message.num_attempts == 1)
    assert delivered["recipient"] == "ok@example.com"
    assert deferred["recipient"] == "blocked@example.com"
    assert deferred["response"]["code"] == 400
    assert deferred["response"]["content"].startswith(
        "blocked@example.com: failed to write to maildir")
    assert [str(r) for r in message.recipients] == ["blocked@example.com"]
    assert len(list((tmp_path / "ok" / "box" / "new").iterdir())) == 1
    assert bench.spooled() == 1
