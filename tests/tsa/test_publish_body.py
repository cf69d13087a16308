"""``POST /publish_log_v1`` bodies decoded one value at a time (kumocore.tsa.publish):
the same values a whole-body parse gives, and the same refusals, named where they are."""

from __future__ import annotations

import pytest

from kumocore.tsa.publish import BodyError, records


def test_an_array_gives_each_record_and_a_single_object_gives_itself() -> None:
    assert list(records(' [ {"a": 1} , {"b": [2, 3]} ] ')) == [{"a": 1}, {"b": [2, 3]}]
    assert list(records('{"a": "\\ud83d\\ude00"}')) == [{"a": "\U0001f600"}]
    assert list(records("[]")) == []


@pytest.mark.parametrize(("body", "says"), [
    ('[{"a": "\\ud800"}]', "not text"),  # a lone surrogate: orjson would refuse it later
    ('[{"a": NaN}]', "NaN is not JSON"),
    ('[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
    ('{"a": 1} x', "extra data"),
    ("[" * 100_000, "nested too deeply"),
])  # fmt: skip
def test_a_body_that_is_not_json_is_refused_naming_why(body: str, says: str) -> None:
    with pytest.raises(BodyError, match=says):
        list(records(body))


def test_the_records_before_a_bad_one_are_given_out() -> None:
    seen = []
    with pytest.raises(BodyError):
        for record in records('[{"n": 1}, {"n": 2}, oops]'):
            seen.append(record)
    assert seen == [{"n": 1}, {"n": 2}]
