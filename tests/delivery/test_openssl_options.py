"""``make_egress_path { openssl_options = ... }``: KumoMTA's OpenSSL flag names, checked
when the policy builds the path and applied to the STARTTLS handshake of a real delivery
(a Lua policy, a real node, a sink offering STARTTLS with a certificate of its own)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme

from kumocore.config.egress import EgressPathConfig
from kumocore.config.openssl_options import (
    NAMED_FLAGS,
    apply_openssl_options,
    parse_openssl_options,
)
from kumocore.errors import ConfigError
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink
from tests.support.dane import server_context

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
kumo.on('get_egress_path_config', function(domain, source, site)
  local path = {
    smtp_port = %(port)d, prohibited_hosts = {}, enable_tls = 'OpportunisticInsecure',
  }
  if %(options)r ~= '' then path.openssl_options = %(options)r end
  return kumo.make_egress_path(path)
end)
"""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _sink_context(ca: trustme.CA, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = server_context(ca.issue_cert("sink.test"))
    if max_version is not None:
        context.maximum_version = max_version
    return context


@pytest.fixture
async def tls12_sink(ca: trustme.CA) -> AsyncIterator[RecordingSink]:
    sink = await RecordingSink(tls_context=_sink_context(ca, max_version=ssl.TLSVersion.TLSv1_2)
                               ).start()
    yield sink
    await sink.stop()


@pytest.fixture
async def tls_sink(ca: trustme.CA) -> AsyncIterator[RecordingSink]:
    sink = await RecordingSink(tls_context=_sink_context(ca)).start()
    yield sink
    await sink.stop()


async def _first_outcome(make_node: MakeNode, sink: RecordingSink, options: str) -> dict[str, Any]:
    node = await make_node(POLICY % {"port": sink.port, "options": options}, sink=sink)
    await node.send(recipients="rcpt@tls.example")
    [record] = await node.wait_for("Delivery", "TransientFailure")
    return record


async def test_no_tlsv1_3_makes_the_handshake_settle_on_tls_1_2(
    make_node: MakeNode, tls_sink: RecordingSink
) -> None:
    record = await _first_outcome(make_node, tls_sink, "NO_TLSV1_3")
    assert record["type"] == "Delivery"
    assert record["tls_protocol_version"] == "TLSv1.2"


async def test_without_the_option_the_same_sink_speaks_tls_1_3(
    make_node: MakeNode, tls_sink: RecordingSink
) -> None:
    record = await _first_outcome(make_node, tls_sink, "")
    assert record["type"] == "Delivery"
    assert record["tls_protocol_version"] == "TLSv1.3"


async def test_refusing_the_only_version_the_peer_speaks_fails_the_attempt_not_the_message(
    make_node: MakeNode, tls12_sink: RecordingSink
) -> None:
    record = await _first_outcome(make_node, tls12_sink, "NO_TLSV1_2|NO_TLSV1_1|NO_TLSV1")
    assert record["type"] == "TransientFailure"
    assert record["response"]["code"] // 100 == 4
    assert not tls12_sink.messages  # never sent in clear text instead


async def test_a_misspelt_name_fails_the_policy_call_with_kumomtas_list_of_names(
    make_node: MakeNode, tls_sink: RecordingSink
) -> None:
    node = await make_node(POLICY % {"port": tls_sink.port, "options": "NO_TLSV1 | NO_TLSV1_1"},
                           sink=tls_sink)
    await node.send(recipients="rcpt@tls.example")
    # The path cannot be built: the message waits and the error names the bad flag.
    [record] = await node.wait_for("TransientFailure")
    assert "`NO_TLSV1 ` is not a valid SslOption name" in record["response"]["content"]
    assert not tls_sink.messages


def test_names_are_checked_when_the_path_is_made() -> None:
    path = EgressPathConfig.from_options({"openssl_options": "NO_TLSV1|NO_TLSV1_1"})
    assert path.openssl_options == "NO_TLSV1|NO_TLSV1_1"
    for bad in ("", "no_tlsv1", "NO_TLSV1 | NO_TLSV1_1", "NO_TLSV1|"):
        with pytest.raises(ConfigError, match="is not a valid SslOption name"):
            EgressPathConfig.from_options({"openssl_options": bad})
    with pytest.raises(ConfigError, match="openssl_options"):
        EgressPathConfig.from_options({"openssl_options": 7})


def test_the_error_lists_the_names_as_kumomta_sorts_them() -> None:
    with pytest.raises(ValueError) as error:
        parse_openssl_options("TLSV1")
    listed = str(error.value).split("Possible values are ")[1].split(" joined")[0]
    names = [name.strip("`") for name in listed.split(", ")]
    # Flags that add no bit (retired ones, DTLS aliases, the mask) are accepted, not listed.
    assert "NO_SSLV2" not in names and "NO_SSL_MASK" not in names and "NO_DTLSV1" not in names
    assert names.index("NO_TLSV1_1") < names.index("NO_TLSV1")
    assert names.index("ALLOW_UNSAFE_LEGACY_RENEGOTIATION") < names.index("ALL")
    assert len(names) == 18


@pytest.mark.parametrize(("name", "python_flag"), [
    ("NO_SSLV3", ssl.OP_NO_SSLv3), ("NO_TLSV1", ssl.OP_NO_TLSv1),
    ("NO_TLSV1_1", ssl.OP_NO_TLSv1_1), ("NO_TLSV1_2", ssl.OP_NO_TLSv1_2),
    ("NO_TLSV1_3", ssl.OP_NO_TLSv1_3), ("NO_TICKET", ssl.OP_NO_TICKET),
    ("NO_COMPRESSION", ssl.OP_NO_COMPRESSION), ("NO_RENEGOTIATION", ssl.OP_NO_RENEGOTIATION),
    ("CIPHER_SERVER_PREFERENCE", ssl.OP_CIPHER_SERVER_PREFERENCE),
    ("ENABLE_MIDDLEBOX_COMPAT", ssl.OP_ENABLE_MIDDLEBOX_COMPAT),
    ("NO_SSLV2", ssl.OP_NO_SSLv2), ("SINGLE_DH_USE", ssl.OP_SINGLE_DH_USE),
])
def test_flag_values_are_the_ones_pythons_openssl_uses(name: str, python_flag: int) -> None:
    assert NAMED_FLAGS[name] == int(python_flag)


def test_all_is_openssls_set_which_python_exports_without_empty_fragments() -> None:
    assert NAMED_FLAGS["ALL"] == int(ssl.OP_ALL) | NAMED_FLAGS["DONT_INSERT_EMPTY_FRAGMENTS"]


def test_the_value_replaces_the_named_flags_and_keeps_the_others() -> None:
    context = ssl.create_default_context()
    assert context.options & ssl.OP_NO_COMPRESSION  # a default the value will replace
    named = 0
    for value in NAMED_FLAGS.values():
        named |= value
    unnamed = int(context.options) & ~named
    assert unnamed  # e.g. OpenSSL's IGNORE_UNEXPECTED_EOF, which Python sets
    apply_openssl_options(context, "NO_TICKET")
    assert context.options & ssl.OP_NO_TICKET
    assert not context.options & ssl.OP_NO_COMPRESSION
    assert int(context.options) & unnamed == unnamed
