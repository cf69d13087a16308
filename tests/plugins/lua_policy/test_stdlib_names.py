"""kumo.version, kumo.dns.reverse_ip / ptr_host and kumo.http.build_url, from Lua and
Python, checked against the examples of KumoMTA's reference."""

from __future__ import annotations

from pathlib import Path

import pytest

import kumocore

from .support import Recorder, load, make_runtime

V6_LOOPBACK = ".".join("1" + "0" * 31)


async def test_lua_version_is_a_string_constant(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(type(kumo.version))
        kumo.test.mark(kumo.version)
    """, recorder=recorder)
    assert recorder.marks == ["string", kumocore.__version__]


def test_python_version_is_a_function() -> None:
    assert make_runtime().kumo.version() == kumocore.__version__


async def test_lua_reverse_ip_and_ptr_host_for_ipv4_and_ipv6(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.dns.reverse_ip '127.0.0.1')
        kumo.test.mark(kumo.dns.reverse_ip '::1')
        kumo.test.mark(kumo.dns.ptr_host '127.0.0.1')
        kumo.test.mark(kumo.dns.ptr_host '::1')
        kumo.test.mark(kumo.dns.ptr_host '192.0.2.1')
        kumo.test.mark(kumo.dns.ptr_host '2001:DB8::1')
        kumo.test.mark(kumo.dns.reverse_ip '::ffff:192.0.2.1')
    """, recorder=recorder)
    assert recorder.marks == [
        "1.0.0.127", V6_LOOPBACK, "1.0.0.127.in-addr.arpa", f"{V6_LOOPBACK}.ip6.arpa",
        "1.2.0.192.in-addr.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        "1.0.2.0.0.0.0.c.f.f.f.f" + ".0" * 20,
    ]


@pytest.mark.parametrize("bad", [
    "not-an-ip", "1.2.3", "01.2.3.4", "256.1.1.1", "fe80::1%eth0", "[::1]", "127.0.0.1:25", "",
])
async def test_lua_reverse_ip_refuses_what_is_not_an_address(tmp_path: Path, bad: str) -> None:
    recorder = Recorder()
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.test.mark({{ pcall(kumo.dns.reverse_ip, '{bad}') }})
        kumo.test.mark({{ pcall(kumo.dns.ptr_host, '{bad}') }})
        kumo.test.mark({{ pcall(kumo.dns.ptr_host, 1) }})
    """, recorder=recorder)
    for ok, error in recorder.marks:
        assert not ok
        assert str(error).endswith(": invalid IP address syntax")


async def test_lua_build_url_appends_encoded_parameters(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local b = kumo.http.build_url
        kumo.test.mark(b('https://example.com/?existing=value', { a = 1, b = 2 }))
        kumo.test.mark(b('https://Example.COM:443', {}))
        kumo.test.mark(b('http://example.com:8080/a b#top', { q = 'x y&z=ü', n = 1.5 }))
        kumo.test.mark(b('https://example.com/?', { k = '*-._~' }))
        kumo.test.mark({ pcall(b, 'example.com/path', { a = 1 }) })
        kumo.test.mark({ pcall(b, 'https://example.com/', { a = true }) })
        kumo.test.mark({ pcall(b, 'https://example.com/') })
    """, recorder=recorder)
    assert recorder.marks[:4] == [
        "https://example.com/?existing=value&a=1&b=2",
        "https://example.com/?",
        "http://example.com:8080/a%20b?n=1.5&q=x+y%26z%3D%C3%BC#top",
        "https://example.com/?k=*-._%7E",
    ]
    errors = [str(error) for ok, error in recorder.marks[4:] if not ok]
    assert errors == [
        "kumo.http.build_url: relative URL without a base",
        "kumo.http.build_url: parameter 'a' must be a string or a number, got True",
        "kumo.http.build_url: PARAMS must be a table of name = value",
    ]


def test_python_build_url_and_reverse_names() -> None:
    kumo = make_runtime().kumo
    assert kumo.http.build_url("https://example.com", {"a": "1"}) == "https://example.com/?a=1"
    assert kumo.dns.ptr_host("10.1.2.3") == "3.2.1.10.in-addr.arpa"
