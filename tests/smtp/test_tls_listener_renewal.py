"""A listener's own certificate is read again every five minutes: a renewed file is
served without a restart (in the background: no client waits for the read), and a file
that cannot be read keeps the last good certificate serving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kumocore.reception import tls_reload
from kumocore.reception.tls_reload import RELOAD_AFTER as CONTEXT_TTL
from kumocore.reception.tls_reload import ListenerContexts
from tests.http.conftest import StartHttp
from tests.http.conftest import start_http as start_http  # the fixture, for HTTPS
from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import StartSmtp
from tests.smtp.test_tls_per_connection import make_pair, served_name


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeClock, ListenerContexts]:
    fake = FakeClock()
    contexts = ListenerContexts(clock=fake)
    monkeypatch.setattr(tls_reload, "LISTENER_CONTEXTS", contexts)
    return fake, contexts


def renew(directory: Path, files: dict[str, str], name: str) -> None:
    """Write a new certificate and key for ``name`` over the listener's files."""
    (directory / name).mkdir()
    fresh = make_pair(directory / name, name)
    for option, path in files.items():
        Path(path).write_bytes(Path(fresh[option]).read_bytes())


async def wait_for_reloads(contexts: ListenerContexts, count: int) -> None:
    async with asyncio.timeout(5):
        while contexts.reloads < count:
            await asyncio.sleep(0.01)


async def test_a_renewed_certificate_is_served_after_five_minutes_without_a_restart(
    start_smtp: StartSmtp, tmp_path: Path, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    files = make_pair(tmp_path, "listener.example")
    env = await start_smtp(**files)
    assert await served_name(env.port) == "listener.example"
    renew(tmp_path, files, "renewed.example")
    fake.now += CONTEXT_TTL - 1
    assert await served_name(env.port) == "listener.example"  # not due yet
    fake.now += 2
    # The connection that finds the read due is served at once with the current one.
    assert await served_name(env.port) == "listener.example"
    await wait_for_reloads(contexts, 1)
    assert await served_name(env.port) == "renewed.example"
    assert await served_name(env.port) == "renewed.example"
    assert contexts.reloads == 1  # one read per period, not one per connection


async def test_a_certificate_file_that_cannot_be_read_keeps_the_last_good_one(
    start_smtp: StartSmtp, tmp_path: Path, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    files = make_pair(tmp_path, "listener.example")
    env = await start_smtp(**files)
    assert await served_name(env.port) == "listener.example"
    Path(files["tls_certificate"]).write_text("half-written by the renewal\n")
    fake.now += CONTEXT_TTL + 1
    with capture_logs() as logs:
        assert await served_name(env.port) == "listener.example"
        async with asyncio.timeout(5):
            while not any("cannot be read again" in e["event"] for e in logs):
                await asyncio.sleep(0.01)
    assert await served_name(env.port) == "listener.example"
    assert contexts.reloads == 0
    # Mended later: picked up at the next period.
    renew(tmp_path, files, "mended.example")
    fake.now += CONTEXT_TTL + 1
    assert await served_name(env.port) == "listener.example"
    await wait_for_reloads(contexts, 1)
    assert await served_name(env.port) == "mended.example"


async def test_a_self_signed_listener_certificate_is_never_rebuilt(
    start_smtp: StartSmtp, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    env = await start_smtp()
    assert await served_name(env.port) == HOSTNAME
    fake.now += 10 * CONTEXT_TTL
    assert await served_name(env.port) == HOSTNAME
    await asyncio.sleep(0.05)
    assert contexts.reloads == 0


async def https_served_name(port: int) -> str:
    """The common name of the certificate an HTTPS listener presents."""
    import ssl

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    [name] = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)  # fmt: skip
    return str(name.value)


async def test_an_https_listener_serves_its_renewed_certificate_too(
    start_http: StartHttp, tmp_path: Path, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    files = make_pair(tmp_path, "api.example")
    env = await start_http(use_tls=True, **files)
    port = env.listener.address[1]
    assert await https_served_name(port) == "api.example"
    renew(tmp_path, files, "renewed-api.example")
    fake.now += CONTEXT_TTL + 1
    assert await https_served_name(port) == "api.example"
    await wait_for_reloads(contexts, 1)
    assert await https_served_name(port) == "renewed-api.example"
    # The renewed context serves requests, not only handshakes.
    status, _, _ = await env.request("GET", "/api/check-liveness/v1")
    assert status == 200
