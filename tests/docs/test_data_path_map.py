"""The data-path map in docs/contributing.md names code that exists.

The map (section "The data path") names, for each step from listener to journal, the
modules and the key classes, functions and methods by full dotted name. This test
imports every one of them, so when code moves or is renamed the map fails here instead
of quietly going stale.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRIBUTING = ROOT / "docs" / "contributing.md"

#: The steps the architecture issue asks the map to cover, in data-path order.
STEPS = ("Listener", "Intake", "Spool", "Scheduler", "Egress path", "Client", "Outcome",
         "Journal")

#: A backticked dotted name in kumocore or one of its built-in plugin packages.
DOTTED = re.compile(r"`((?:kumocore|kumocore_\w+)(?:\.\w+)+)`")


def data_path_section(text: str) -> str:
    """The text of the "## The data path" section, up to the next second-level heading."""
    match = re.search(r"^## The data path\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise AssertionError("docs/contributing.md has no '## The data path' section")
    return match.group(1)


def table_steps(section: str) -> list[str]:
    """The "Step" column of the map's table, in order."""
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return [row[1] for row in cells[1:] if not set(row[0]) <= {"-"}]


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted``, then getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: ModuleType | Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not ".".join(parts[:cut]).startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
            continue
        for attr in parts[cut:]:
            target = getattr(target, attr)
        return target
    raise ModuleNotFoundError(dotted)


SECTION = data_path_section(CONTRIBUTING.read_text())
NAMES = sorted(set(DOTTED.findall(SECTION)))


def test_map_covers_every_step_from_listener_to_journal_in_order() -> None:
    steps = table_steps(SECTION)
    found = [next((s for s in steps if s.startswith(step)), None) for step in STEPS]
    assert None not in found, f"steps in the map: {steps}; expected each of {STEPS}"
    positions = [steps.index(s) for s in found if s is not None]
    assert positions == sorted(positions), f"steps out of data-path order: {steps}"


def test_map_names_the_wiring_and_the_hook_caller() -> None:
    for name in ("kumocore.node.server.wire_services", "kumocore.node.services.Services",
                 "kumocore.policy.hookcall.HookCaller", "kumocore.policy.hooks.Hooks"):
        assert f"`{name}`" in SECTION, f"the data-path map does not name {name}"


@pytest.mark.parametrize("dotted", NAMES)
def test_every_name_in_the_map_exists_in_the_code(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"docs/contributing.md 'The data path' names {dotted}, which does not "
                    f"exist: {exc}")


def test_resolve_refuses_a_name_that_moved() -> None:
    # The check above must be able to fail: a renamed method and a moved module do.
    with pytest.raises(AttributeError):
        resolve("kumocore.reception.intake.Intake.accept_moved")
    with pytest.raises((ImportError, AttributeError)):
        resolve("kumocore.no_such_module.Thing")
