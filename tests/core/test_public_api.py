"""The public plugin API: the names ``kumocore`` exports, some lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kumocore

ROOT = Path(__file__).resolve().parents[2]
#: Packages whose modules are internal: a plugin takes their names from ``kumocore``.
INTERNAL = ("kumocore.mail", "kumocore.policy", "kumocore.reception", "kumocore.node")


def test_every_exported_name_resolves() -> None:
    missing = [name for name in kumocore.__all__ if getattr(kumocore, name, None) is None]
    assert missing == []


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        kumocore.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("kumocore.NoSuchName resolved")


def test_importing_kumocore_does_not_load_the_message_model() -> None:
    code = "import sys, kumocore; print(sorted(m for m in sys.modules if 'kumocore.' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "kumocore.mail.message" not in out.stdout


def _internal_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found += [f"{path}: {n}" for n in names if n.startswith(INTERNAL)]
    return found


def test_built_in_plugins_take_names_of_internal_packages_from_kumocore() -> None:
    sources = [
        p
        for p in (ROOT / "plugins").rglob("*.py")
        if "tests" not in p.parts and "build" not in p.parts
    ]
    assert sources
    assert [hit for p in sources for hit in _internal_imports(p)] == []


def test_the_log_segment_codec_is_public_and_loaded_only_on_use() -> None:
    code = (
        "import sys, kumocore; loaded = 'kumocore.logs.zstd_segment' in sys.modules; "
        "from kumocore import ZstdSegmentWriter; "
        "print(loaded, ZstdSegmentWriter.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "kumocore.logs.zstd_segment"]
    assert {"ZstdLines", "ZstdLinesError", "ZstdSegmentWriter"} <= set(kumocore.__all__)


def test_built_in_plugins_take_the_segment_codec_from_kumocore() -> None:
    # The encoder and decoder of log segments are public API: a plugin names them through
    # ``kumocore``, so their modules can move.
    codec = ("kumocore.logs.zstd_lines", "kumocore.logs.zstd_segment")
    sources = [p for p in (ROOT / "plugins").rglob("*.py") if "build" not in p.parts]
    hits = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(codec):
                hits.append(f"{path}: {node.module}")
            elif isinstance(node, ast.Import):
                hits += [f"{path}: {a.name}" for a in node.names if a.name.startswith(codec)]
    assert hits == []
