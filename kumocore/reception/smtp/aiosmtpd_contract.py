"""What kumocore relies on inside aiosmtpd, checked before an SMTP listener starts.

:class:`kumocore.reception.smtp.protocol.SmtpProtocol` subclasses ``aiosmtpd.smtp.SMTP``, skips its
(slow) constructor and sets the private attributes its inherited machinery reads: the
asyncio plumbing, the STARTTLS transport switch and the teardown are aiosmtpd's. Those
internals are not aiosmtpd's public API, so kumocore pins aiosmtpd to the release series
it was tested with (``pyproject.toml``), and a listener refuses to start — with a line
saying why — on an aiosmtpd whose internals differ, instead of mishandling sessions.
``tests/smtp/test_aiosmtpd_contract.py`` runs the same check, so an upgrade fails there
first. Why this and not our own transport code: docs/contributing.md, "aiosmtpd".
"""

from __future__ import annotations

import functools
import inspect
from importlib.metadata import PackageNotFoundError, version

#: The aiosmtpd release series kumocore was tested with (``aiosmtpd~=1.4.6``).
TESTED_SERIES = (1, 4)
MINIMUM = (1, 4, 6)

#: Inherited methods kumocore overrides or lets run, with their parameters (after self).
METHODS: dict[str, tuple[str, ...]] = {
    "connection_made": ("transport",),
    "connection_lost": ("error",),
    "eof_received": (),
    "_reset_timeout": ("duration",),
    "_timeout_cb": (),
    "_handle_client": (),
    "_cb_client_connected": ("reader", "writer"),
}

#: Names ``SMTP.connection_made`` must use: it starts the command loop (``_handle_client``
#: into ``_handler_coroutine``, awaited by the listener at shutdown) and, after STARTTLS,
#: tells the upgrade apart by ``_original_transport`` and drops pipelined plaintext from
#: the reader's buffer (CVE-2024-34083).
CONNECTION_MADE_USES = (
    "_handle_client", "_handler_coroutine", "_original_transport", "_tls_protocol",
    "_reader._buffer.clear", "_reset_timeout",
)


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def version_problem(installed: str) -> str | None:
    """Why aiosmtpd ``installed`` is outside the tested series, or None."""
    release = _release(installed)
    if release[:2] != TESTED_SERIES or release < MINIMUM:
        wanted = ".".join(map(str, MINIMUM))
        return (f"aiosmtpd {installed} is not the tested release series "
                f"(kumocore needs aiosmtpd~={wanted})")
    return None


def internals_problems(smtp_class: type) -> list[str]:
    """What ``smtp_class`` (aiosmtpd's ``SMTP``) lacks of what kumocore relies on."""
    problems = []
    for name, params in METHODS.items():
        method = getattr(smtp_class, name, None)
        if not callable(method):
            problems.append(f"aiosmtpd SMTP.{name} is missing")
            continue
        found = tuple(inspect.signature(method).parameters)[1:]
        if found != params:
            problems.append(f"aiosmtpd SMTP.{name} takes {found}, kumocore expects {params}")
    try:
        source = inspect.getsource(getattr(smtp_class, "connection_made"))  # noqa: B009
    except (OSError, TypeError, AttributeError):
        return problems  # no source installed: the signatures are all we can check
    problems.extend(f"aiosmtpd SMTP.connection_made no longer uses {name}"
                    for name in CONNECTION_MADE_USES if name not in source)
    return problems


@functools.cache  # once per process (a failed check raises, and is not cached)
def check_aiosmtpd() -> None:
    """Raise RuntimeError naming every difference from the aiosmtpd kumocore was tested
    with (called before an SMTP listener starts)."""
    from aiosmtpd.smtp import SMTP

    try:
        installed = version("aiosmtpd")
    except PackageNotFoundError:
        installed = "unknown"
    problems = [p for p in [version_problem(installed)] if p] + internals_problems(SMTP)
    if problems:
        raise RuntimeError("cannot run SMTP listeners on this aiosmtpd: " + "; ".join(problems))
