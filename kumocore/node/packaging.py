"""Files for installing kumocore as a service, shipped as package data.

``kumocore systemd-unit`` prints the unit file with ``ExecStart`` pointing at the
``kumocore`` script that is running, so the printed unit works for a virtualenv or a
system-wide install alike.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING


def systemd_unit(executable: str | None = None) -> str:
    """The systemd unit text with ``{executable}`` replaced by the kumocore script's path."""
    template = resources.files("kumocore").joinpath("defaults/kumocore.service").read_text()
    return template.replace("{executable}", executable or _kumocore_script())


def default_policy_path() -> Path:
    """Where the bundled default policy is installed (a real file inside the package)."""
    return Path(str(resources.files("kumocore").joinpath("defaults/default-policy.lua")))


def _kumocore_script() -> str:
    beside_python = Path(sys.executable).with_name("kumocore")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("kumocore") or "/usr/local/bin/kumocore"


if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def add_packaging_subcommands(commands: Subcommands) -> None:
    unit = commands.add_parser(
        "systemd-unit",
        help="print a systemd unit file for running kumocore as a service",
        description="Print a systemd unit for kumocore. Example: "
        "kumocore systemd-unit > /etc/systemd/system/kumocore.service",
    )
    unit.add_argument("--executable", help="path of the kumocore script (default: this one)")
    unit.set_defaults(handler=lambda args: print(systemd_unit(args.executable), end="") or 0)

    default = commands.add_parser(
        "default-policy",
        help="print the path of the bundled default policy",
        description="Print where the bundled default policy is installed, e.g. "
        'kumocore serve --policy "$(kumocore default-policy)"',
    )
    default.set_defaults(handler=lambda args: print(default_policy_path()) or 0)
