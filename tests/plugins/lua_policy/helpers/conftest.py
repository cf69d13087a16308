"""Fixtures for the policy-extras tests: load a Lua policy that uses the helpers, with its
data files in a temp dir, in a runtime whose resolver asks the test DNS server."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.node.runtime import Runtime
from tests.plugins.lua_policy.support import make_runtime

ZONES: dict[str, Any] = {
    "gmail.test": {"MX": [(5, "gmail-smtp-in.l.google.com")]},
    "workspace.test": {"MX": [(5, "gmail-smtp-in.l.google.com")]},
    "gmail-smtp-in.l.google.com": {"A": ["127.0.0.1"]},
    "plain.test": {"MX": [(10, "mx.plain.test")]},
    "mx.plain.test": {"A": ["127.0.0.1"]},
    "alias.test": {"MX": [(10, "mx.plain.test")]},
    "nullmx.test": {"MX": [(0, ".")]},
}

Load = Callable[..., Awaitable[tuple[Runtime, Any]]]


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(dict(ZONES)) as server:
        yield server


@pytest.fixture
def files(tmp_path: Path) -> Callable[..., Path]:
    """``files(name=text, ...)``: write data files into tmp_path; returns the dir."""

    def write(**named: str) -> Path:
        for name, text in named.items():
            (tmp_path / name.replace("__", ".")).write_text(textwrap.dedent(text))
        return tmp_path

    return write


@pytest.fixture
def load_policy(tmp_path: Path, dns: TestDnsServer) -> Load:
    """``await load_policy(lua_source)``: the runtime and loaded policy plugin. ``DIR`` in
    the source is the temp dir; the resolver is the test DNS server."""

    async def load(source: str) -> tuple[Runtime, Any]:
        runtime = make_runtime()
        runtime.resolver.configure([dns.address])
        policy = tmp_path / "policy.lua"
        policy.write_text(textwrap.dedent(source).replace("DIR", str(tmp_path)))
        await runtime.load_policy(policy)
        return runtime, runtime.pm.get_plugin("policy")

    return load
