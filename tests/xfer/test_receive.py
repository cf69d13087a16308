"""The receiving side of a transfer: ``POST /api/xfer/inject/v1`` on a real node."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from kumocore.xfer.wire import encode_payload
from tests.xfer.support import BODY, payload, post_payload, post_raw

EVENT_POLICY = """
local kumo = require 'kumo'
kumo.on('xfer_message_received', function(msg, auth_info)
  if msg:get_meta('refuse') then
    kumo.reject(550, 'not here')
  end
  msg:set_meta('seen_from', auth_info.peer_address)
end)
"""


def _queued(node: Node) -> int:
    services = node.runtime.services
    assert services is not None
    return len(services.queues.messages)


async def test_transferred_message_lands_in_its_saved_queue_and_is_delivered(
    make_node: MakeNode,
) -> None:
    node = await make_node(EVENT_POLICY)
    status, answer = await post_payload(node.http_url, payload())
    assert status == 200, answer
    new_id = answer["id"]
    assert new_id != payload().id
    [record] = await node.wait_for("XferIn")
    assert record["id"] == new_id
    assert record["queue"] == "spring:acme@example.com"
    assert record["num_attempts"] == 3
    assert record["delivery_protocol"] == "xfer"
    assert record["peer_address"]["addr"] == "127.0.0.1"
    meta = record["meta"]
    assert "xfer_queue_info" not in meta
    assert (meta["campaign"], meta["tenant"], meta["tenant_note"]) == ("spring", "acme", "kept")
    assert meta["xfer_from"] == "127.0.0.1" and meta["xfer_auth"] == "127.0.0.1"
    assert meta["xfer_via"] == node.http_url.removeprefix("http://")
    assert meta["seen_from"] == "127.0.0.1"  # set by xfer_message_received
    assert node.logs("Reception") == []  # XferIn takes its place
    [delivery] = await node.wait_for("Delivery")
    assert delivery["id"] == new_id
    assert node.sink is not None
    assert node.sink.messages[0].data.endswith(b"hello\r\n")


async def test_the_source_ids_creation_time_is_kept(make_node: MakeNode) -> None:
    node = await make_node()
    await node.hold()
    for source_id, created in [
        ("0190000000007000a000000000000001", 1717986918),  # kumocore: 48-bit unix ms
        ("d7ef132b5d7711eda26b005056a7c6d6", 1667700482),  # KumoMTA: UUIDv1, 2022-11-06
    ]:
        status, answer = await post_payload(node.http_url, payload(id=source_id))
        assert status == 200
        [record] = await node.wait_for("XferIn", id=answer["id"])
        assert int(record["created"]) == created


async def test_a_repeated_transfer_is_answered_with_the_first_copy(make_node: MakeNode) -> None:
    node = await make_node()
    await node.hold()
    sent = payload()
    first = await post_payload(node.http_url, sent)
    again = await post_payload(node.http_url, sent)
    assert first[0] == again[0] == 200 and first[1]["id"] == again[1]["id"]
    other = await post_payload(node.http_url, payload(meta={**sent.meta, "xfer_prior_id": "x2"}))
    assert other[0] == 200 and other[1]["id"] != first[1]["id"]
    await node.wait_for("XferIn", count=2)
    assert _queued(node) == 2 and len(node.logs("XferIn")) == 2


async def test_a_repeat_while_the_first_copy_is_received_is_put_off(make_node: MakeNode) -> None:
    node = await make_node("""
local kumo = require 'kumo'
kumo.on('xfer_message_received', function(msg) kumo.sleep(0.5) end)
""")
    await node.hold()
    sent = payload()
    first, second = await asyncio.gather(
        post_payload(node.http_url, sent), post_payload(node.http_url, sent)
    )
    assert sorted([first[0], second[0]]) == [200, 503]
    assert "being received already" in (first if first[0] == 503 else second)[1]["error"]
    assert _queued(node) == 1


async def test_a_repeat_after_the_first_copy_left_is_stored_again(make_node: MakeNode) -> None:
    node = await make_node()
    sent = payload()
    first = await post_payload(node.http_url, sent)
    await node.wait_for("Delivery")
    for _ in range(100):  # forgotten once its Delivery record is written
        if _queued(node) == 0:
            break
        await asyncio.sleep(0.02)
    again = await post_payload(node.http_url, sent)
    assert again[0] == 200 and again[1]["id"] != first[1]["id"]
    ins = await node.wait_for("XferIn", count=2)
    assert {r["meta"]["xfer_prior_id"] for r in ins} == {sent.meta["xfer_prior_id"]}


async def test_policy_refusal_answers_422_and_stores_nothing(make_node: MakeNode) -> None:
    node = await make_node(EVENT_POLICY)
    await node.hold()
    sent = payload(meta={**payload().meta, "refuse": True})
    status, answer = await post_payload(node.http_url, sent)
    assert status == 422
    assert "xfer_message_received" in answer["error"] and "not here" in answer["error"]
    assert _queued(node) == 0 and node.logs("XferIn") == []


async def test_message_from_this_very_node_is_refused_as_a_loop(make_node: MakeNode) -> None:
    node = await make_node()
    services = node.runtime.services
    assert services is not None
    sent = payload(meta={**payload().meta, "xfer_prior_node": services.nodeid})
    status, answer = await post_payload(node.http_url, sent)
    assert status == 400 and "cannot xfer to myself" in answer["error"]
    assert _queued(node) == 0


async def test_a_transferred_batch_keeps_every_recipient(make_node: MakeNode) -> None:
    node = await make_node()
    await node.hold()
    status, answer = await post_payload(
        node.http_url, payload(recipients=("b@example.com", "c@example.com")))
    assert status == 200, answer
    [record] = await node.wait_for("XferIn")
    assert record["recipient"] == ["b@example.com", "c@example.com"]
    services = node.runtime.services
    assert services is not None
    message = services.queues.messages[answer["id"]]
    assert [r.email for r in message.recipients] == ["b@example.com", "c@example.com"]


async def test_malformed_payloads_are_refused_with_400(make_node: MakeNode) -> None:
    node = await make_node()
    good = encode_payload(payload())
    bad_info = {**payload().meta, "xfer_queue_info": {"due": "yesterday"}}
    for body, error in [
        (b'{"id": "x"}', "no newline"),
        (b"not json\n" + BODY, "not JSON"),
        (b"[1]\n" + BODY, "must be a JSON object"),
        (good.replace(b'"sender":"a@example.org"', b'"sender":7'), "'sender' must be a str"),
        (encode_payload(payload(recipients=())), "field 'recipient' is empty"),
        (encode_payload(payload(recipients=("not an address",))), "invalid xfer payload"),
        (encode_payload(payload(meta=bad_info)), "is not RFC 3339"),
    ]:  # fmt: skip
        status, answer = await post_raw(node.http_url, body)
        assert status == 400, (body[:40], answer)
        assert error in answer["error"]
    assert _queued(node) == 0


async def test_body_past_request_body_limit_is_refused_also_when_it_inflates_past_it(
    make_node: MakeNode,
) -> None:
    node = await make_node(http={"request_body_limit": 8192})
    big = payload(data=BODY + b"x" * 10_000 + b"\r\n")
    status, _ = await post_payload(node.http_url, big, gzipped=False)
    assert status == 413
    # 10 KB of x compresses to a few dozen bytes: the decoded size is what counts.
    assert len(gzip.compress(encode_payload(big))) < 8192
    status, _ = await post_payload(node.http_url, big)
    assert status == 413
    fits = payload(data=BODY + b"x" * 6_000 + b"\r\n")
    status, _ = await post_payload(node.http_url, fits)
    assert status == 200
    assert _queued(node) == 1


async def test_only_trusted_hosts_may_transfer_in(make_node: MakeNode) -> None:
    node = await make_node()
    status, _ = await post_payload(node.http_url, payload(), source="127.0.0.5")
    assert status in (401, 403)
    assert _queued(node) == 0


async def test_payload_must_be_octet_stream_or_json_typed(make_node: MakeNode) -> None:
    node = await make_node()
    status, _ = await post_payload(node.http_url, payload(), content_type="text/plain")
    assert status == 415
    assert _queued(node) == 0


async def test_an_answered_transfer_survives_a_restart(make_node: MakeNode, tmp_path: Path) -> None:
    first = Node(spool="rocksdb", tmp_path=tmp_path)
    await first.start()
    try:
        await first.hold()
        status, answer = await post_payload(first.http_url, payload())
        assert status == 200
    finally:
        await first.stop()
    second = await make_node(spool="rocksdb", tmp_path=tmp_path)
    # The held message was tried (and put off) once on the first node: retry it now.
    status, _ = await second.admin("POST", "/api/admin/rebind/v1",
                                   {"reason": "test", "always_flush": True})  # fmt: skip
    assert status == 200
    [delivery] = await second.wait_for("Delivery")
    assert delivery["id"] == answer["id"]
    assert delivery["queue"] == "spring:acme@example.com"
