"""A Python policy gets the same ``kumo.dmarc.check_msg`` and ``kumo.string.psl_*`` as
Lua, on a running node: a ``p=quarantine`` failure is refused with the policy's 550, an
aligned message is delivered with its DMARC disposition."""

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
    dkim = await message.dkim_verify()
    spf = await _kumo.spf.check_msg(message)
    dmarc = await _kumo.dmarc.check_msg(message, dkim, None, spf["result"], False)
    if dmarc["disposition"] == "Quarantine":
        _kumo.reject(550, "5.7.1 DMARC: " + dmarc["result"]["reason"])
    message.set_meta("dmarc", dmarc["disposition"])
    message.set_meta("org", _kumo.string.psl_domain(message.from_header().domain))
'''


def _mail(from_address: str) -> str:
    return f"From: {from_address}\r\nTo: user@dest.example\r\nSubject: hi\r\n\r\nhello\r\n"


async def test_python_policy_refuses_quarantine_and_delivers_an_aligned_pass(
    make_node: Any,
) -> None:
    zones = {"esp.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
             "brand.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
             "_dmarc.brand.example": {"TXT": ["v=DMARC1; p=quarantine; aspf=s"]}}
    node = await make_node(POLICY, language="python", zones=zones)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await node.send("bounce@esp.example", "user@dest.example", _mail("a@brand.example"))
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 DMARC: DMARC: SPF strict check failed"
    assert await node.send("a@brand.example", "user@dest.example",
                           _mail("a@Brand.example")) == {}
    [delivery] = await node.wait_for("Delivery")
    assert delivery["meta"]["dmarc"] == "Pass"
    assert delivery["meta"]["org"] == "brand.example"
