"""Recipients of one transaction share one body; each delivery carries its own headers."""

from __future__ import annotations

from kumocore.testing.plugin import MakeNode

RECIPIENTS = [f"r{n}@example.com" for n in range(5)]
BODY = "Subject: shared\r\nX-Tenant: blue\r\n\r\n" + ("..dotted\r\nline of body\r\n" * 3000)


async def test_each_recipient_of_a_shared_body_gets_its_received_header_and_the_body_intact(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    assert node.sink is not None
    await node.send("a@example.com", RECIPIENTS, BODY)
    await node.sink.wait_for(len(RECIPIENTS))
    delivered = {m.recipient: m.data for m in node.sink.messages}
    assert sorted(delivered) == RECIPIENTS
    body = BODY.encode()
    for recipient, data in delivered.items():
        head, _, rest = data.partition(b"Subject: shared\r\n")
        assert f"for <{recipient}>".encode() in head  # the header of this recipient only
        assert not any(f"for <{other}>".encode() in head for other in RECIPIENTS
                       if other != recipient)
        assert b"Subject: shared\r\n" + rest == body  # dot lines unstuffed again by the sink
