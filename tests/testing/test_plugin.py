"""The pytest plugin is found through its entry point and costs nothing until used."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest


def test_pytest11_entry_point_names_the_plugin_module() -> None:
    [ep] = [e for e in metadata.entry_points(group="pytest11") if e.name == "kumocore"]
    assert ep.value == "kumocore.testing.plugin"
    assert ep.dist is not None and ep.dist.metadata["Name"] == "kumocore"


def test_loading_the_plugin_imports_no_server_parts() -> None:
    code = (
        "import sys, kumocore.testing.plugin\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(("
        "'kumocore.node.server', 'kumocore.node.runtime', 'kumocore.queue', "
        "'kumocore.testing.node', "
        "'aiohttp', 'aiosmtpd', 'dnslib')))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_fixtures_are_registered(request: pytest.FixtureRequest) -> None:
    plugin = request.config.pluginmanager.get_plugin("kumocore")
    assert plugin is not None and plugin.__name__ == "kumocore.testing.plugin"
    assert callable(plugin.make_node) and callable(plugin.kumocore_node)
