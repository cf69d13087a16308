"""The argument checks of ``kumo.disconnect`` and ``kumo.apply_supplemental_trace_header``
name the function and the problem, and ``kumo.disconnect`` raises the one rejection type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kumocore import PolicyError, Rejection

from .support import load


@pytest.mark.parametrize(
    ("args", "disposition", "disconnect"),
    [
        ("451, 'x'", "ForceDisconnect", True),
        ("451, 'x', 'If421'", "If421", False),
        ("421, 'x', 'If421'", "If421", True),
        ("451, 'x', 'FollowWith421'", "FollowWith421", True),
    ],
)
async def test_disconnect_raises_a_rejection_carrying_its_disposition(
    tmp_path: Path, args: str, disposition: str, disconnect: bool
) -> None:
    runtime, _ = await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() kumo.disconnect({args}) end)
    """,
    )
    with pytest.raises(Rejection) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert type(info.value) is Rejection
    assert (info.value.disposition, info.value.disconnect) == (disposition, disconnect)
    assert info.value.follow_with_421 == (disposition == "FollowWith421")


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            "kumo.disconnect(451, 'x', 'Sometimes')",
            "kumo.disconnect: expected one of 'If421', 'FollowWith421' or 'ForceDisconnect', "
            "but got 'Sometimes'",
        ),
        ("kumo.disconnect(451, 'x', 3)", "but got 3"),
        ("kumo.disconnect(451, nil)", "kumo.disconnect: the reply text must be a string"),
        ("kumo.disconnect('4xx', 'no')", "kumo.disconnect: the code must be a number"),
        ("kumo.disconnect(700, 'no')", "reply code 200..599, got 700"),
        (
            "kumo.apply_supplemental_trace_header('x')",
            "kumo.apply_supplemental_trace_header: expected a message",
        ),
        (
            "kumo.apply_supplemental_trace_header("
            "kumo.make_message('a@x.example', 'b@y.example', 'S: x\\r\\n\\r\\n'), {bogus = 1})",
            "unknown key 'bogus' for kumo.apply_supplemental_trace_header",
        ),
        (
            "kumo.apply_supplemental_trace_header("
            "kumo.make_message('a@x.example', 'b@y.example', 'S: x\\r\\n\\r\\n'),"
            " {header_name = 'Bad:Name'})",
            "header_name 'Bad:Name' is not a valid header name",
        ),
        (
            "kumo.set_httpinject_recipient_rate_limit('10 per second')",
            "kumo.set_httpinject_recipient_rate_limit: invalid throttle spec '10 per second'",
        ),
        (
            "kumo.set_httpinject_recipient_rate_limit(10)",
            "invalid throttle spec 10: expected a string",
        ),
        (
            "kumo.api.inject.inject_v1 { envelope_sender = 'a@x.example', content = 'x',"
            " recipients = { { email = 'b@y.example' } } }",
            "kumo.api.inject.inject_v1: the server is not running yet",
        ),
    ],
)
async def test_bad_arguments_are_policy_errors_naming_the_function(
    tmp_path: Path, call: str, needle: str
) -> None:
    runtime, _ = await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() {call} end)
    """,
    )
    with pytest.raises(PolicyError, match=re.escape(needle)) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert not isinstance(info.value, Rejection)


def test_rejection_keeps_its_old_meaning_without_a_disposition() -> None:
    assert Rejection(421, "x").disconnect and Rejection(421, "x").disposition is None
    assert not Rejection(451, "x").disconnect
    assert Rejection(451, "x", disconnect=True).disconnect
    assert not Rejection(451, "x", disposition="FollowWith421", disconnect=False).disconnect
    with pytest.raises(ValueError, match="but got 'never'"):
        Rejection(451, "x", disposition="never")
