"""The wiring of a started node: one frozen Services shared by every part, and no
per-node state kept in module globals."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from kumocore.node.runtime import Runtime
from kumocore.node.server import Server
from kumocore.node.services import Services

PACKAGE = Path(__file__).resolve().parents[2] / "kumocore"

#: Modules still keeping per-object state in a module-level weak dictionary (owned by
#: another part of the architecture work; the list only shrinks).
KNOWN_MODULE_STATE = frozenset({"reception/smtp/receive.py"})


async def test_server_start_builds_one_frozen_services_that_every_part_shares() -> None:
    runtime = Runtime(load_entrypoints=False)
    assert runtime.services is None
    server = Server(runtime)
    await server.start()
    try:
        services = runtime.services
        assert isinstance(services, Services)
        assert services.hooks is runtime.hooks and services.nodeid == runtime.nodeid
        assert services.queues.store is services.store is services.intake.store
        assert services.queues.logs is services.logs is services.intake.logs
        assert services.intake.queues is services.queues
        assert services.queues.egress.throttles is services.throttles
        assert services.intake.receptions is services.metrics.receptions
        with pytest.raises(dataclasses.FrozenInstanceError):
            services.store = services.store  # type: ignore[misc]
    finally:
        await server.stop()


def test_the_plugin_manager_registers_the_core_first_so_the_policy_overrides_it() -> None:
    runtime = Runtime(load_entrypoints=False)
    names = [name for name, _ in runtime.pm.list_name_plugin()]
    assert names[0] == "kumocore.core"


def _module_level_weak_dicts(path: Path) -> list[int]:
    lines = []
    for node in ast.parse(path.read_text()).body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Call) and "Weak" in ast.unparse(value.func):
            lines.append(node.lineno)
    return lines


def test_no_module_keeps_per_node_state_in_a_module_level_weak_dictionary() -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := _module_level_weak_dicts(path))
    }
    assert set(found) <= KNOWN_MODULE_STATE, found
