"""Every package of kumocore and of the built-in plugins says what it owns.

The architecture issue asks that a reader can tell from a package's docstring what lives
there and what does not; this keeps a new package from arriving without one. It also
keeps every source directory a real package (an ``__init__.py``), so no directory of
modules escapes the check as an implicit namespace package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOTS = [ROOT / "kumocore", *sorted(ROOT.glob("plugins/*/kumocore_*"))]


def source_dirs() -> list[Path]:
    """Every directory under the package roots that holds Python modules."""
    return sorted({path.parent for root in PACKAGE_ROOTS for path in root.rglob("*.py")})


def docstring(init: Path) -> str:
    return ast.get_docstring(ast.parse(init.read_text())) or ""


def test_the_package_roots_are_found() -> None:
    # Guards the parametrisation below against silently checking nothing.
    assert (ROOT / "kumocore" / "queue") in source_dirs()
    assert len(PACKAGE_ROOTS) >= 5


@pytest.mark.parametrize("directory", source_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_source_directory_is_a_package_with_a_docstring(directory: Path) -> None:
    init = directory / "__init__.py"
    assert init.exists(), f"{directory.relative_to(ROOT)} has modules but no __init__.py"
    text = docstring(init)
    assert text.strip(), f"{init.relative_to(ROOT)} has no module docstring"
    # One line of title is not enough: the docstring says what the package owns.
    assert "own" in text.lower(), (
        f"{init.relative_to(ROOT)}'s docstring does not say what the package owns")
