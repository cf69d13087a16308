"""The Python log sinks (webhook, AMQP, NATS) behind the real log dispatcher, against an
aiohttp receiver, RabbitMQ and nats-server: every record arrives, in order per sink, and
a target that is down when the records come is retried until it is back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kumocore.loghooks.sinks import AmqpLogSink, NatsLogSink, WebhookLogSink
from kumocore.logs.dispatch import LogDispatcher
from kumocore.logs.record import RecordType
from kumocore.logs.record_builder import make_record
from kumocore.mail.message import Message
from kumocore.mail.response import Response
from kumocore.testing.webhook import RecordingWebhook
from tests.loghooks.test_broker_hooks import amqp_records, nats_records
from tests.loghooks.test_webhook_durability import wait_for
from tests.support.brokers import NATS, RABBITMQ, available, free_port, start_nats, start_rabbitmq

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (available(NATS) and available(RABBITMQ)),
                       reason="nats-server / rabbitmq-server not installed (scripts/setup.sh)"),
]

RECORDS = 30


def records() -> list[Any]:
    out = []
    for index in range(RECORDS):
        message = Message("a@x.test", f"user{index}@y.test", b"Subject: s\r\n\r\nb\r\n",
                          meta={"tenant": "t"})
        out.append(make_record(RecordType.Delivery, message, queue="y.test",
                               response=Response(250, "ok"), nodeid="n"))
    return out


async def test_python_sinks_deliver_every_record_and_wait_out_a_nats_outage(
    tmp_path: Path,
) -> None:
    import aio_pika
    import nats

    webhook = RecordingWebhook(free_port())
    await webhook.start()
    rabbit = start_rabbitmq(tmp_path / "rabbit")
    nats_port = free_port()
    nats_server = start_nats(tmp_path, nats_port)
    dispatcher: LogDispatcher | None = None
    try:
        nc = await nats.connect(f"nats://127.0.0.1:{nats_port}")
        await nc.jetstream().add_stream(name="LOGS", subjects=["kumo.logs"])
        await nc.close()
        nats_server.stop()  # down when the records come
        connection = await aio_pika.connect(host="127.0.0.1", port=rabbit.port)
        async with connection:
            await (await connection.channel()).declare_queue("kumo-logs", durable=True)

        dispatcher = LogDispatcher([
            WebhookLogSink("webhook", f"http://127.0.0.1:{webhook.port}/log", meta=["tenant"]),
            AmqpLogSink("amqp", routing_key="kumo-logs",
                        connection={"host": "127.0.0.1", "port": rabbit.port}),
            NatsLogSink("nats", servers=[f"127.0.0.1:{nats_port}"], subject="kumo.logs",
                        connect={"connection_timeout": "1s"}),
        ])
        await dispatcher.start()
        sent = records()
        for record in sent:
            dispatcher.submit(record)
        ids = [r.recipient for r in sent]

        async def webhook_and_amqp_done() -> bool:
            return len(webhook.records) >= RECORDS
        await wait_for(webhook_and_amqp_done, 30, "the webhook sink")
        assert [r["recipient"] for r in webhook.records] == ids
        assert all(r["meta"] == {"tenant": "t"} for r in webhook.records)
        got_amqp = await amqp_records(rabbit.port)
        assert [r["recipient"] for r in got_amqp] == ids

        async def nats_retried() -> bool:
            return dispatcher is not None and dispatcher.stats()["nats"]["errors"] >= 2
        await wait_for(nats_retried, 30, "the NATS sink to retry while NATS is down")
        assert dispatcher.stats()["nats"]["written"] == 0
        nats_server = start_nats(tmp_path, nats_port)

        async def nats_done() -> bool:
            return dispatcher is not None and dispatcher.stats()["nats"]["written"] == RECORDS
        await wait_for(nats_done, 30, "the NATS sink after the outage")
        got_nats = await nats_records(nats_port)
        assert [r["recipient"] for r in got_nats] == ids
        assert json.dumps(got_nats[0], sort_keys=True) == json.dumps(
            json.loads(sent[0].to_json_bytes()), sort_keys=True)
    finally:
        if dispatcher is not None:
            await dispatcher.close(timeout=5)
        await webhook.stop()
        nats_server.stop()
        rabbit.stop()
