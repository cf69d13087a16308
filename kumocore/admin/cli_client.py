"""The admin CLI's client side: one call of the admin HTTP API, and what every command
shares (its ``--endpoint``/``--timeout`` options, JSON output, an error answer printed to
stderr with exit status 1).

Its own module so that the command modules (:mod:`kumocore.admin.cli`,
:mod:`kumocore.admin.ready_q_cli`, :mod:`kumocore.tsa.cli`) share it without importing
each other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_ENDPOINT",
    "SELECTORS",
    "AdminClientError",
    "Command",
    "canceller",
    "check_limit",
    "client_options",
    "guarded",
    "lister",
    "print_json",
    "request",
    "request_raw",
    "run",
    "selection_options",
]  # fmt: skip

DEFAULT_ENDPOINT = os.environ.get("KUMOCORE_ENDPOINT", "http://127.0.0.1:8000")

Command = Callable[[argparse.Namespace], int]


class AdminClientError(Exception):
    """The API answered with an error (``status`` > 0) or could not be reached (0)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


def request(
    endpoint: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    timeout: float = 60.0,
) -> Any:
    """One API call; returns the decoded JSON answer or raises :class:`AdminClientError`."""
    return json.loads(request_raw(endpoint, method, path, body, timeout=timeout) or b"null")


def request_raw(
    endpoint: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    timeout: float = 60.0,
) -> bytes:
    """One API call; returns the answer's bytes (the endpoints that answer plain text, as
    KumoMTA's do) or raises :class:`AdminClientError`."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        endpoint.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            error = json.loads(raw)
        except ValueError:
            error = None
        if not isinstance(error, dict):  # not our JSON: an auth layer or a proxy answered
            error = {"error": raw.decode("utf-8", "replace").strip() or exc.reason}
        raise AdminClientError(exc.code, error) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminClientError(0, {"error": f"cannot reach {endpoint}: {reason}"}) from exc


def run(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    return request(args.endpoint, method, path, body, timeout=args.timeout)


def check_limit(command: str, limit: int | None) -> None:
    """Refuse a negative ``--limit`` before anything is asked (exit 1, a JSON error)."""
    if limit is not None and limit < 0:
        raise AdminClientError(0, {"error": f"{command}: --limit must be 0 or more"})


def print_json(value: Any) -> int:
    print(json.dumps(value, indent=2, sort_keys=True))
    return 0


def guarded(handler: Command) -> Command:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except AdminClientError as exc:
            print(json.dumps(exc.body), file=sys.stderr)
            return 1

    return wrapper


def lister(path: str) -> Command:
    return lambda args: print_json(run(args, "GET", path))


def canceller(path: str) -> Command:
    return lambda args: print_json(run(args, "DELETE", path, {"id": args.id}))


#: The queue selectors of the admin commands (``--domain``, ...), as their JSON names.
SELECTORS = ("domain", "tenant", "campaign", "routing_domain")


def selection_options(parser: argparse.ArgumentParser) -> None:
    """``--domain``, ``--tenant``, ``--campaign``, ``--routing-domain`` and
    ``--everything``: which scheduled queues a command acts on."""
    parser.add_argument("--domain", help="match the scheduled queues of this domain")
    parser.add_argument("--tenant", help="match this tenant")
    parser.add_argument("--campaign", help="match this campaign")
    parser.add_argument("--routing-domain", help="match this routing domain")
    parser.add_argument("--everything", action="store_true",
                        help="required to match every queue when no selector is given")


def client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        default=DEFAULT_ENDPOINT,
        help="base URL of kumocore's HTTP listener (default: $KUMOCORE_ENDPOINT or %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
