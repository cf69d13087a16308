"""Fuzzed SMTP sessions: a hypothesis strategy, :func:`play` and :func:`check_played`."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common.client import TRUSTED, ProtocolViolation, SyncClient, parse_replies
from bench.common.smtp_client import Reply
from bench.reliability.abuse_smuggling import _SMUGGLED, SMUGGLING_VARIANTS

TAG = b"@TAG@"  # replaced by a unique tag per played session


def smtp_sessions() -> Any:
    """A hypothesis strategy of sessions: lists of ``bytes`` to send and ``float`` pauses."""
    from hypothesis import strategies as st

    terminators = st.sampled_from(
        [b"\r\n"] * 8 + [b"\n", b"\r", b"", b"\r\r\n", b"\n\r", b"\r\n\r\n"]
    )
    verbs = st.sampled_from(
        [
            b"EHLO",
            b"HELO",
            b"MAIL",
            b"RCPT",
            b"DATA",
            b"RSET",
            b"NOOP",
            b"QUIT",
            b"VRFY",
            b"EXPN",
            b"HELP",
            b"AUTH",
            b"STARTTLS",
            b"BDAT",
            b"XCLIENT",
            b"ehlo",
            b"mAiL",
            b"\x00",
            b"GET / HTTP/1.1",
            b"",
        ]
    )
    good_args = st.sampled_from(
        [
            b"fuzz.test",
            b"FROM:<fuzz@src.test>",
            b"FROM:<>",
            b"FROM:<fuzz@src.test> SIZE=100",
            b"FROM:<fuzz@src.test> SIZE=999999999999",
            b"FROM:<fuzz@src.test> BODY=8BITMIME",
            b"TO:<ok." + TAG + b"@crash.test>",
            b"TO:<ok." + TAG + b"@relay.test>",
            b"TO:<victim%other.test@relay.test>",
            b"TO:<@relay.test:victim@other.test>",
            b'TO:<"a@b"@relay.test>',
            b"TO:<victim@other.test>",
            b"TO:<>",
            b"TO:",
            b"PLAIN AHVzZXIAcGFzcw==",
            b"LOGIN",
            b"PLAIN =",
            b"FROM:<a@b> FOO=BAR",
            b"FROM:<a\x00b@src.test>",
            b"TO:<ok." + TAG + b"@crash.test> NOTIFY=NEVER",
        ]
    )
    args = st.one_of(
        good_args,
        good_args,
        st.binary(max_size=80),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.integers(600, 70_000).map(lambda n: b"X" * n),
    )
    separators = st.sampled_from([b" ", b" ", b"", b"  ", b"\t", b": "])
    command = st.tuples(verbs, separators, args, terminators).map(b"".join)

    body_pieces = st.one_of(
        st.sampled_from(
            [
                b"Subject: fuzz\r\n",
                b"\r\n",
                b"line\r\n",
                b".dot-stuffed\r\n",
                b"..\r\n",
                b"bare LF\n",
                b"bare CR\r",
                b"NUL\x00byte\r\n",
                b"Bcc: x\nX: y\r\n",
                b"\r\n.\r\n",
                b"QUIT\r\n",
            ]
        ),
        st.sampled_from(list(SMUGGLING_VARIANTS.values())).map(
            lambda end: end + _SMUGGLED.replace(b"{rcpt}", b"smuggled." + TAG + b"@crash.test")
        ),
        st.binary(max_size=200),
        st.integers(990, 1300).map(lambda n: b"L" * n + b"\r\n"),
    )
    data_end = st.sampled_from([b"\r\n.\r\n"] * 4 + [b"", b"\n.\n", b"\r\n.\n", b".\r\n"])
    transaction = st.tuples(
        st.just(b"MAIL FROM:<fuzz@src.test>\r\nRCPT TO:<ok." + TAG + b"@crash.test>\r\nDATA\r\n"),
        st.lists(body_pieces, max_size=6).map(b"".join),
        data_end,
    ).map(b"".join)
    pause = st.floats(0.0, 0.05)
    step = st.one_of(command, command, transaction, pause)
    opening = st.sampled_from([[b"EHLO fuzz.test\r\n"], [b"HELO fuzz.test\r\n"], []])
    return st.tuples(opening, st.lists(step, max_size=12)).map(lambda t: [*t[0], *t[1]])


@dataclass
class Played:
    """What one fuzzed session got back."""

    replies: list[Reply] = field(default_factory=list)
    closed: bool = False  # the server closed the connection
    seconds: float = 0.0
    garbage: bytes = b""  # bytes that were not a reply
    error: str = ""
    sent: bytes = b""  # everything sent, tags filled in

    def accepted_recipients(self) -> set[str]:
        """Recipients of transactions a correct server would have accepted, given its replies.

        The reference reading of the byte stream: commands end at CRLF, one reply each;
        a 354 starts DATA, which ends only at ``CRLF . CRLF`` (or ``. CRLF`` first thing).
        A smuggled recipient that arrives at the sink must be in this set, or the server
        ended DATA somewhere a correct server would not have.
        """
        return model_accepted(self.sent, self.replies[1:])


def play(
    port: int,
    steps: Sequence[bytes | float],
    tag: str,
    *,
    source: str = TRUSTED,
    deadline: float = 10.0,
) -> Played:
    """Send the steps, half-close, and read every reply until the server closes."""
    played = Played()
    started = time.monotonic()
    with SyncClient(port, source, timeout=deadline) as client:
        try:
            for step in steps:
                if isinstance(step, float):
                    time.sleep(step)
                else:
                    data = step.replace(TAG, tag.encode())
                    played.sent += data
                    client.send(data)
            client.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server may close first (too many bad commands)
            played.error = f"send: {exc}"
        data = client.buffer
        client.sock.settimeout(max(0.1, deadline - (time.monotonic() - started)))
        try:
            while chunk := client.sock.recv(65536):
                data += chunk
            played.closed = True
        except ConnectionResetError:
            played.closed = True
        except (TimeoutError, OSError) as exc:
            played.error = f"recv: {exc}"
        try:
            played.replies, rest = parse_replies(data)
        except ProtocolViolation as exc:
            played.garbage, rest = str(exc).encode(), b""
        if rest:
            played.garbage = rest
    played.seconds = time.monotonic() - started
    return played


def model_accepted(stream: bytes, replies: Sequence[Reply]) -> set[str]:
    """See :meth:`Played.accepted_recipients`; ``replies`` without the greeting."""
    accepted: set[str] = set()
    recipients: list[str] = []
    pos, index = 0, 0
    while pos < len(stream) and index < len(replies):
        reply = replies[index]
        end = stream.find(b"\r\n", pos)
        if end < 0:
            break
        line, pos = stream[pos:end], end + 2
        index += 1
        verb = line.split(b" ", 1)[0].upper()
        if reply.code in (221, 421) or (verb == b"STARTTLS" and reply.code == 220):
            break
        if verb in (b"MAIL", b"RSET", b"EHLO", b"HELO") and reply.code == 250:
            recipients = []
        elif verb == b"RCPT" and reply.code == 250:
            recipients.append(line.split(b"<", 1)[-1].split(b">", 1)[0].decode("utf-8", "replace"))
        elif verb == b"DATA" and reply.code == 354:
            if stream.startswith(b".\r\n", pos):
                pos += 3
            else:
                end = stream.find(b"\r\n.\r\n", pos)
                if end < 0:
                    break
                pos = end + 5
            if index >= len(replies):
                break
            if replies[index].code == 250:
                accepted.update(r.lower() for r in recipients)
            index += 1
            recipients = []
    return accepted


def check_played(played: Played) -> None:
    """What must hold after any session: well-formed replies, an answer in time."""
    assert not played.garbage, f"the server sent non-SMTP bytes: {played.garbage[:200]!r}"
    assert played.closed, f"the server did not finish the session in time ({played.error})"
    assert played.replies and played.replies[0].code == 220, "no greeting"
    for reply in played.replies:
        assert "Traceback" not in " ".join(reply.lines), reply
        # A 4xx/5xx is fine; a 421 "technical difficulties" means an internal error.
        assert "technical difficulties" not in reply.text, reply
