"""One bad character in one field must never make the whole batch a 500 (issue 14, #13).

Python's ``str.splitlines`` (and so the ``email`` package's header folding) treats
``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029 as line breaks. Every
field that ends up in a header is checked: the request gets a 400 naming the field, or —
for a value produced by a template substitution — only that recipient fails.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http.conftest import HttpEnv

NASTY = ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r", "\n",
         "\x00", "\x7f", "\t", "\x1b", "é", "\u200b", "\ufeff", "\U0001f600"]

BASE: dict[str, Any] = {
    "envelope_sender": "bounce@sender.example",
    "recipients": [{"email": "ok@example.com", "name": "Ok", "substitutions": {"v": "x"}},
                   {"email": "b@example.com", "name": "Bee",
                    "substitutions": {"v": "y"}}],
    "content": {
        "from": {"email": "news@sender.example", "name": "News"},
        "reply_to": {"email": "help@sender.example", "name": "Help"},
        "subject": "Hello {{ v }}",
        "headers": {"X-Tenant": "acme", "X-Sub": "{{ v }}"},
        "text_body": "hi {{ name }}",
        "attachments": [{"data": "a,b", "content_type": "text/csv", "file_name": "r.csv"},
                        {"data": "R0lGODlhAQABAAAAACw=", "base64": True,
                         "content_type": "image/gif", "content_id": "logo"}],
    },
    "trace_headers": {"supplemental_header": True, "header_name": "X-Ref",
                      "include_meta_names": ["a"]},
}

# (path into the request, how the 400 names it); None = a template substitution: only
# that recipient may fail.
FIELDS: list[tuple[tuple[Any, ...], str | None]] = [
    (("recipients", 1, "name"), "recipients[1].name"),
    (("recipients", 1, "email"), "recipients[1].email"),
    (("envelope_sender",), "envelope_sender"),
    (("content", "subject"), "content.subject"),
    (("content", "headers", "X-Tenant"), "content.headers"),
    (("content", "from", "email"), "content.from.email"),
    (("content", "from", "name"), "content.from.name"),
    (("content", "reply_to", "email"), "content.reply_to.email"),
    (("content", "reply_to", "name"), "content.reply_to.name"),
    (("content", "attachments", 0, "file_name"), "content.attachments[0].file_name"),
    (("content", "attachments", 0, "content_type"), "content.attachments[0].content_type"),
    (("content", "attachments", 1, "content_id"), "content.attachments[1].content_id"),
    (("trace_headers", "header_name"), "trace_headers.header_name"),
    (("trace_headers", "include_meta_names", 0), "trace_headers.include_meta_names"),
    (("recipients", 1, "substitutions", "v"), None),
    (("content", "text_body"), "content.text_body"),
]


def with_value(path: tuple[Any, ...], value: str) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


def header_name_variant(body: dict[str, Any], value: str) -> dict[str, Any]:
    headers = body["content"]["headers"]
    headers[value] = headers.pop("X-Tenant")
    return body


async def check(http: HttpEnv, body: dict[str, Any], field: str | None, what: str) -> None:
    status, payload = await http.inject(body)
    assert status < 500, (what, status, payload)
    if status >= 400:
        assert field is not None, (what, payload)
        assert field in payload["error"], (what, payload)
    else:
        assert status == 200, (what, payload)
        assert payload["success_count"] + payload["fail_count"] == 2
        assert "ok@example.com" not in payload["failed_recipients"], (what, payload)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(FIELDS), char=st.sampled_from(NASTY),
       where=st.sampled_from(["start", "middle", "end"]))
async def test_a_nasty_character_in_any_field_never_gives_500(
    http: HttpEnv, field: tuple[tuple[Any, ...], str | None], char: str, where: str
) -> None:
    path, name = field
    value = {"start": char + "Abc", "middle": "Ab" + char + "c", "end": "Abc" + char}[where]
    if path[-1] in ("email",) or path == ("envelope_sender",):
        local = {"start": char + "a", "middle": "a" + char + "b", "end": "a" + char}[where]
        value = f"{local}@example.com"
    await check(http, with_value(path, value), name, f"{path} = {value!r}")


async def test_a_nasty_character_in_a_header_name_is_a_400_naming_it(http: HttpEnv) -> None:
    for char in NASTY:
        body = header_name_variant(copy.deepcopy(BASE), f"X-A{char}b")
        await check(http, body, "content.headers", f"header name with {char!r}")


async def test_a_substitution_with_a_line_break_fails_only_its_recipient(
    http: HttpEnv,
) -> None:
    for char in ("\v", "\x85", "\u2028", "\r\n"):
        body = with_value(("recipients", 1, "substitutions", "v"), f"a{char}X-Evil: 1")
        status, payload = await http.inject(body)
        assert status == 200, payload
        assert payload["failed_recipients"] == ["b@example.com"], (char, payload)
        assert "X-Sub" in payload["errors"][0] or "Subject" in payload["errors"][0], payload


async def test_a_nul_in_a_body_is_refused_and_one_from_a_substitution_fails_its_recipient(
    http: HttpEnv,
) -> None:
    # Sent raw as 7bit before; RFC 5322 2.3 and RFC 2045 2.7 allow no NUL in a message.
    status, payload = await http.inject(with_value(("content", "text_body"), "a\x00b"))
    assert status == 400 and "content.text_body" in payload["error"]
    body = with_value(("content", "text_body"), "hi {{ v }}")
    body["content"].update(subject="Hello", headers={"X-Tenant": "acme"})  # v: body only
    body["recipients"][1]["substitutions"]["v"] = "a\x00b"
    status, payload = await http.inject(body)
    assert status == 200 and payload["failed_recipients"] == ["b@example.com"]
    assert "NUL" in payload["errors"][0]


@pytest.mark.parametrize("content_id", ['a>"<b', "a b", "<logo>", "a\\b"])
async def test_a_content_id_that_would_break_its_msg_id_is_a_400(
    http: HttpEnv, content_id: str
) -> None:
    status, payload = await http.inject(
        with_value(("content", "attachments", 1, "content_id"), content_id))
    assert status == 400 and "content.attachments[1].content_id" in payload["error"]


async def test_a_from_address_that_is_none_is_refused_or_fails_its_recipient(
    http: HttpEnv,
) -> None:
    # 'From: f @example.com' is no addr-spec (RFC 5322 3.4.1); recipients were checked.
    status, payload = await http.inject(with_value(("content", "from", "email"),
                                                   "f @example.com"))
    assert status == 400 and "content.from.email" in payload["error"]
    body = with_value(("content", "reply_to", "email"), "{{ v }}@example.com")
    body["recipients"][1]["substitutions"]["v"] = "b c"
    status, payload = await http.inject(body)
    assert status == 200 and payload["failed_recipients"] == ["b@example.com"]
    assert "Reply-To" in payload["errors"][0]
