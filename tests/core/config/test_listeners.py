from __future__ import annotations

import socket
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.config import (
    CidrSet,
    EsmtpListenerConfig,
    HttpListenerConfig,
    ListenerDomain,
    TraceHeaders,
)

# The listener table of /work/shared/seed/example-policy.lua, as the Lua bridge hands it over.
SEED_ESMTP_LISTENER: dict[str, Any] = {
    "listen": "0.0.0.0:25",
    "relay_hosts": ["127.0.0.1", "192.168.1.0/24"],
    "domains": {
        "examplecorp.com": {"relay_to": True},
        "send.examplecorp.com": {"relay_from": ["10.0.0.0/24"]},
        "bounce.examplecorp.com": {"log_oob": True},
        "fbl.examplecorp.com": {"log_arf": True},
    },
}


def test_esmtp_defaults_are_kumomtas() -> None:
    listener = EsmtpListenerConfig.from_options({})
    assert listener.listen == "127.0.0.1:2025"
    assert listener.hostname == socket.gethostname()
    assert listener.banner == "kumocore ESMTP"
    assert listener.relay_hosts == CidrSet(["127.0.0.1", "::1"])
    assert listener.max_connections == 32768
    assert listener.max_messages_per_connection == 10000
    assert listener.max_recipients_per_message == 1024
    assert listener.max_message_size == 20 * 1024 * 1024
    assert listener.data_buffer_size == 128 * 1024
    assert listener.client_timeout == 60
    assert listener.data_processing_timeout == 300
    assert listener.line_length_hard_limit == 998
    assert listener.invalid_line_endings == "Deny"
    assert listener.batch_handling == "BifurcateAlways"
    assert listener.trace_headers == TraceHeaders(
        received_header=True,
        supplemental_header=True,
        header_name="X-KumoRef",
        include_meta_names=(),
    )
    assert (listener.deferred_spool, listener.deferred_queue) == (False, False)
    assert listener.meta == {} and listener.domains == {}
    assert listener.tls_certificate is None and listener.tls_private_key is None


def test_seed_policy_listener_and_domains() -> None:
    listener = EsmtpListenerConfig.from_options(SEED_ESMTP_LISTENER)
    assert listener.listen_host_port() == ("0.0.0.0", 25)
    assert listener.relay_hosts.contains("192.168.1.200")
    inbound = listener.domains["examplecorp.com"]
    assert inbound.relay_to and not inbound.should_log_oob
    send = listener.domains["send.examplecorp.com"]
    assert send.relay_from.contains("10.0.0.9") and not send.relay_from.contains("10.0.1.9")
    assert listener.domains["bounce.examplecorp.com"].log_oob == "LogThenRelay"
    assert listener.domains["bounce.examplecorp.com"].should_log_oob
    assert listener.domains["fbl.examplecorp.com"].should_log_arf
    assert not listener.domains["fbl.examplecorp.com"].should_log_oob
    assert EsmtpListenerConfig.from_options(listener.to_dict()) == listener


def test_listener_domain_lookup_ignores_case_and_supports_wildcards() -> None:
    listener = EsmtpListenerConfig.from_options(
        {"domains": {"Example.com": {"relay_to": True}, "*.bounce.example.com": {"log_oob": True}}}
    )
    assert listener.listener_domain("EXAMPLE.COM.") is not None
    assert listener.listener_domain("a.bounce.example.com") is not None
    assert listener.listener_domain("bounce.example.com") is None
    assert listener.listener_domain("other.com") is None


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("[::1]:25", ("::1", 25)), ("0.0.0.0:25", ("0.0.0.0", 25)), ("127.0.0.1:0", ("127.0.0.1", 0))],
)
def test_listen_host_port(listen: str, expected: tuple[str, int]) -> None:
    assert EsmtpListenerConfig.from_options({"listen": listen}).listen_host_port() == expected
    assert HttpListenerConfig.from_options({"listen": listen}).listen_host_port() == expected


def test_sizes_accept_numbers_and_units() -> None:
    listener = EsmtpListenerConfig.from_options({"max_message_size": "10MB"})
    assert listener.max_message_size == 10_000_000
    assert EsmtpListenerConfig.from_options({"max_message_size": 1024}).max_message_size == 1024


def test_peer_and_via_blocks_override_per_connection() -> None:
    listener = EsmtpListenerConfig.from_options(
        {
            "meta": {"site": "a"},
            "peer": {
                "10.0.0.0/8": {"banner": "ten", "meta": {"zone": "ten"}},
                "10.1.0.0/16": {"banner": "ten-one", "max_recipients_per_message": 5},
            },
            "via": {"127.0.0.1": {"client_timeout": "5s"}},
        }
    )
    most_specific = listener.for_connection("10.1.2.3", "127.0.0.2")
    assert (most_specific.banner, most_specific.max_recipients_per_message) == ("ten-one", 5)
    wide = listener.for_connection("10.2.0.1", "127.0.0.1")
    assert (wide.banner, wide.client_timeout) == ("ten", 5.0)
    assert wide.meta == {"site": "a", "zone": "ten"}
    assert listener.for_connection("192.0.2.1", "127.0.0.2") is listener
    assert EsmtpListenerConfig.from_options(listener.to_dict()) == listener


def test_make_listener_domain_defaults_and_legacy_booleans() -> None:
    domain = ListenerDomain.from_options({})
    assert domain.relay_to is False
    assert len(domain.relay_from) == 0
    assert (domain.log_oob, domain.log_arf) == ("Ignore", "Ignore")
    assert ListenerDomain.from_options({"log_oob": False}).log_oob == "Ignore"
    drop = ListenerDomain.from_options({"log_arf": "LogThenDrop"})
    assert drop.should_log_arf and drop.log_arf == "LogThenDrop"


def test_http_defaults_are_kumomtas() -> None:
    http = HttpListenerConfig.from_options({})
    assert http.listen == "127.0.0.1:8000"
    assert http.hostname == socket.gethostname()
    assert http.use_tls is False
    assert http.trusted_hosts == CidrSet(["127.0.0.1", "::1"])
    assert http.request_body_limit == 2 * 1024 * 1024


def test_seed_policy_http_listeners() -> None:
    plain = HttpListenerConfig.from_options(
        {"listen": "0.0.0.0:8000", "trusted_hosts": ["127.0.0.1", "::1"]}
    )
    tls = HttpListenerConfig.from_options(
        {"use_tls": True, "listen": "0.0.0.0:8001", "trusted_hosts": ["127.0.0.1", "::1"]}
    )
    assert plain.trusted_hosts.contains("::ffff:127.0.0.1")
    assert tls.use_tls and tls.listen_host_port() == ("0.0.0.0", 8001)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"listen": "::1:25"}, "'listen'"),
        ({"relay_hosts": ["192.168.1.1/24"]}, "'relay_hosts[1]'"),
        ({"invalid_line_endings": "deny"}, "'invalid_line_endings'"),
        ({"client_timeout": "a while"}, "'client_timeout'"),
        ({"max_message_size": "huge"}, "'max_message_size'"),
        ({"max_connections": 0}, "'max_connections'"),
        ({"deferred_spool": "false"}, "'deferred_spool'"),
        ({"trace_headers": {"received_header": 1}}, "'trace_headers.received_header'"),
        ({"trace_headers": {"header": "X"}}, "'trace_headers.header'"),
        ({"domains": {"a.com": {"log_oob": "Yes"}}}, "'domains[\"a.com\"].log_oob'"),
        ({"domains": {"a.com": {"relay_from": ["10.0.0.1/8"]}}}, "relay_from[1]"),
        ({"domains": {"a.com": {"relay": True}}}, "'domains[\"a.com\"].relay'"),
        ({"peer": {"10.0.0.1/8": {}}}, "'peer[\"10.0.0.1/8\"]'"),
        ({"peer": {"10.0.0.0/8": {"listen": "0.0.0.0:26"}}}, "'peer[\"10.0.0.0/8\"].listen'"),
        ({"via": {"::1": {"banner": 3}}}, "'via[\"::1\"].banner'"),
        ({"tls_certificate": 5}, "'tls_certificate'"),
        ({"relay_host": ["127.0.0.1"]}, "'relay_host'"),
    ],
)
def test_bad_esmtp_values_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        EsmtpListenerConfig.from_options(options)
    assert key in str(info.value)
    assert "kumo.start_esmtp_listener" in str(info.value)


def test_bad_log_disposition_lists_the_allowed_values_in_kumomtas_words() -> None:
    with pytest.raises(ConfigError) as info:
        ListenerDomain.from_options({"log_oob": "Log"})
    assert str(info.value) == (
        "'log_oob' in kumo.make_listener_domain: invalid value: string \"Log\", expected a "
        "boolean value or one of 'Ignore', 'LogThenDrop' or 'LogThenRelay'"
    )
    with pytest.raises(ConfigError, match=r"invalid value for 'log_arf'.*expected one of"):
        ListenerDomain.from_options({"log_arf": 5})


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"use_tls": "yes"}, "'use_tls'"),
        ({"trusted_hosts": ["::1/64"]}, "'trusted_hosts[1]'"),
        ({"request_body_limit": -1}, "'request_body_limit'"),
        ({"listen": 8000}, "'listen'"),
    ],
)
def test_bad_http_values_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        HttpListenerConfig.from_options(options)
    assert key in str(info.value)
