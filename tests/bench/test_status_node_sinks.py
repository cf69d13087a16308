"""The status tests' recording sinks share one port on several loopback addresses."""

from __future__ import annotations

import socket

from bench.common.status_node import SITES, Sinks


def test_sinks_move_to_another_port_when_theirs_is_taken_on_one_of_their_addresses() -> None:
    # What a parallel test can do between picking the port and binding it.
    sinks = Sinks()
    taken = sinks.port
    blocker = socket.socket()
    try:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind((list(SITES.values())[-1], taken))
        blocker.listen()
        sinks.start()
        try:
            assert sinks.port != taken
            assert {sink.port for sink in sinks.sinks} == {sinks.port}
        finally:
            sinks.stop()
    finally:
        blocker.close()
