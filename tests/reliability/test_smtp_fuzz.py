"""Bad SMTP input, generated: the listener answers every session with well-formed replies,
never smuggles a second message, never emits bare line endings, and keeps serving.

peers.md §6 tests 4-7 and issue 9 part 2. Each hypothesis example is a whole session
(command orders, huge lines, binary bytes, NUL, smuggling variants, unterminated DATA,
short pauses) played against one real ``kumocore serve``; after each, a normal
transaction must still get 250.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

from bench.reliability.abuse import (
    SMUGGLING_VARIANTS,
    SyncClient,
    body_for,
    check_played,
    play,
    probe,
    smtp_sessions,
    try_smuggling,
    wait_until,
)
from bench.reliability.crash import KumoServer, World
from tests.reliability.conftest import StartKumo, unique

MAX_SIZE = 64 * 1024
#: Recipients each fuzzed session legitimately got accepted (by the reference reading).
LEGIT: set[str] = set()


@pytest.fixture(scope="module")
def fuzz_kumo(start_module_kumo: StartKumo) -> KumoServer:
    return start_module_kumo(listener={"max_message_size": MAX_SIZE, "client_timeout": "3s"})


@pytest.mark.parametrize("variant", list(SMUGGLING_VARIANTS))
def test_smuggled_transaction_gives_one_message_or_a_5xx_never_two(
    fuzz_kumo: KumoServer, world: World, variant: str
) -> None:
    result = try_smuggling(fuzz_kumo.port, variant, unique("smug"))
    finals = [r for r in result.replies[3:] if r.code != 221]
    assert len(finals) == 1, [str(r) for r in result.replies]
    final = finals[0]
    assert final.code == 250 or 500 <= final.code < 600, final
    if "\r" in variant.replace("\r\n", "") or "\n" in variant.replace("\r\n", ""):
        assert final.code == 552 and "CRLF" in final.text, final  # bare CR/LF: Deny
    tag = unique("after-smug")
    assert probe(fuzz_kumo.port, f"ok.{tag}@crash.test").code == 250
    assert wait_until(lambda: world.sink.recipients()[f"ok.{tag}@crash.test"] == 1, 10)
    assert world.sink.recipients()[result.smuggled_recipient] == 0


def test_bare_lf_in_a_header_is_refused_not_relayed(fuzz_kumo: KumoServer) -> None:
    with SyncClient(fuzz_kumo.port) as client:
        client.hello()
        replies = client.mail(
            "a@src.test",
            [f"ok.{unique('lf')}@crash.test"],
            b"Subject: a\nBcc: victim@other.test\r\n\r\nbody\r\n",
        )
    assert replies[-1].code == 552 and "5.6.0" in replies[-1].text


def test_long_body_line_is_refused_after_the_dot_without_desync(fuzz_kumo: KumoServer) -> None:
    with SyncClient(fuzz_kumo.port) as client:
        client.hello()
        replies = client.mail(
            "a@src.test",
            [f"ok.{unique('long')}@crash.test"],
            b"Subject: a\r\n\r\n" + b"x" * 1200 + b"\r\n",
        )
        assert replies[-1].code == 500 and "line too long" in replies[-1].text
        assert client.command("NOOP").code == 250  # still in step with the server


def test_long_command_line_is_refused_and_the_session_continues(fuzz_kumo: KumoServer) -> None:
    with SyncClient(fuzz_kumo.port) as client:
        client.hello()
        assert client.command("NOOP " + "x" * 5000).code == 500
        assert client.command("NOOP").code == 250


def test_size_over_the_limit_is_refused_early_and_after_the_dot(fuzz_kumo: KumoServer) -> None:
    with SyncClient(fuzz_kumo.port) as client:
        client.hello()
        early = client.command(f"MAIL FROM:<a@src.test> SIZE={MAX_SIZE + 1}")
        assert early.code == 552 and "5.3.4" in early.text
        big = body_for("x") + (b"y" * 900 + b"\r\n") * (MAX_SIZE // 900 + 10)
        replies = client.mail("a@src.test", [f"ok.{unique('big')}@crash.test"], big)
        assert replies[-1].code == 552 and "5.3.4" in replies[-1].text
        assert client.command("NOOP").code == 250


def test_101_recipients_are_accepted(fuzz_kumo: KumoServer) -> None:
    tag = unique("many")
    with SyncClient(fuzz_kumo.port) as client:
        client.hello()
        replies = client.mail(
            "a@src.test", [f"ok.{tag}-{n}@crash.test" for n in range(101)], body_for("many")
        )
    assert [r.code for r in replies[1:102]] == [250] * 101
    assert replies[-1].code == 250


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=smtp_sessions())
def test_fuzzed_sessions_get_well_formed_replies_and_the_server_keeps_serving(
    fuzz_kumo: KumoServer, steps: list[bytes | float]
) -> None:
    tag = unique("fz")
    played = play(fuzz_kumo.port, steps, tag)
    check_played(played)
    LEGIT.update(played.accepted_recipients())
    assert fuzz_kumo.alive, fuzz_kumo.log_tail()
    assert probe(fuzz_kumo.port, f"ok.probe-{tag}@crash.test").code == 250


@pytest.mark.slow
def test_after_fuzzing_nothing_smuggled_arrived_and_nothing_left_with_bare_line_endings(
    fuzz_kumo: KumoServer, world: World
) -> None:
    tag = unique("fz-end")
    assert probe(fuzz_kumo.port, f"ok.{tag}@crash.test").code == 250
    assert wait_until(lambda: world.sink.recipients()[f"ok.{tag}@crash.test"] == 1, 10)
    messages = list(world.sink.sink.messages)
    smuggled = {m.recipient.lower() for m in messages if m.recipient.startswith("smuggled.")}
    assert smuggled <= LEGIT, "DATA ended where CRLF.CRLF was not: " + str(smuggled - LEGIT)
    bare = re.compile(rb"(?<!\r)\n|\r(?!\n)")
    offenders = [m.recipient for m in messages if bare.search(m.data)]
    assert offenders == []
    assert "smtp session failed" not in fuzz_kumo.log_text()
