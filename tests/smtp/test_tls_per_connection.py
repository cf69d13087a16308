"""Per-connection TLS certificates: a ``via`` block (by the address the client reached),
a ``peer`` block (by the client's address) or the ``smtp_server_get_dynamic_parameters``
answer may name its own certificate, and STARTTLS presents it; otherwise the listener's
own. Files that cannot be loaded fail the start (static blocks) or refuse the connection
with a 421 naming the file in the log (dynamic answers and STARTTLS)."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from bench.common.smtp_client import RawSmtpClient
from kumocore import hookimpl
from kumocore.config import EsmtpListenerConfig
from kumocore.config.listeners import dynamic_overrides
from kumocore.errors import ConfigError
from kumocore.reception.smtp.tls_contexts import CONTEXTS, ContextCache
from tests.reception.harness import HOSTNAME, make_reception
from tests.smtp.conftest import StartSmtp


def make_pair(directory: Path, name: str) -> dict[str, str]:
    """A certificate for ``name`` and its key, written under ``directory``; the
    listener options naming them."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"tls_certificate": str(cert_file), "tls_private_key": str(key_file)}


async def served_name(port: int, *, host: str = "127.0.0.1", source: str = "127.0.0.1") -> str:
    """STARTTLS with Python's ssl client; the common name of the certificate served."""
    client = await RawSmtpClient.connect(port, host=host, source=source)
    try:
        ehlo = await client.hello()
        assert "STARTTLS" in ehlo.lines
        assert str(await client.starttls()) == "220 2.0.0 Ready to Start TLS"
        der = client.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert (await client.command("EHLO client.test")).code == 250  # TLS works
    finally:
        await client.close()
    [common_name] = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    return str(common_name.value)


async def test_via_blocks_serve_each_local_address_its_own_certificate(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    # KumoMTA's IP-based virtual hosting: one wildcard listener, a certificate per address.
    env = await start_smtp(
        listen="0.0.0.0:0",
        **make_pair(tmp_path, "listener.example"),
        via={
            "127.0.0.1": {"hostname": "one.example", **make_pair(tmp_path, "one.example")},
            "127.0.0.2": {"hostname": "two.example", **make_pair(tmp_path, "two.example")},
        },
    )
    port = env.listener.address[1]
    assert await served_name(port, host="127.0.0.1") == "one.example"
    assert await served_name(port, host="127.0.0.2") == "two.example"
    assert await served_name(port, host="127.0.0.3") == "listener.example"


async def test_peer_block_serves_its_certificate_to_that_client_only(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    env = await start_smtp(peer={"127.0.0.5": make_pair(tmp_path, "peer.example")})
    assert await served_name(env.port, source="127.0.0.5") == "peer.example"
    # Everyone else: the listener's own, self-signed for its hostname.
    assert await served_name(env.port, source="127.0.0.6") == HOSTNAME


async def test_a_block_changing_only_the_hostname_gets_a_self_signed_one_for_it(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(peer={"127.0.0.5": {"hostname": "virtual.example"}})
    assert await served_name(env.port, source="127.0.0.5") == "virtual.example"


async def test_a_hostname_block_keeps_the_listeners_configured_certificate(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    # With files configured the hostname does not go into the context: nothing to build.
    env = await start_smtp(
        **make_pair(tmp_path, "listener.example"),
        peer={"127.0.0.5": {"hostname": "virtual.example"}},
    )
    builds = CONTEXTS.builds
    assert await served_name(env.port, source="127.0.0.5") == "listener.example"
    assert CONTEXTS.builds == builds


async def test_without_overrides_the_listeners_own_context_is_used_and_nothing_built(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    env = await start_smtp(
        **make_pair(tmp_path, "listener.example"),
        peer={"127.0.0.5": make_pair(tmp_path, "peer.example")},
    )
    builds = CONTEXTS.builds
    for _ in range(3):
        assert await served_name(env.port, source="127.0.0.6") == "listener.example"
    assert CONTEXTS.builds == builds


class CertificatePolicy:
    """``smtp_server_get_dynamic_parameters`` answering with files per client address."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers

    @hookimpl
    def kumo_smtp_server_get_dynamic_parameters(
        self, listener: str, conn_meta: dict[str, Any]
    ) -> dict[str, Any] | None:
        return self.answers.get(conn_meta["received_from"].rsplit(":", 1)[0])


async def test_the_dynamic_answer_selects_the_certificate(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    policy = CertificatePolicy(
        {
            "127.0.0.5": make_pair(tmp_path, "dynamic.example"),
            # The answer beats the listener's own peer block.
            "127.0.0.7": make_pair(tmp_path, "dynamic-over-peer.example"),
        }
    )
    env = await start_smtp(policy, peer={"127.0.0.7": make_pair(tmp_path, "static.example")})
    assert await served_name(env.port, source="127.0.0.5") == "dynamic.example"
    assert await served_name(env.port, source="127.0.0.7") == "dynamic-over-peer.example"
    assert await served_name(env.port, source="127.0.0.6") == HOSTNAME  # nil answer


async def test_a_missing_file_in_a_dynamic_answer_refuses_with_421_naming_it(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.crt"
    answer = {**make_pair(tmp_path, "dynamic.example"), "tls_certificate": str(missing)}
    env = await start_smtp(CertificatePolicy({"127.0.0.5": answer}))
    with capture_logs() as logs:
        client = await env.client("127.0.0.5")
        assert str(await client.read_reply()) == f"421 4.3.0 {HOSTNAME} technical difficulties"
        assert await client.closed()
    [entry] = [e for e in logs if e["event"].startswith("smtp_server_get_dynamic_parameters")]
    assert str(missing) in entry["error"] and "No such file" in entry["error"]
    # The failure is not cached: once the file exists, the same answer is served.
    make_pair(tmp_path, "dynamic.example")
    (tmp_path / "dynamic.example.crt").rename(missing)
    assert await served_name(env.port, source="127.0.0.5") == "dynamic.example"


async def test_a_key_pair_that_cannot_be_assembled_at_starttls_gets_421(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    # The block names a certificate only, and the listener has no key to go with it: the
    # file itself loads at start, the pair only fails when a client asks for TLS.
    pair = make_pair(tmp_path, "peer.example")
    env = await start_smtp(peer={"127.0.0.5": {"tls_certificate": pair["tls_certificate"]}})
    client = await env.session("127.0.0.5")
    with capture_logs() as logs:
        reply = await client.command("STARTTLS")
        assert str(reply) == f"421 4.3.0 {HOSTNAME} technical difficulties"
        assert await client.closed()
    [entry] = [e for e in logs if e["event"].startswith("STARTTLS certificate")]
    assert "tls_private_key is required" in entry["error"]


@pytest.mark.parametrize("kind", ["peer", "via"])
@pytest.mark.parametrize("option", ["tls_certificate", "tls_private_key"])
async def test_a_missing_file_in_a_static_block_fails_the_start_naming_block_and_file(
    start_smtp: StartSmtp, tmp_path: Path, kind: str, option: str
) -> None:
    missing = tmp_path / "gone.pem"
    block = {**make_pair(tmp_path, "block.example"), option: str(missing)}
    with pytest.raises(ConfigError) as raised:
        await start_smtp(**{kind: {"127.0.0.9": block}})
    message = str(raised.value)
    assert f'kumo.start_esmtp_listener {kind}["127.0.0.9"]' in message
    assert f"{option}: cannot read {str(missing)!r}: No such file" in message


async def test_a_lua_policys_via_block_naming_a_missing_file_fails_the_node_start(
    tmp_path: Path,
) -> None:
    import kumocore_lua_policy as lua_policy  # a built-in plugin: always installed

    pair = make_pair(tmp_path, "one.example")
    missing = tmp_path / "nowhere.key"
    policy = tmp_path / "policy.lua"
    policy.write_text(f"""
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {{
    listen = '127.0.0.1:0',
    via = {{ ['127.0.0.1'] = {{ tls_certificate = '{pair["tls_certificate"]}',
                                tls_private_key = '{missing}' }} }},
  }}
end)
""")
    # The node starts the listeners its policy defines: the start fails, naming both.
    with pytest.raises(ConfigError) as raised:
        await make_reception(
            policy_file=str(policy), plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()),)
        )
    assert str(raised.value) == (
        'kumo.start_esmtp_listener via["127.0.0.1"]: tls_private_key: '
        f"cannot read {str(missing)!r}: No such file or directory"
    )


async def test_a_directory_named_alone_in_a_static_block_fails_the_start(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r'via\["127.0.0.2"\]: tls_private_key: .*directory'):
        await start_smtp(via={"127.0.0.2": {"tls_private_key": str(tmp_path)}})


@pytest.mark.parametrize("kind", ["peer", "via"])
def test_tls_required_client_ca_in_a_static_block_is_refused_at_load(kind: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{kind}\[\"10.0.0.1\"\].tls_required_client_ca'"):
        EsmtpListenerConfig.from_options(
            {kind: {"10.0.0.1": {"tls_required_client_ca": "/etc/ca.pem"}}}
        )


def test_tls_required_client_ca_in_a_dynamic_answers_block_is_refused() -> None:
    # Nested blocks of the answer were accepted and ignored like the static ones.
    with pytest.raises(ConfigError, match=r"'via\[\"10.0.0.1\"\].tls_required_client_ca' in smtp"):
        dynamic_overrides({"via": {"10.0.0.1": {"tls_required_client_ca": "/etc/ca.pem"}}})


def configs(*hostnames: str) -> list[EsmtpListenerConfig]:
    """Listener configs whose contexts are self-signed for ``hostnames`` (fast to make)."""
    return [EsmtpListenerConfig.from_options({"hostname": name}) for name in hostnames]


async def test_the_cache_keeps_the_most_recently_used_up_to_its_bound() -> None:
    cache = ContextCache(max_entries=2)
    a, b, c = configs("a.example", "b.example", "c.example")
    first_a = await cache.get(a)
    await cache.get(b)
    assert await cache.get(a) is first_a  # a hit, and now the most recently used
    await cache.get(c)  # one past the bound: b, the least recently used, goes
    assert len(cache) == 2
    assert a in cache and c in cache and b not in cache
    assert cache.builds == 3
    await cache.get(b)  # built again
    assert cache.builds == 4 and a not in cache


async def test_cached_contexts_expire_so_renewed_files_are_read_again() -> None:
    now = [0.0]
    cache = ContextCache(ttl=300.0, clock=lambda: now[0])
    [config] = configs("a.example")
    first = await cache.get(config)
    now[0] = 299.0
    assert await cache.get(config) is first
    now[0] = 301.0
    assert await cache.get(config) is not first
    assert cache.builds == 2


async def test_concurrent_connections_wait_for_one_build() -> None:
    cache = ContextCache()
    [config] = configs("a.example")
    contexts = await asyncio.gather(*(cache.get(config) for _ in range(5)))
    assert cache.builds == 1 and all(c is contexts[0] for c in contexts)
