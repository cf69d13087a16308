"""``GET /api/machine-info``: what machine and process answer (KumoMTA's ``MachineInfoV1``).

Only facts this process can read for itself are reported; a field whose fact cannot be
read here is left out of the answer rather than filled with a placeholder:

* ``mac_address``: absent when no non-loopback interface has a hardware address;
* ``fingerprint``: ``machine_uid=<id>`` from ``/etc/machine-id`` only — kumocore asks no
  cloud metadata service, so there is never an ``aws_instance_id``; absent without one;
* ``cpu_brand``, ``distribution``, ``os_version``, ``total_memory_bytes``: absent when
  ``/proc/cpuinfo``, ``/etc/os-release`` or ``/proc/meminfo`` cannot be read;
* ``kernel_version`` and ``container_runtime`` are ``null`` when unknown, as KumoMTA's
  schema allows.

``node_id`` is the ``nodeid`` this worker writes in its log records (new at each start:
kumocore keeps no persistent node id), ``online_since`` is when this worker process
started, and ``process_kind`` is ``kumocore``. With ``serve --workers N`` whichever worker
takes the request answers for itself; the request is not fanned out.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.logs.timestamps import rfc3339

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

__all__ = ["MACHINE_INFO_PATH", "machine_info", "machine_info_handler"]

MACHINE_INFO_PATH = "/api/machine-info"
PROCESS_KIND = "kumocore"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def os_release(text: str | None = None) -> dict[str, str]:
    """``/etc/os-release`` (or ``text``) as a dict, quotes removed."""
    text = _read("/etc/os-release") if text is None else text
    fields: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def cpu_brands(text: str | None = None) -> str | None:
    """The distinct ``model name`` lines of ``/proc/cpuinfo``, comma separated."""
    text = _read("/proc/cpuinfo") if text is None else text
    brands: list[str] = []
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip() not in brands:
            brands.append(value.strip())
    return ", ".join(brands) or None


def total_memory(text: str | None = None) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes."""
    text = _read("/proc/meminfo") if text is None else text
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                factor = 1024 if parts[-1].lower() == "kb" else 1
                return int(parts[1]) * factor
    return None


def primary_mac(net: Path = Path("/sys/class/net")) -> str | None:
    """The hardware address of the first (by name) non-loopback interface that has one."""
    try:
        names = sorted(entry.name for entry in net.iterdir())
    except OSError:
        return None
    for name in names:
        address = (_read(str(net / name / "address")) or "").strip().lower()
        if name != "lo" and address and address != "00:00:00:00:00:00":
            return address
    return None


def container_runtime() -> str | None:
    """The container runtime, when one leaves its usual mark; None otherwise."""
    # systemd-nspawn, podman and lxc set this lower-case variable in the container
    marker = os.environ.get("container")  # noqa: SIM112
    if marker:
        return marker
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/run/.containerenv").exists():
        return "podman"
    return None


def _cores() -> int:
    try:  # the CPUs this process may run on, as KumoMTA's num_cpus reports
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def machine_info(runtime: Runtime) -> dict[str, Any]:
    """The answer of ``GET /api/machine-info`` (see the module docstring)."""
    from kumocore import __version__
    from kumocore.status.data import process_start_time

    release = os_release()
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "node_id": runtime.nodeid,
        "num_cores": _cores(),
        "kernel_version": platform.release() or None,
        "platform": f"{sys.platform}/{platform.machine()}",
        "container_runtime": container_runtime(),
        "online_since": rfc3339(process_start_time()),
        "process_kind": PROCESS_KIND,
        "version": __version__,
    }
    optional: dict[str, Any] = {
        "mac_address": primary_mac(),
        "cpu_brand": cpu_brands(),
        "distribution": release.get("ID"),
        "os_version": _os_version(release),
        "total_memory_bytes": total_memory(),
        "fingerprint": _fingerprint(),
    }
    info.update({key: value for key, value in optional.items() if value is not None})
    return info


def _os_version(release: dict[str, str]) -> str | None:
    name = release.get("NAME")
    if not name:
        return None
    version = release.get("VERSION_ID")
    return f"{platform.system()} ({name} {version})" if version else f"{platform.system()} ({name})"


def _fingerprint() -> str | None:
    machine_id = (_read("/etc/machine-id") or "").strip()
    return f"machine_uid={machine_id}" if machine_id else None


def machine_info_handler(runtime: Runtime) -> Any:
    """The aiohttp handler, bound to ``runtime``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        # Off the loop: /proc/cpuinfo alone is hundreds of KiB on a large machine, and
        # a file system read must not hold up every connection of this worker.
        return web.json_response(await asyncio.to_thread(machine_info, runtime))

    return handler
