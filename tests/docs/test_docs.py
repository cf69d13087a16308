"""The documentation site builds, its generated reference is current, and the KumoMTA
compatibility table (docs/compatibility.md) agrees with what the code really registers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPATIBILITY = ROOT / "docs" / "compatibility.md"
STATUSES = {"supported", "partial", "not yet"}


# ---------------------------------------------------------------------------- helpers


@cache
def gen_reference() -> ModuleType:
    """scripts/gen_reference.py, imported from its path (scripts/ is not a package)."""
    path = ROOT / "scripts" / "gen_reference.py"
    spec = importlib.util.spec_from_file_location("gen_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


@cache
def _registered() -> tuple[str, ...] | str:
    gen = gen_reference()
    try:
        # Core and the built-in plugins only: example or third-party plugins installed in
        # the environment (docs/examples/*) are not kumocore's surface.
        return tuple(gen.builtin_runtime().kumo.names())
    except gen.MissingPlugin as exc:
        return str(exc)


def registered_functions() -> set[str]:
    """``kumo.*`` names a runtime with core and the built-in plugins registers (``names()``
    of its ``kumo`` object); skips when a built-in plugin is not installed."""
    names = _registered()
    if isinstance(names, str):
        pytest.skip(names)
    return set(names)


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row; ``\\|`` inside a cell is not a separator."""
    text = line.strip().strip("|").replace("\\|", "\0")
    return [cell.strip().replace("\0", "|") for cell in text.split("|")]


def _name(cell: str) -> str:
    """``| `kumo.define_spool` |`` → ``define_spool``; events stay as they are."""
    return cell.strip().strip("`").removeprefix("kumo.")


@cache
def sections() -> dict[str, list[tuple[str, str, str]]]:
    """``## heading`` → the (name, status, notes) rows of the tables under it."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    heading = ""
    for line in COMPATIBILITY.read_text("utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            found.setdefault(heading, [])
        elif line.startswith("|") and heading:
            cells = _cells(line)
            if len(cells) < 3 or set(cells[0]) <= {"-", ":"} or cells[0] == "name":
                continue  # separator or header row
            found[heading].append((_name(cells[0]), cells[1], cells[2]))
    return found


def table(heading: str) -> dict[str, str]:
    """name → status of the table under ``## heading``; every status must be known."""
    rows = sections().get(heading)
    assert rows, f"docs/compatibility.md has no table under '## {heading}'"
    names = [name for name, _, _ in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"'## {heading}' lists {duplicates} more than once"
    unknown = {name: status for name, status, _ in rows if status not in STATUSES}
    assert not unknown, f"'## {heading}': statuses must be one of {sorted(STATUSES)}: {unknown}"
    return {name: status for name, status, _ in rows}


def event_names() -> set[str]:
    """Every Lua event: the hooks of the contract except providers, without ``kumo_``."""
    from kumocore import hookspecs

    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name.removeprefix("kumo_")
        for name, fn in vars(hookspecs).items()
        if getattr(fn, marker, None) is not None and not name.startswith("kumo_register_")
    }


# ---------------------------------------------------------------------------- the site


def test_mkdocs_build_strict_succeeds(tmp_path: Path) -> None:
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install mkdocs mkdocs-material)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    assert (tmp_path / "site" / "reference" / "kumo-functions" / "index.html").is_file()


def test_generated_reference_is_up_to_date() -> None:
    gen = gen_reference()
    try:
        files = gen.outputs()
    except gen.MissingPlugin as exc:
        pytest.skip(str(exc))
    stale = [str(path.relative_to(ROOT)) for path in gen.stale(files)]
    assert not stale, f"{stale} out of date: run `python scripts/gen_reference.py`"


# ---------------------------------------------------------------------------- functions


def test_every_registered_function_is_listed_supported_or_partial() -> None:
    listed = table("Functions")
    missing = sorted(set(registered_functions()) - set(listed))
    assert not missing, f"kumo.{missing} are registered but not in docs/compatibility.md"
    available = ("supported", "partial")
    wrong = {n: listed[n] for n in registered_functions() if listed[n] not in available}
    assert not wrong, f"registered functions must be supported or partial: {wrong}"


def test_every_function_marked_supported_is_registered() -> None:
    registered = set(registered_functions())
    claimed = {name for name, status in table("Functions").items() if status != "not yet"}
    assert not claimed - registered, (
        f"docs/compatibility.md marks kumo.{sorted(claimed - registered)} as available, "
        "but nothing registers them"
    )


def test_every_kumomta_function_kumocore_lacks_is_listed_as_not_yet() -> None:
    from kumocore_lua_policy.kumomta_names import KUMOMTA_FUNCTIONS

    listed = table("Functions")
    # kumo.on is the Lua bridge's own (see "Events"), not a registered function.
    lacking = sorted(set(KUMOMTA_FUNCTIONS) - set(registered_functions()) - {"on"})
    unlisted = [name for name in lacking if listed.get(name) != "not yet"]
    assert not unlisted, f"KumoMTA's kumo.{unlisted} are missing from docs/compatibility.md"


# ---------------------------------------------------------------------------- events


def test_every_event_of_the_contract_is_listed() -> None:
    missing = sorted(event_names() - set(table("Events")))
    assert not missing, f"events {missing} are missing from docs/compatibility.md"


def test_every_event_marked_supported_is_in_the_contract() -> None:
    from kumocore.proxy.module import PROXY_EVENTS
    from kumocore.tsa.daemon_policy import DAEMON_EVENTS

    claimed = {name for name, status in table("Events").items() if status != "not yet"}
    # The tsa-daemon's and the proxy's events are no hooks: `kumocore tsa serve` and
    # `kumocore proxy serve` call them by name.
    unknown = claimed - event_names() - set(DAEMON_EVENTS) - set(PROXY_EVENTS)
    assert not unknown, f"events {sorted(unknown)} are marked available but no hook exists"


# ---------------------------------------------------------------------------- options


def options_classes() -> Iterator[tuple[str, Any]]:
    from kumocore.config import (
        EgressPathConfig,
        EgressPool,
        EgressSource,
        EsmtpListenerConfig,
        HttpListenerConfig,
        ListenerDomain,
        QueueConfig,
        SpoolDefinition,
    )

    yield "kumo.start_esmtp_listener", EsmtpListenerConfig
    yield "kumo.start_http_listener", HttpListenerConfig
    yield "kumo.make_listener_domain", ListenerDomain
    yield "kumo.define_spool", SpoolDefinition
    yield "kumo.make_egress_source", EgressSource
    yield "kumo.make_egress_pool", EgressPool
    yield "kumo.make_egress_path", EgressPathConfig
    yield "kumo.make_queue_config", QueueConfig


@pytest.mark.parametrize("function", [name for name, _ in options_classes()])
def test_every_accepted_option_has_a_row(function: str) -> None:
    accepted = set(dict(options_classes())[function].option_converters)
    listed = set(table(f"`{function}` options"))
    assert not accepted - listed, f"{function}: options {sorted(accepted - listed)} not listed"
    assert not listed - accepted, f"{function}: rows {sorted(listed - accepted)} are no option"


# ---------------------------------------------------------------------------- log records


class _Message:
    id = "0" * 32
    sender = "a@example.com"
    recipient = "b@example.com"
    meta: dict[str, Any] = {}
    created = 0.0
    num_attempts = 0
    size = 0

    def get_all_headers(self) -> list[tuple[str, str]]:
        return []


def test_every_log_record_field_and_type_has_a_row() -> None:
    from kumocore.logs.record import _OPTIONAL_FIELDS, RecordType
    from kumocore.logs.record_builder import make_record
    from kumocore.mail.response import Response

    record = make_record("Delivery", _Message(), queue="q", response=Response(250, "ok"),
                         nodeid="n")
    fields = set(record.to_json()) | set(_OPTIONAL_FIELDS)
    assert set(table("Log record fields")) == fields
    types = {t.value for t in RecordType if t is not RecordType.Any}
    assert set(table("Log record types")) == types
