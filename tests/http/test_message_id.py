"""Injected mail gets a Message-ID unless it has one (or the listener keeps KumoMTA's way)."""

from __future__ import annotations

import re

from tests.http.conftest import StartHttp
from tests.http.test_inject import request


async def test_a_message_without_message_id_gets_one_on_the_listener_hostname(
    start_http: StartHttp,
) -> None:
    http = await start_http(hostname="inject.example")
    await http.inject(request("Subject: x\n\nbody", {"email": "a@example.com"},
                              {"email": "b@example.com"}))  # fmt: skip
    ids = [m.get_first_named_header_value("Message-ID") for m in http.messages]
    assert all(re.fullmatch(r"<[0-9a-f]{32}@inject\.example>", i or "") for i in ids), ids
    assert ids[0] != ids[1]


async def test_a_message_id_given_by_the_client_is_kept(start_http: StartHttp) -> None:
    http = await start_http()
    await http.inject(request("Message-ID: <mine@client.example>\nSubject: x\n\nbody",
                              {"email": "a@example.com"}))  # fmt: skip
    (message,) = http.messages
    assert message.get_all_named_header_values("Message-ID") == ["<mine@client.example>"]


async def test_generate_message_id_false_keeps_kumomtas_behaviour(start_http: StartHttp) -> None:
    http = await start_http(generate_message_id=False)
    await http.inject(request("Subject: x\n\nbody", {"email": "a@example.com"}))
    (message,) = http.messages
    assert message.get_first_named_header_value("Message-ID") is None
