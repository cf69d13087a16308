"""Malformed policies (issue 9 part 2): every failure gets a clear error, and a running
server keeps serving (a normal transaction is probed after each case).

Load-time mistakes (syntax errors, a failing ``init``, wrong types given to ``kumo.*``,
malformed bounce rules) must stop ``kumocore serve``/``validate`` with exit status 2 and a
message naming the file or the function and key. Run-time failures in each event must
give the client a reply (never a silent drop) while the server goes on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.reliability.abuse import (
    BOOM_DOMAINS,
    FAILING_EVENTS,
    POLICY_FAILURES,
    kumo_wrong_types,
    policy_failure_problem,
    policy_failure_session,
    probe,
    wait_until,
)
from bench.reliability.crash import REPO, KumoServer, World
from kumocore.errors import ConfigError, HookError, PolicyError
from kumocore.logs.reader import iter_records
from kumocore.node.runtime import Runtime
from tests.reliability.conftest import StartKumo, unique

# ---------------------------------------------------------------------------- run time


@pytest.fixture(scope="module")
def failing_kumo(start_module_kumo: StartKumo, world: World) -> KumoServer:
    for domain in BOOM_DOMAINS:
        # A site of its own: egress path configs are per (source, site), not per domain.
        world.dns.set_records(domain, "MX", [(10, f"mx.{domain}")])
        world.dns.set_records(f"mx.{domain}", "A", ["127.0.0.1"])
    return start_module_kumo(
        extra=FAILING_EVENTS,
        listener={
            "domains": {d: {"relay_to": True} for d in BOOM_DOMAINS},
            "data_processing_timeout": "1s",
        },
    )


@pytest.mark.parametrize("case", list(POLICY_FAILURES))
def test_a_failing_event_gets_a_clear_reply_and_the_server_keeps_serving(
    failing_kumo: KumoServer, case: str
) -> None:
    replies = policy_failure_session(failing_kumo.port, **POLICY_FAILURES[case])
    problem = policy_failure_problem(replies)
    assert problem is None, f"{case}: {problem} ({[str(r) for r in replies]})"
    assert failing_kumo.alive, failing_kumo.log_tail()
    assert probe(failing_kumo.port, f"ok.{unique('pe-probe')}@crash.test").code == 250


def test_kumo_reject_with_a_2xx_code_never_tells_the_client_250(failing_kumo: KumoServer) -> None:
    replies = policy_failure_session(failing_kumo.port, boom="reject-2xx")
    assert replies[-1].code != 250, [str(r) for r in replies]


@pytest.mark.parametrize("domain", ["boom-path.test", "badtype-path.test"])
def test_a_failing_egress_path_lookup_keeps_the_message_queued_and_logged(
    failing_kumo: KumoServer, domain: str
) -> None:
    rcpt = f"x.{unique('path')}@{domain}"
    assert probe(failing_kumo.port, rcpt).code == 250

    def transient() -> list[dict[str, Any]]:
        return [
            r
            for r in iter_records(failing_kumo.log_dir, types=["TransientFailure"])
            if r["recipient"] == rcpt
        ]

    assert wait_until(lambda: bool(transient()), 10)
    assert transient()[0]["response"]["code"] == 451
    assert probe(failing_kumo.port, f"ok.{unique('pe-probe')}@crash.test").code == 250


def test_a_failing_bounce_classifier_still_logs_the_bounce(
    failing_kumo: KumoServer, world: World
) -> None:
    rcpt = f"permfail.{unique('cls')}@crash.test"
    assert probe(failing_kumo.port, rcpt).code == 250
    assert wait_until(
        lambda: any(
            r["recipient"] == rcpt for r in iter_records(failing_kumo.log_dir, types=["Bounce"])
        ),
        10,
    )


def test_failing_events_never_crashed_a_session_silently(failing_kumo: KumoServer) -> None:
    assert failing_kumo.alive
    assert "Traceback" not in failing_kumo.log_text() or "policy bug" in failing_kumo.log_text()


# ---------------------------------------------------------------------------- load time


def kumocore(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kumocore.node.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_PY = "from kumocore import hookimpl\n@hookimpl\n"
_LUA = "local kumo = require 'kumo'\n"
BROKEN = {
    "py: error in init": (
        ".py",
        _PY + "def kumo_init(kumo):\n    raise RuntimeError('init exploded')\n",
        r"init exploded",
    ),
    "py: wrong type to define_spool": (
        ".py",
        _PY + "def kumo_init(kumo):\n    kumo.define_spool(name='data', path=42, kind='RocksDB')\n",
        r"path",
    ),
    "py: unknown kumo function": (
        ".py",
        _PY + "def kumo_init(kumo):\n    kumo.define_spoool(name='data')\n",
        r"define_spoool.*did you mean",
    ),
    "py: unknown hook": (
        ".py",
        _PY + "def kumo_smtp_server_helo(domain):\n    pass\n",
        r"kumo_smtp_server_helo",
    ),
    "py: bad bounce rules": (
        ".py",
        _PY + "def kumo_init(kumo):\n    kumo.configure_bounce_classifier(files=['{rules}'])\n",
        r"rules\.toml",
    ),
    "lua: syntax error": (".lua", _LUA + "kumo.on('init', function(\n", r"\.lua:\d+"),
    "lua: runtime error at load": (".lua", _LUA + "local x = nil + 1\n", r"\.lua:\d+"),
    "lua: error in init": (
        ".lua",
        _LUA + "kumo.on('init', function() error('init exploded') end)\n",
        r"init exploded",
    ),
    "lua: wrong type to define_spool": (
        ".lua",
        _LUA + "kumo.on('init', function()\n"
        "  kumo.define_spool { name = 'data', path = {}, kind = 'RocksDB' }\nend)\n",
        r"path",
    ),
    "lua: unknown event": (
        ".lua",
        _LUA + "kumo.on('smtp_server_helo', function() end)\n",
        r"smtp_server_helo",
    ),
    "lua: unknown kumo function": (
        ".lua",
        _LUA + "kumo.on('init', function() kumo.define_spoool {} end)\n",
        r"define_spoool",
    ),
    "lua: wrong type to make_queue_config": (
        ".lua",
        _LUA + "kumo.on('init', function()\n"
        "  kumo.make_queue_config { retry_interval = { 1, 2 } }\nend)\n",
        r"retry_interval",
    ),
    "lua: bad bounce rules": (
        ".lua",
        _LUA + "kumo.on('init', function()\n"
        "  kumo.configure_bounce_classifier { files = { '{rules}' } }\nend)\n",
        r"rules\.toml",
    ),
}
#: Python policies whose load errors escape as raw exceptions (a traceback, exit code 1).
BROKEN_PY_RAW = {
    "syntax error": ("def kumo_init(:\n", r"policy\.py:1: syntax error"),
    "import error": ("import does_not_exist_anywhere\n", r"does_not_exist_anywhere"),
    "hook with a misspelled argument": (
        _PY + "def kumo_smtp_server_ehlo(domian):\n    pass\n",
        r"domian",
    ),
}


def _write(tmp_path: Path, suffix: str, source: str) -> Path:
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules]\nInvalidRecipient = ['(unclosed']\n")
    policy = tmp_path / f"policy{suffix}"
    policy.write_text(source.replace("{rules}", str(rules)))
    return policy


@pytest.mark.parametrize("case", list(BROKEN))
async def test_a_broken_policy_is_refused_at_load_with_an_error_naming_the_problem(
    tmp_path: Path, case: str
) -> None:
    suffix, source, expected = BROKEN[case]
    with pytest.raises((ConfigError, PolicyError, HookError)) as info:
        await Runtime().load(_write(tmp_path, suffix, source))
    assert re.search(expected, str(info.value)), str(info.value)


@pytest.mark.parametrize("case", list(BROKEN_PY_RAW))
async def test_a_broken_python_policy_module_is_refused_with_a_policy_error(
    tmp_path: Path, case: str
) -> None:
    source, expected = BROKEN_PY_RAW[case]
    with pytest.raises((ConfigError, PolicyError)) as info:
        await Runtime().load(_write(tmp_path, ".py", source))
    assert re.search(expected, str(info.value)), str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["py: error in init", "lua: syntax error"])
def test_kumocore_serve_exits_2_with_one_clear_line_for_a_broken_policy(
    tmp_path: Path, case: str
) -> None:
    suffix, source, expected = BROKEN[case]
    result = kumocore("serve", "--policy", str(_write(tmp_path, suffix, source)))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    error = [line for line in result.stderr.splitlines() if "kumocore: error:" in line]
    assert error and re.search(expected, error[-1]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]


# ---------------------------------------------------------------------------- bounce rules

BAD_RULES = {
    "not TOML": b"[rules\nInvalidRecipient = ",
    "invalid regex": b"[rules]\nInvalidRecipient = ['(unclosed']\n",
    "class is a string": b"[rules]\nInvalidRecipient = '5\\.1\\.1'\n",
    "pattern is a number": b"[rules]\nInvalidRecipient = [42]\n",
    "no rules table": b"[other]\nx = 1\n",
    "rules is a list": b"rules = [1, 2]\n",
    "bad class name": b"[rules]\n'Bad Class!' = ['x']\n",
    "binary": b"\x00\xff\xfe\x00garbage",
    "empty": b"",
}


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_malformed_bounce_rules_give_a_config_error_naming_the_file(
    tmp_path: Path, case: str
) -> None:
    from kumocore_bounce_classifier.rules import load_rules

    path = tmp_path / "rules.toml"
    path.write_bytes(BAD_RULES[case])
    try:
        load_rules(path)
    except ConfigError as exc:
        assert str(path) in str(exc), str(exc)
    else:
        assert case == "empty" or case == "no rules table", f"{case} was accepted"


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    text=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(
            st.tuples(
                st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True),
                st.lists(st.text(max_size=20), max_size=3),
            ),
            max_size=4,
        ).map(
            lambda classes: (
                "[rules]\n"
                + "".join(f"{name} = {json.dumps(patterns)}\n" for name, patterns in classes)
            ).encode()
        ),
    )
)
def test_any_bounce_rules_file_loads_or_gives_a_config_error(text: bytes) -> None:
    import tempfile

    from kumocore_bounce_classifier.rules import load_rules

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.toml"
        path.write_bytes(text)
        try:
            load_rules(path)
        except ConfigError:
            pass


# ---------------------------------------------------------------------------- kumo.* types


async def test_every_kumo_function_answers_wrong_argument_types_with_a_clear_error(
    world: World,
) -> None:
    calls, unclear = await kumo_wrong_types(
        world.dns.address, lambda name: not name.startswith("dns.lookup_")
    )
    assert calls > 100
    assert unclear == [], "\n".join(unclear)


async def test_kumo_dns_lookups_answer_wrong_argument_types_with_a_clear_error(
    world: World,
) -> None:
    _, unclear = await kumo_wrong_types(
        world.dns.address, lambda name: name.startswith("dns.lookup_")
    )
    assert unclear == [], "\n".join(unclear)
