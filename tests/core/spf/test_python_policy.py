"""A Python policy gets the same ``kumo.spf.*`` functions as Lua (awaited), on a running
node: a ``fail`` is refused with the policy's 550, a ``pass`` is delivered."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest

POLICY = '''
from typing import Any
from kumocore import hookimpl

_kumo: Any = None

@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo

@hookimpl
async def kumo_smtp_server_message_received(message: Any, conn_meta: Any) -> None:
    spf = await _kumo.spf.check_msg(message)
    if spf["disposition"] == "fail":
        _kumo.reject(550, "5.7.1 SPF: " + spf["result"]["reason"])
    message.set_meta("spf", spf["disposition"])
'''


async def test_python_policy_refuses_fail_and_delivers_pass(make_node: Any) -> None:
    zones = {"denied.example": {"TXT": ["v=spf1 -all"]},
             "allowed.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}
    node = await make_node(POLICY, language="python", zones=zones)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await node.send("joe@denied.example", "user@dest.example")
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 SPF: matched '-all' directive"
    assert await node.send("joe@allowed.example", "user@dest.example") == {}
    [delivery] = await node.wait_for("Delivery")
    assert delivery["sender"] == "joe@allowed.example"
    assert delivery["meta"]["spf"] == "pass"
