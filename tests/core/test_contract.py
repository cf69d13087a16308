"""The hook contract holds across the tree: one caller talks to pluggy, one facade covers it.

``kumocore/hookspecs.py`` is the contract; :mod:`kumocore.policy.hookcall` is the only module that
calls hooks through pluggy, and :class:`kumocore.policy.hooks.Hooks` is the typed facade the rest
of the code uses. These checks read the source, so a new hook without a facade method, or
a shortcut through ``pm.hook``, fails here rather than in review.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import kumocore.hookspecs
from kumocore.policy.hooks import Hooks

ROOT = Path(__file__).resolve().parents[2]
#: Where Python code of the project lives (the tree a plugin author would copy from).
TREES = ("kumocore", "plugins", "tests", "bench", "docs/examples")
HOOK_CALLER = ROOT / "kumocore" / "policy" / "hookcall.py"


def _hookspec_names() -> set[str]:
    return {name for name, fn in inspect.getmembers(kumocore.hookspecs, inspect.isfunction)
            if name.startswith("kumo_")}  # fmt: skip


def _python_files() -> list[Path]:
    return [p for tree in TREES for p in (ROOT / tree).rglob("*.py")
            if ".venv" not in p.parts and "build" not in p.parts]  # fmt: skip


def test_every_hookspec_is_called_by_the_typed_facade() -> None:
    # Hooks and the parts it is made of (kumocore.policy.hooks_smtp, hooks_lookup...).
    facade = "".join(inspect.getsource(part) for part in Hooks.__mro__
                     if part.__module__.startswith("kumocore.policy.hooks"))  # fmt: skip
    called = set(re.findall(r'"(kumo_[a-z_]+)"', facade))
    missing = _hookspec_names() - called
    assert not missing, f"hookspecs without a Hooks method: {sorted(missing)}"


def test_every_hookspec_documents_its_lua_form_or_says_it_is_python_only() -> None:
    undocumented = []
    for name in _hookspec_names():
        doc = inspect.getdoc(getattr(kumocore.hookspecs, name)) or ""
        if "kumo.on(" not in doc and "No Lua event" not in doc:
            undocumented.append(name)
    assert not undocumented, f"hookspecs whose docstring has no Lua form: {undocumented}"


def _pm_hook_uses(path: Path) -> list[int]:
    """Lines where ``<something>.hook.<name>`` is read (pluggy's hook relay)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "hook" and node.attr.startswith("kumo_")):  # fmt: skip
            lines.append(node.lineno)
    return lines


def test_only_the_hook_caller_touches_pm_hook() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for path in _python_files() if path != HOOK_CALLER
                 for line in _pm_hook_uses(path)]  # fmt: skip
    assert not offenders, f"pm.hook used outside kumocore/policy/hookcall.py: {offenders}"


def test_the_pm_hook_check_finds_a_direct_call(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(pm):\n    return pm.hook.kumo_get_queue_config(domain='x')\n")
    assert _pm_hook_uses(sample) == [2]
