"""The delivery fast path for bodies known to be CRLF-clean sends the same bytes.

``dot_stuff(data, crlf_clean=True)`` skips re-normalising line endings; it is only given
``True`` by :attr:`Message.crlf_clean`, which must never claim a body clean that is not,
whatever edits the policy makes after reception. Both halves are checked here against
the old slow path (``dot_stuff(data)``) and its plain definition.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kumocore.delivery.dot_stuffing import dot_stuff, dot_stuffed
from kumocore.mail.body import SharedBody
from kumocore.mail.headers import HeaderError
from kumocore.mail.message import Message
from kumocore.reception.smtp.data import check_line_endings
from tests.delivery.test_wire import reference_dot_stuff

# Pieces that make line ends, dots at line starts and final lines without CRLF likely.
_ANY = st.lists(st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b" ", b"\x0b",
                                 b"\r\n.", b"\r\n.\r\n", b"\n.\n"]), max_size=30).map(b"".join)
_CLEAN = st.lists(st.sampled_from([b"a", b".", b"..", b"\r\n", b" ", b"\x0b", b"\r\n.",
                                   b"\r\n.\r\n", b"\r\n\r\n"]), max_size=30).map(b"".join)


@given(_CLEAN)
@settings(max_examples=500, deadline=None)
def test_fast_path_sends_the_bytes_of_the_slow_path_for_clean_bodies(data: bytes) -> None:
    assert check_line_endings(data)
    assert dot_stuff(data, crlf_clean=True) == dot_stuff(data) == reference_dot_stuff(data)


def test_fast_path_edge_cases_match_the_slow_path() -> None:
    for data in (b"", b"\r\n", b".", b".\r\n", b"..", b"\r\n.", b"a\r\n.", b"a\r\n.\r\n",
                 b"a", b"\r\n\r\n", b".\r\n.\r\n..\r\n"):
        assert dot_stuff(data, crlf_clean=True) == dot_stuff(data), data


def _received(body: bytes, recipients: int) -> list[Message]:
    """Messages as reception makes them from a body it checked (clean or not)."""
    clean = check_line_endings(body)
    head = b"Received: from client.test\r\n\tby node.test; Thu, 3 Dec 2026 18:00:00 +0000\r\n"
    if recipients == 1:
        return [Message("s@example.org", "r@example.com", head + body, crlf_clean=clean)]
    shared = SharedBody(body, crlf_clean=clean)
    return [Message("s@example.org", f"r{n}@example.com", head, shared=shared, crlf_clean=True)
            for n in range(recipients)]


class _Signer:
    def __init__(self, header: bytes) -> None:
        self.header = header

    def sign(self, data: bytes) -> bytes:
        return self.header


_HEADER_VALUES = st.sampled_from(["plain", "two\r\n words", "bare\nlf", "bare\rcr", "",
                                  "é unicode", ". dot"])
_EDITS = st.one_of(
    st.tuples(st.just("prepend"), _HEADER_VALUES),
    st.tuples(st.just("append"), _HEADER_VALUES),
    st.tuples(st.just("remove"), st.sampled_from(["Subject", "X-Tag", "Received"])),
    st.tuples(st.just("remove_x"), st.just("")),
    st.tuples(st.just("set_data"), _ANY),
    st.tuples(st.just("dkim"), st.sampled_from([b"DKIM-Signature: v=1; b=x\r\n",
                                               b"DKIM-Signature: v=1;\n b=x\n",
                                               b"DKIM-Signature: v=1; b=x"])),
)


def _edit(message: Message, edit: tuple[str, object]) -> None:
    kind, arg = edit
    try:
        _apply(message, kind, arg)
    except HeaderError:  # a line break in a value: refused, the message is unchanged
        pass


def _apply(message: Message, kind: str, arg: object) -> None:
    if kind == "prepend":
        message.prepend_header("X-Tag", str(arg), encode="\r" in str(arg))
    elif kind == "append":
        message.append_header("X-Tag", str(arg), encode="\r" in str(arg))
    elif kind == "remove":
        message.remove_all_named_headers(str(arg))
    elif kind == "remove_x":
        message.remove_x_headers()
    elif kind == "set_data":
        assert isinstance(arg, bytes)
        message.set_data(arg)
    else:
        assert isinstance(arg, bytes)
        message.dkim_sign(_Signer(arg))


@given(body=_ANY, recipients=st.sampled_from([1, 3]), edits=st.lists(_EDITS, max_size=4))
@settings(max_examples=400, deadline=None)
def test_a_message_is_never_called_crlf_clean_when_it_is_not_whatever_the_edits(
    body: bytes, recipients: int, edits: list[tuple[str, object]]
) -> None:
    body = b"Subject: s\r\nX-Tag: t\r\n\r\n" + body
    messages = _received(body, recipients)
    for message in messages[:1]:  # the first one is edited; the others share its body
        for edit in edits:
            _edit(message, edit)
    for message in messages:
        data = message.data
        if message.crlf_clean:
            assert check_line_endings(data), (data, edits)
        wire = dot_stuff(data, crlf_clean=message.crlf_clean)
        assert wire == dot_stuff(data) == reference_dot_stuff(data)


def test_prepended_clean_headers_keep_a_received_body_clean() -> None:
    # The common policy edits keep the fast path: a header, a DKIM signature.
    for recipients in (1, 3):
        message = _received(b"Subject: s\r\n\r\n.dot\r\n", recipients)[0]
        message.prepend_header("X-Campaign", "weekly")
        message.dkim_sign(_Signer(b"DKIM-Signature: v=1; b=abc\r\n"))
        assert message.crlf_clean


def test_edits_that_may_bring_bare_line_ends_clear_the_flag() -> None:
    for recipients in (1, 3):
        message = _received(b"Subject: s\r\n\r\nhi\r\n", recipients)[0]
        message.dkim_sign(_Signer(b"DKIM-Signature: v=1;\n b=abc\n"))  # a bare LF
        assert not message.crlf_clean
        wire = dot_stuff(message.data, crlf_clean=message.crlf_clean)
        assert b";\n" not in wire and check_line_endings(wire)
    message = _received(b"Subject: s\r\n\r\nhi\r\n", 1)[0]
    message.set_data(b"Subject: s\r\n\r\nhi\r\n")  # new bytes are never assumed clean
    assert not message.crlf_clean


def test_a_released_body_is_not_called_clean() -> None:
    message = _received(b"Subject: s\r\n\r\nhi\r\n", 3)[1]
    assert message.crlf_clean
    message.release_data()  # delivery reloads it from the spool, unchecked
    assert not message.crlf_clean


_HEAD = st.lists(st.sampled_from([b"X-A: 1\r\n", b".dot: 2\r\n", b"\tfolded.\r\n",
                                  b"Received: by x.test\r\n"]), max_size=4).map(b"".join)


@given(_HEAD, _CLEAN)
@settings(max_examples=500, deadline=None)
def test_a_head_given_apart_sends_the_bytes_of_head_and_body_joined(
    head: bytes, data: bytes
) -> None:
    pieces = dot_stuffed(data, crlf_clean=True, head=head)
    assert b"".join(pieces) == dot_stuff(head + data) == reference_dot_stuff(head + data)


@given(st.binary(max_size=20), _ANY)
@settings(max_examples=300, deadline=None)
def test_a_head_that_is_not_known_clean_takes_the_slow_path_joined(
    head: bytes, data: bytes
) -> None:
    pieces = dot_stuffed(data, head=head)
    assert b"".join(pieces) == dot_stuff(head + data)


def test_a_clean_body_without_dot_lines_is_written_as_is_not_copied() -> None:
    body = b"Subject: x\r\n\r\n" + b"QUJD" * 30_000 + b"\r\n"
    head = b"Received: by node.test\r\n"
    pieces = dot_stuffed(body, crlf_clean=True, head=head)
    assert pieces[1] is body  # the shared body itself goes to writelines
    assert pieces == (head, body, b".\r\n")


def test_a_body_known_without_dot_lines_is_not_searched_again_but_its_head_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kumocore.delivery.dot_stuffing as wire

    body = b"Subject: s\r\n\r\n" + b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * 3000
    searched: list[int] = []
    real = wire.has_dot_line

    def counting(data: bytes) -> bool:
        searched.append(len(data))
        return real(data)

    monkeypatch.setattr(wire, "has_dot_line", counting)
    head = b"X-Dot: a\r\n.odd: header line\r\n"
    pieces = dot_stuffed(body, crlf_clean=True, head=head, no_dot_lines=True)
    assert b"".join(pieces) == reference_dot_stuff(head + body)  # the head's dot doubled
    assert searched == [len(head)]
    assert dot_stuffed(b"." + body, crlf_clean=True, no_dot_lines=True)[0][:2] == b".."


@given(_CLEAN)
@settings(max_examples=300, deadline=None)
def test_without_the_knowledge_a_body_is_searched_as_before(data: bytes) -> None:
    assert b"".join(dot_stuffed(data, crlf_clean=True, no_dot_lines=False)) == \
        reference_dot_stuff(data)
