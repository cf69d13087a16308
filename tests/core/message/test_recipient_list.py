"""A message's recipient list (KumoMTA's batches): the first recipient names the queue,
the spool and the log records carry every recipient, one address stays a string."""

from __future__ import annotations

import orjson
import pytest

from kumocore.logs.record import RecordType
from kumocore.logs.record_builder import make_record
from kumocore.mail.address import AddressError
from kumocore.mail.message import Message
from kumocore.mail.response import Response

DATA = b"Subject: hi\r\n\r\nbody\r\n"


def batch() -> Message:
    return Message("a@sender.test", ["b@gmail.com", "c@gmail.com", "d@gmail.com"], DATA)


def test_a_message_made_with_one_address_has_one_recipient() -> None:
    msg = Message("a@sender.test", "b@gmail.com", DATA)
    assert [r.email for r in msg.recipients] == ["b@gmail.com"]
    assert msg.recipient_list() == list(msg.recipients)
    assert msg.lua_recipient() == msg.recipient


def test_the_first_recipient_of_a_batch_names_the_queue() -> None:
    msg = batch()
    assert msg.recipient.email == "b@gmail.com"
    assert msg.queue_name() == "gmail.com"
    assert [r.email for r in msg.recipient_list()] == ["b@gmail.com", "c@gmail.com",
                                                       "d@gmail.com"]
    assert [r.email for r in msg.lua_recipient()] == [  # type: ignore[union-attr]
        "b@gmail.com", "c@gmail.com", "d@gmail.com"]


def test_set_recipient_with_a_list_replaces_every_recipient() -> None:
    msg = Message("a@sender.test", "b@gmail.com", DATA)
    msg.set_recipient(["x@yahoo.com", "y@yahoo.com"])
    assert [r.email for r in msg.recipients] == ["x@yahoo.com", "y@yahoo.com"]
    msg.set_recipient("z@aol.com")
    assert [r.email for r in msg.recipients] == ["z@aol.com"]


def test_an_empty_or_invalid_recipient_list_is_refused_and_changes_nothing() -> None:
    msg = batch()
    with pytest.raises(ValueError, match="recipient list is empty"):
        msg.set_recipient_list([])
    with pytest.raises(AddressError):
        msg.set_recipient_list(["ok@gmail.com", "not an address"])
    with pytest.raises(TypeError, match="list of addresses"):
        msg.set_recipient({"a": "b@gmail.com"})  # type: ignore[arg-type]
    assert len(msg.recipients) == 3


def test_the_spool_record_holds_a_string_for_one_recipient_and_a_list_for_a_batch() -> None:
    one = Message("a@sender.test", "b@gmail.com", DATA)
    assert orjson.loads(one.meta_bytes())["recipient"] == "b@gmail.com"
    msg = batch()
    record = orjson.loads(msg.meta_bytes())
    assert record["recipient"] == ["b@gmail.com", "c@gmail.com", "d@gmail.com"]
    again = Message.from_spool(msg.id, msg.meta_bytes(), DATA)
    assert again.recipients == msg.recipients


@pytest.mark.parametrize("value", [[], [1, 2], ["b@gmail.com", None]])
def test_a_spooled_recipient_list_of_the_wrong_shape_is_a_spool_record_error(
    value: object,
) -> None:
    from kumocore.mail.message_json import SpoolRecordError

    record = orjson.loads(batch().meta_bytes())
    record["recipient"] = value
    with pytest.raises(SpoolRecordError, match="recipient"):
        Message.from_spool("id1", orjson.dumps(record), DATA)


def _record(msg: Message, **kw: object) -> dict[str, object]:
    rec = make_record(RecordType.Delivery, msg, queue="gmail.com",
                      response=Response(250, "ok"), nodeid="n", **kw)  # type: ignore[arg-type]
    return rec.to_json()


def test_a_log_record_names_one_recipient_as_a_string_and_a_batch_as_a_list() -> None:
    assert _record(Message("a@sender.test", "b@gmail.com", DATA))["recipient"] == "b@gmail.com"
    assert _record(batch())["recipient"] == ["b@gmail.com", "c@gmail.com", "d@gmail.com"]


def test_a_log_record_about_part_of_a_batch_names_only_that_part() -> None:
    msg = batch()
    assert _record(msg, recipients=msg.recipients[1:])["recipient"] == [
        "c@gmail.com", "d@gmail.com"]
    assert _record(msg, recipients=msg.recipients[2:])["recipient"] == "d@gmail.com"
