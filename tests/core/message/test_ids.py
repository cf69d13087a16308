from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from kumocore.mail.ids import created_from_id, is_message_id, new_message_id


def test_ids_are_32_lowercase_hex_and_valid_uuid7() -> None:
    mid = new_message_id()
    assert is_message_id(mid)
    assert uuid.UUID(hex=mid).version == 7


def test_ids_generated_in_sequence_sort_in_creation_order_even_within_a_millisecond() -> None:
    ids = [new_message_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_created_from_id_recovers_the_creation_time_to_the_millisecond() -> None:
    before = time.time()
    mid = new_message_id()
    after = time.time()
    assert before - 0.002 <= created_from_id(mid) <= after + 0.002


def test_ids_from_separate_processes_do_not_collide() -> None:
    code = (
        "from kumocore.mail.ids import new_message_id as n; print('\\n'.join(n() for _ in "
        "range(2000)))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(3)
    ]
    ids = [line for r in runs for line in r.stdout.split()]
    assert len(ids) == 6000
    assert len(set(ids)) == 6000


def test_created_from_id_refuses_something_that_is_not_an_id() -> None:
    with pytest.raises(ValueError, match="not a message id"):
        created_from_id("XYZ")
    with pytest.raises(ValueError, match="not time-based"):
        created_from_id(uuid.uuid4().hex)
