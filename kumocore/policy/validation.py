"""What ``kumo.validation_failed()`` records, for ``kumocore validate`` to report.

KumoMTA's helper modules check their data in a ``validate_config`` handler, print what is
wrong and call ``kumo.validation_failed()`` (no arguments); ``kumod --validate`` then fails.
kumocore records each call with the policy's ``file:line`` (the Lua bridge passes the
caller's position; for Python policies it is the calling frame) and an optional message,
so ``kumocore validate`` can list where validation failed, then exit 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ValidationFailure:
    where: str | None
    message: str | None

    def __str__(self) -> str:
        text = self.message or "validation failed"
        return f"{self.where}: {text}" if self.where else text


class ValidationReport:
    """The failures recorded since start-up, in order."""

    def __init__(self) -> None:
        self.failures: list[ValidationFailure] = []

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def validation_failed(self, message: str | None = None, where: str | None = None) -> None:
        """``kumo.validation_failed([message])``: mark the configuration as invalid.

        KumoMTA's form takes no argument; kumocore also accepts a message to report.
        """
        if where is None:
            caller = sys._getframe(1)
            where = f"{caller.f_code.co_filename}:{caller.f_lineno}"
        self.failures.append(ValidationFailure(where, None if message is None else str(message)))
