"""``data_buffer_size`` (KumoMTA's listener option): how much of a message's DATA a
session holds in its stream before taking it out. kumocore reads DATA in two read
windows, so the option is twice the window: a message within it leaves the stream in
one piece, a larger one in several (a real listener, smtplib)."""

from __future__ import annotations

from typing import Any

import pytest

import kumocore.reception.smtp.data as data_io
from kumocore.config import EsmtpListenerConfig
from kumocore.errors import ConfigError
from kumocore.testing.plugin import MakeNode

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
"""
BODY = "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 600  # about 600 KB


async def _pieces(make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
                  **listener: Any) -> list[int]:
    taken: list[int] = []
    take = data_io._Collected.take

    def counted(self: Any, reader: Any, buffer: bytearray, size: int, *,
                last: bool = False) -> None:
        taken.append(size)
        take(self, reader, buffer, size, last=last)

    monkeypatch.setattr(data_io._Collected, "take", counted)
    node = await make_node(POLICY, esmtp=listener)
    await node.send(recipients="r@example.com", message=BODY)
    await node.wait_for("Reception")
    return taken


async def test_a_buffer_larger_than_the_message_takes_it_out_in_one_piece(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(await _pieces(make_node, monkeypatch, data_buffer_size="2 MiB")) == 1


async def test_the_default_takes_a_large_message_out_in_several_pieces(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (each read may bring up to 256 KiB: the pieces are at least a window, not exactly)
    assert len(await _pieces(make_node, monkeypatch)) > 1


@pytest.mark.parametrize("value", ["512", "1 GiB", -1, "lots"])
def test_sizes_outside_1_kib_to_64_mib_are_refused_naming_the_option(value: Any) -> None:
    with pytest.raises(ConfigError, match="data_buffer_size"):
        EsmtpListenerConfig.from_options({"data_buffer_size": value})
