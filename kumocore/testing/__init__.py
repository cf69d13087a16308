"""Test kit for kumocore and its plugins: a running node in a few lines.

Owns :class:`Node` (a started server on loopback with a recording SMTP sink, a test DNS
server and a recording log sink) and the pytest plugin (``kumocore.testing.plugin``,
registered through the ``pytest11`` entry point) that offers it as fixtures. Needs
``pip install 'kumocore[testing]'`` (pytest, pytest-asyncio, dnslib).

Importing this package is cheap: the node and its parts are loaded on first use, so the
pytest plugin costs nothing to test runs that do not use its fixtures.

Owns what a plugin author needs to test against a real node. It does not own the project's
own test helpers that plugin authors never need (those stay in ``tests/support``), and it is
never imported by the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.testing.dns import TestDnsServer
    from kumocore.testing.logs import RecordingLogSink
    from kumocore.testing.node import Node, start_node
    from kumocore.testing.smtp_sink import Received, RecordingSink
    from kumocore.testing.webhook import RecordingWebhook

_LAZY = {
    "Node": "kumocore.testing.node",
    "start_node": "kumocore.testing.node",
    "TestDnsServer": "kumocore.testing.dns",
    "RecordingLogSink": "kumocore.testing.logs",
    "RecordingSink": "kumocore.testing.smtp_sink",
    "Received": "kumocore.testing.smtp_sink",
    "RecordingWebhook": "kumocore.testing.webhook",
}

__all__ = [
    "Node",
    "Received",
    "RecordingLogSink",
    "RecordingSink",
    "RecordingWebhook",
    "TestDnsServer",
    "start_node",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kumocore.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
