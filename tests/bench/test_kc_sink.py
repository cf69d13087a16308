"""The benchmark's own sink (bench/perf/sink.c): it must count exactly the messages a relay
sent, wherever the reads split them, and answer like Postfix's ``smtp-sink`` so that a relay
behaves the same with either."""

from __future__ import annotations

import shutil
import smtplib
import socket
import time
from pathlib import Path

import pytest

from bench.perf.load import KC_SINK, SMTP_SINK, LoadError, SmtpSink, sink_program, tool_path

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sink_program(KC_SINK, tmp_path_factory.mktemp("kc-sink"))


def _read_reply(sock: socket.socket) -> bytes:
    """One whole (possibly multi-line) reply."""
    lines = b""
    while True:
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = sock.recv(1)
            assert chunk, f"connection closed after {lines + line!r}"
            line += chunk
        lines += line
        if line[3:4] == b" ":
            return lines


def _session(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert _read_reply(sock).startswith(b"220 ")
    return sock


def _split_end_marks(sock: socket.socket) -> None:
    sock.sendall(b"EHLO bench\r\n")
    _read_reply(sock)
    # Lines that look like the end but are not: a dot-stuffed line, ".x", "\r\n.\r" + text.
    body = b"Subject: x\r\n\r\n..\r\n.x\r\nline\r\n.\rnot the end\r\n"
    for cut in (b"\r", b"\r\n", b"\r\n."):  # the end mark split after each of its parts
        sock.sendall(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        for _ in range(3):
            _read_reply(sock)
        message = body + b"\r\n.\r\n"
        split = len(body) + len(cut)
        sock.sendall(message[:split])
        time.sleep(0.05)  # a read of its own for each part
        sock.sendall(message[split:])
        assert _read_reply(sock).startswith(b"250 2.0.0")


def test_counts_every_message_whose_end_mark_is_split_across_reads(program: str) -> None:
    with SmtpSink(1_000, program=program) as sink:
        target = sink.expect(3)
        with _session(sink.port) as sock:
            _split_end_marks(sock)
        assert sink.wait_total(5) is not None
        assert sink.received == target == 3


def test_pipelined_messages_in_one_write_each_get_their_reply(program: str) -> None:
    with SmtpSink(1_000, program=program) as sink:
        target = sink.expect(20)
        head = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: y\r\n\r\n"
        one = head + b"A" * 700 + b"\r\n.\r\n"
        replies = b""
        with _session(sink.port) as sock:
            sock.sendall(b"EHLO bench\r\n" + one * 20 + b"QUIT\r\n")
            while chunk := sock.recv(65536):
                replies += chunk
        assert replies.count(b"250 2.0.0 Ok: queued") == 20
        assert replies.count(b"354 ") == 20
        assert replies.endswith(b"221 2.0.0 Bye\r\n")
        assert sink.wait_total(5) is not None and sink.received == target


def test_a_large_message_arrives_whole_through_smtplib(program: str) -> None:
    with SmtpSink(1_000, program=program) as sink:
        target = sink.expect(2)
        body = b"Subject: big\r\n\r\n" + (b"B" * 76 + b"\r\n") * 40_000  # about 3 MB
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            assert client.sendmail("a@b.example", ["c@d.example"], body) == {}
            assert client.sendmail("a@b.example", ["e@d.example", "f@d.example"], body) == {}
        assert sink.wait_total(5) is not None and sink.received == target


def test_exits_after_the_message_count_it_was_given(program: str) -> None:
    with SmtpSink(2, program=program) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail("a@b.example", ["c@d.example"], b"Subject: 1\r\n\r\nx\r\n")
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail("a@b.example", ["c@d.example"], b"Subject: 2\r\n\r\nx\r\n")
                client.noop()
        result = sink.wait(5)
        assert result.complete and result.received == 2


def test_a_command_line_longer_than_its_limit_is_refused_and_the_session_closed(
    program: str,
) -> None:
    with SmtpSink(1_000, program=program) as sink, _session(sink.port) as sock:
        sock.sendall(b"MAIL FROM:<" + b"a" * 10_000)
        assert _read_reply(sock).startswith(b"500 5.5.0")
        assert sock.recv(100) == b""


@pytest.mark.skipif(tool_path(SMTP_SINK) is None, reason="smtp-sink missing")
def test_advertises_the_extensions_smtp_sink_advertises(program: str) -> None:
    def extensions(prog: str | None) -> list[bytes]:
        with SmtpSink(1_000, program=prog) as sink, _session(sink.port) as sock:
            sock.sendall(b"EHLO bench\r\n")
            lines = _read_reply(sock).split(b"\r\n")[1:]
        return [line[4:] for line in lines if line[4:]]

    assert extensions(program) == extensions(None)


def test_an_unknown_sink_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="unknown sink 'postal'"):
        sink_program("postal", tmp_path)
