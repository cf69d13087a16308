"""A Lua policy ported from KumoMTA with ``deferred_queue = true``: its
``smtp_server_message_deferred_inject`` handler signs with DKIM, sets the tenant from the
(synthesized) connection meta, and bounces with ``kumo.reject``.

A real node, the SMTP client bound to 127.0.0.5, the recording sink, and dkimpy checking
the signature the sink received against the key's DNS record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kumocore.dkim import public_key_record

pytestmark = pytest.mark.slow

POLICY = """
local kumo = require 'kumo'

kumo.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', 'not-deferred') -- must not run on a deferred_queue listener
end)

kumo.on('smtp_server_message_deferred_inject', function(msg, conn_meta)
  if msg:recipient().user == 'refused' then
    kumo.reject(550, '5.7.1 refused after the fact')
  end
  -- The connection meta is made from the message's: what the session knew.
  msg:set_meta('tenant', conn_meta:get_meta('ehlo_domain'))
  conn_meta:set_meta('changed_in_handler', true) -- not kept
  local signer = kumo.dkim.rsa_sha256_signer {
    domain = msg:from_header().domain,
    selector = 'default',
    headers = { 'From', 'To', 'Subject' },
    key = '%KEY%',
  }
  msg:dkim_sign(signer)
end)
"""
LISTENER = {"deferred_queue": True, "domains": {"example.com": {"relay_to": True}}}
MESSAGE = b"From: Alice <alice@sender.example>\r\nTo: bob@example.com\r\n" \
          b"Subject: deferred\r\n\r\nhello\r\n"  # fmt: skip


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    """An RSA key file and its DNS record."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    return path, public_key_record(private)


async def test_the_lua_handler_signs_sets_meta_and_rejects_after_the_250(
    make_node: Any, key: tuple[Path, str]
) -> None:
    path, record = key
    node = await make_node(POLICY.replace("%KEY%", str(path)), esmtp=LISTENER)
    refused = await node.send("alice@sender.example", ["bob@example.com", "refused@example.com"],
                              MESSAGE, source_address="127.0.0.5")  # fmt: skip
    assert refused == {}  # one 250 for both: the refusal comes later, as a Bounce
    (bounce,) = await node.wait_for("Bounce")
    assert bounce["recipient"] == "refused@example.com"
    assert bounce["response"]["code"] == 550
    (rebind,) = await node.wait_for("DeferredInjectionRebind")
    (delivery,) = await node.wait_for("Delivery")
    tenant = node.logs("Reception")[0]["meta"]["ehlo_domain"]
    assert rebind["queue"] == delivery["queue"] == f"{tenant}@example.com"
    assert "changed_in_handler" not in delivery["meta"]
    (received,) = node.sink.messages
    assert received.data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(received.data, dnsfunc=lambda *_a, **_k: record.encode())
