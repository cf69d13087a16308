"""The ``kumo`` policy object: namespaces, table-style calls, helpful errors."""

from __future__ import annotations

from typing import Any

import pytest

from kumocore import policy_function
from kumocore.policy.kumo_api import Kumo


@policy_function(table=True)
def define_thing(**options: Any) -> dict[str, Any]:
    return options


def lookup(name: str) -> str:
    return f"looked up {name}"


def make_kumo() -> Kumo:
    return Kumo({"define_thing": define_thing, "dns.lookup_mx": lookup})


def test_table_functions_accept_keywords_or_one_mapping() -> None:
    kumo = make_kumo()
    assert kumo.define_thing(name="a") == {"name": "a"}
    assert kumo.define_thing({"name": "b"}) == {"name": "b"}


def test_table_functions_refuse_positional_non_table_arguments() -> None:
    with pytest.raises(TypeError, match="one table"):
        make_kumo().define_thing("x", "y")


def test_dotted_names_become_namespaces() -> None:
    kumo = make_kumo()
    assert kumo.dns.lookup_mx("gmail.com") == "looked up gmail.com"
    assert kumo.names() == ["define_thing", "dns.lookup_mx"]


def test_unknown_function_suggests_the_closest_name() -> None:
    with pytest.raises(AttributeError, match=r"did you mean kumo.dns.lookup_mx"):
        make_kumo().dns.lookup_mz  # noqa: B018
