"""Helpers for Lua policy tests: write a policy, load it into a fresh runtime.

:class:`Recorder` contributes ``kumo.test.*`` functions so a policy can report what it did
(``kumo.test.mark('x')``) and block on events the test controls (``kumo.test.wait('a')``),
which is how the tests prove that handlers interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kumocore_lua_policy import LuaPolicyPlugin

from bench.common.dns_server import TestDnsServer
from kumocore import Rejection, hookimpl
from kumocore.dkim.keys import public_key_record
from kumocore.node.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parents[3]

DATA = (
    b"From: Alice <alice@examplecorp.com>\r\n"
    b"To: Bob <bob@gmail.com>\r\n"
    b"Subject: hello\r\n"
    b"X-Tenant: TenantOne\r\n"
    b"X-Campaign: spring\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
)


class Recorder:
    """A plugin contributing ``kumo.test.*`` to the policy under test."""

    def __init__(self) -> None:
        self.marks: list[Any] = []
        self.gates: dict[str, asyncio.Event] = {}
        #: What ``kumo.test.value()`` returns to the policy.
        self.value: Any = None

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def wait_for_marks(self, count: int, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.marks) < count:
                await asyncio.sleep(0.001)
        return self.marks

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        def mark(value: Any) -> None:
            self.marks.append(value)

        async def wait(name: str) -> str:
            await self.gate(name).wait()
            return name

        async def echo(value: Any) -> Any:
            await asyncio.sleep(0)
            return value

        async def fail(text: str) -> None:
            await asyncio.sleep(0)
            raise ValueError(text)

        async def reject(code: int, text: str) -> None:
            await asyncio.sleep(0)
            raise Rejection(code, text)

        def value() -> Any:
            return self.value

        return {
            "test.value": value,
            "test.mark": mark,
            "test.wait": wait,
            "test.echo": echo,
            "test.fail": fail,
            "test.reject": reject,
        }


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def make_runtime(recorder: Recorder | None = None) -> Runtime:
    """A runtime with only core, the Lua loader and the recorder (no other entry points)."""
    return Runtime(
        load_entrypoints=False,
        extra_plugins=(("lua_policy", LuaPolicyPlugin), ("test", recorder or Recorder())),
    )


async def load(
    directory: Path, source: str, *, recorder: Recorder | None = None, name: str = "policy.lua"
) -> tuple[Runtime, Any]:
    """Write ``source`` as a policy and load it (top level only, not ``init``).

    Returns the runtime and the policy plugin object.
    """
    runtime = make_runtime(recorder)
    await runtime.load_policy(write(directory, name, source))
    return runtime, runtime.pm.get_plugin("policy")


@contextlib.contextmanager
def dkim_key_server() -> Iterator[tuple[TestDnsServer, str]]:
    """A DNS server publishing a fresh RSA key at ``sel._domainkey.examplecorp.com`` (the
    From domain of :data:`DATA`), and that key's private PEM to sign with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    zones = {"sel._domainkey.examplecorp.com": {"TXT": [public_key_record(key)]}}
    with TestDnsServer(zones) as server:
        yield server, pem
