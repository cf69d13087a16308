"""kumo.dns.load_resolv_conf: a resolv.conf file read (bounded, regular files only) into
the table kumo.dns.configure_resolver takes, as KumoMTA's loader shapes it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError
from kumocore.dns import Resolver, make_dns_functions
from kumocore.dns import resolv_conf as resolv_conf_module
from kumocore.dns.resolv_conf import MAX_RESOLV_CONF_BYTES, parse_resolv_conf
from tests.plugins.lua_policy.support import Recorder, load

SAMPLE = """\
# written by a DHCP client
nameserver 192.0.2.53
nameserver fe80::1%eth0   ; link-local, with its zone
nameserver 2001:db8::53
domain corp.example
search a.example b.example
options ndots:3 timeout:7 rotate attempts:4 edns0 single-request
sortlist 130.155.160.0/255.255.240.0
"""


def _load(path: Any = None) -> dict[str, Any]:
    fns = make_dns_functions(Resolver(["127.0.0.1:9"]))
    result: dict[str, Any] = (
        fns["dns.load_resolv_conf"](path) if path is not None else fns["dns.load_resolv_conf"]()
    )
    return result


def test_a_resolv_conf_file_becomes_kumomtas_resolver_table(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(SAMPLE)
    assert _load(str(path)) == {
        "name_servers": ["192.0.2.53:53", "[fe80::1]:53", "[2001:db8::53]:53"],
        "domain": "corp.example",
        "search": ["a.example", "b.example"],
        "options": {"ndots": 3, "timeout": "7s", "attempts": 4, "edns0": True},
    }


def test_defaults_and_the_last_of_domain_or_search_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resolv_conf_module.socket, "gethostname", lambda: "mta1")
    assert parse_resolv_conf("search x.example\ndomain y.example\nnameserver 10.0.0.1\n") == {
        "name_servers": ["10.0.0.1:53"],
        "domain": "y.example",
        "search": ["y.example"],
        "options": {"ndots": 1, "timeout": "5s", "attempts": 2, "edns0": False},
    }
    assert parse_resolv_conf("")["name_servers"] == []
    assert "domain" not in parse_resolv_conf("search --\n")
    assert parse_resolv_conf("search --\n")["search"] == []
    # No domain line: the host name's domain, as the C library (and KumoMTA) derive it.
    monkeypatch.setattr(resolv_conf_module.socket, "gethostname", lambda: "mta1.corp.example")
    assert parse_resolv_conf("nameserver 10.0.0.1\n")["domain"] == "corp.example"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("nameserver ns1.example\n", "nameserver 'ns1.example'"),
        ("options ndots:many\n", "ndots"),
        ("options timeout:\u00b2\n", "timeout"),
    ],
)
def test_malformed_lines_are_config_errors_naming_them(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_resolv_conf(text)


def test_without_a_path_the_system_file_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "system-resolv.conf"
    path.write_text("nameserver 198.51.100.1\n")
    monkeypatch.setattr(resolv_conf_module, "DEFAULT_PATH", str(path))
    assert _load()["name_servers"] == ["198.51.100.1:53"]


def test_a_file_past_the_bound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.conf"
    line = "nameserver 10.0.0.1\n"
    path.write_text(line * (MAX_RESOLV_CONF_BYTES // len(line) + 1))
    assert path.stat().st_size > MAX_RESOLV_CONF_BYTES
    with pytest.raises(ConfigError, match=f"larger than {MAX_RESOLV_CONF_BYTES} bytes"):
        _load(str(path))
    path.write_text(line * (MAX_RESOLV_CONF_BYTES // len(line)))  # at the bound: read
    assert len(_load(str(path))["name_servers"]) == MAX_RESOLV_CONF_BYTES // len(line)


def test_fifos_directories_and_missing_files_are_refused_without_waiting(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer
    with pytest.raises(ConfigError, match="not a regular file"):
        _load(str(fifo))
    with pytest.raises(ConfigError, match="not a regular file"):
        _load(str(tmp_path))
    with pytest.raises(ConfigError, match="cannot read"):
        _load(str(tmp_path / "missing"))


async def test_lua_loads_the_file_layers_options_and_configures_the_resolver(
    tmp_path: Path,
) -> None:
    with TestDnsServer({"gmail.com": {"MX": [(5, "mx.gmail.example")]}}) as server:
        conf = tmp_path / "resolv.conf"
        conf.write_text(
            "nameserver 192.0.2.1\nsearch corp.example\noptions timeout:1 attempts:0 edns0\n"
        )
        recorder = Recorder()
        recorder.value = {"path": str(conf), "server": server.address}
        await load(
            tmp_path,
            """\
            local kumo = require 'kumo'
            local cfg = kumo.dns.load_resolv_conf(kumo.test.value().path)
            kumo.test.mark({ cfg.name_servers, cfg.search, cfg.options.timeout,
                             cfg.options.edns0 })
            cfg.name_servers = { kumo.test.value().server }
            cfg.options.cache_size = 64
            cfg.options.positive_min_ttl = '5min'
            kumo.dns.configure_resolver(cfg)
            kumo.test.mark(kumo.dns.lookup_mx('gmail.com').hosts)
        """,
            recorder=recorder,
        )
    assert recorder.marks == [
        [["192.0.2.1:53"], ["corp.example"], "1s", True],
        ["mx.gmail.example."],
    ]
