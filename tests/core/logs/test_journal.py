"""The log journal: the node's records with its nodeid, the headers sinks select and the
bounce classification (Uncategorized when the classifier fails), built from what the
caller knows — a Rejection and an OOB record need no message to pretend to be."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kumocore.logs.dispatch import LogDispatcher
from kumocore.logs.journal import Attempt, Journal
from kumocore.logs.record import LogRecord, PeerAddress, RecordType
from kumocore.mail.response import Response
from tests.core.logs.fakes import NODEID, FakeMessage, RecordingSink

WHEN = 1_700_000_100.5
PEER = PeerAddress("client.example", "127.0.0.5")


async def _classify(response: Response) -> str:
    return "InvalidRecipient" if response.code == 550 else "Uncategorized"


async def _broken(response: Response) -> str:
    raise RuntimeError("classifier bug")


async def _written(journal: Journal, sink: RecordingSink) -> list[dict[str, Any]]:
    assert journal.logs is not None
    await journal.logs.close()
    return [orjson.loads(r.to_json_bytes(("*",), ("Subject",))) for r in sink.records]


@pytest.fixture
async def sink_and_journal() -> tuple[RecordingSink, Journal]:
    sink = RecordingSink(header_names=("Subject",))
    dispatcher = LogDispatcher([sink], batch_latency=0)
    await dispatcher.start()
    return sink, Journal(dispatcher, NODEID, _classify)


async def test_a_rejection_record_carries_the_envelope_and_connection_meta_without_a_message(
    sink_and_journal: tuple[RecordingSink, Journal],
) -> None:
    sink, journal = sink_and_journal
    meta = {"reception_protocol": "ESMTP", "received_from": "127.0.0.5:4000"}
    await journal.rejection(
        sender="a@example.com", recipient="b@example.net", meta=meta,
        response=Response.parse(550, "5.1.1 no such user", command="RCPT TO:<b@example.net>"),
        peer=PEER, session_id="s-1", when=WHEN)
    meta["received_from"] = "changed later"  # the record keeps what it saw
    (record,) = await _written(journal, sink)
    assert record == {
        "type": "Rejection", "id": "", "sender": "a@example.com",
        "recipient": "b@example.net", "queue": "", "site": "", "size": 0,
        "response": {"code": 550, "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
                     "content": "no such user", "command": "RCPT TO:<b@example.net>"},
        "peer_address": {"name": "client.example", "addr": "127.0.0.5"},
        "timestamp": 1_700_000_100, "event_time": "2023-11-14T22:15:00.500000000Z",
        "created": 1_700_000_100, "created_time": "2023-11-14T22:15:00.500000000Z",
        "num_attempts": 0, "bounce_classification": "InvalidRecipient",
        "egress_pool": None, "egress_source": None, "source_address": None,
        "feedback_report": None,
        "meta": {"reception_protocol": "ESMTP", "received_from": "127.0.0.5:4000"},
        "headers": {}, "delivery_protocol": None, "reception_protocol": "ESMTP",
        "nodeid": NODEID, "session_id": "s-1",
    }


async def test_an_oob_record_describes_the_original_delivery_the_dsn_reports(
    sink_and_journal: tuple[RecordingSink, Journal],
) -> None:
    sink, journal = sink_and_journal
    dsn = FakeMessage(headers=[("Subject", "Undelivered"), ("To", "bounces@example.com")],
                      meta={"reception_protocol": "ESMTP"}, num_attempts=3)
    await journal.oob(dsn, failed="gone@example.org", queue="example.net", peer=PEER,
                      response=Response.parse(550, "5.1.1 gone"), when=WHEN)
    (record,) = await _written(journal, sink)
    # sender: the DSN's envelope recipient (the original return path)
    assert (record["id"], record["sender"], record["recipient"]) == (
        dsn.id, "rcpt@example.net", "gone@example.org")
    assert (record["size"], record["num_attempts"]) == (0, 0)
    assert record["headers"] == {"Subject": "Undelivered"}
    assert (record["type"], record["bounce_classification"], record["timestamp"]) == (
        "OOB", "InvalidRecipient", 1_700_000_100)


async def test_feedback_and_reception_records_snapshot_the_message(
    sink_and_journal: tuple[RecordingSink, Journal],
) -> None:
    sink, journal = sink_and_journal
    message = FakeMessage(headers=[("Subject", "hi")], meta={"tenant": "t1"})
    journal.reception(message, queue="t1@example.net", peer=PEER, protocol="HTTP")
    await journal.feedback(message, {"feedback_type": "abuse"}, queue="q", peer=PEER)
    reception, feedback = await _written(journal, sink)
    assert reception["response"] == {"code": 250, "enhanced_code": None,
                                     "content": "", "command": None}
    assert (reception["reception_protocol"], reception["size"], reception["headers"]) == (
        "HTTP", 1234, {"Subject": "hi"})
    assert reception["bounce_classification"] == "Uncategorized"  # never classified
    assert feedback["feedback_report"] == {"feedback_type": "abuse"}
    assert (feedback["type"], feedback["reception_protocol"]) == ("Feedback", "ESMTP")


async def test_an_outcome_record_carries_its_attempt_and_is_shown_to_the_observer(
    sink_and_journal: tuple[RecordingSink, Journal],
) -> None:
    sink, journal = sink_and_journal
    seen: list[LogRecord] = []
    attempt = Attempt(queue="example.net", site="src->mx@smtp_client", egress_pool="p",
                      egress_source="src", peer={"name": "mx", "addr": "127.0.0.2"},
                      source_address="127.0.10.1:5000", delivery_protocol="ESMTP",
                      tls_cipher="TLS_AES_256_GCM_SHA384")
    journal.outcome(RecordType.Bounce, FakeMessage(meta={"reception_protocol": "HTTP"}),
                    Response.parse(550, "5.1.1 no"), attempt,
                    classification="InvalidRecipient", observe=seen.append)
    (record,) = await _written(journal, sink)
    assert len(seen) == 1 and seen[0].type is RecordType.Bounce
    assert record["source_address"] == {"address": "127.0.10.1:5000"}
    assert record["peer_address"] == {"name": "mx", "addr": "127.0.0.2"}
    assert (record["egress_pool"], record["egress_source"], record["site"]) == (
        "p", "src", "src->mx@smtp_client")
    assert (record["reception_protocol"], record["tls_cipher"]) == (
        "HTTP", "TLS_AES_256_GCM_SHA384")
    assert "provider_name" not in record  # KumoMTA omits absent optional fields


async def test_a_failing_classifier_gives_uncategorized_and_the_record_is_still_logged() -> None:
    sink = RecordingSink()
    dispatcher = LogDispatcher([sink], batch_latency=0)
    await dispatcher.start()
    journal = Journal(dispatcher, NODEID, _broken)
    assert await journal.classify(Response.parse(550, "5.1.1 no")) == "Uncategorized"
    await journal.rejection(sender="", recipient="", meta={}, response=Response(554, "no"),
                            peer=PEER, session_id="s", when=WHEN)
    (record,) = await _written(journal, sink)
    assert record["bounce_classification"] == "Uncategorized"


async def test_without_a_dispatcher_nothing_is_written_and_headers_are_never_read() -> None:
    journal = Journal(None, NODEID, _classify)
    message = FakeMessage(headers=[("Subject", "x")])
    assert journal.reception(message, queue="q", peer=PEER, protocol="ESMTP") is None
    assert await journal.oob(message, failed="x@y", response=Response(550, "no"), queue="q",
                             peer=PEER, when=None) is None
    assert message.header_reads == 0
    assert journal.header_names == ()
