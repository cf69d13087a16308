"""KumoMTA options kumocore parses but does not act on yet: refused, unless allowed.

A config class lists them (``unsupported=``); a policy that sets one to anything but its
default fails to load with an error naming it, unless the operator started kumocore with
``--allow-unsupported``: then each is logged once and listed by :func:`ignored_options`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kumocore.errors import ConfigError

if TYPE_CHECKING:
    from kumocore.config.conv import Path

#: Set (by ``kumocore serve/validate --allow-unsupported``) in the environment, so that
#: worker processes inherit the operator's choice.
ALLOW_UNSUPPORTED_ENV = "KUMOCORE_ALLOW_UNSUPPORTED"
_ignored: dict[str, str] = {}


def allow_unsupported(allow: bool = True) -> None:
    """Let policies set unsupported KumoMTA options (each is then listed as a warning)."""
    if allow:
        os.environ[ALLOW_UNSUPPORTED_ENV] = "1"
    else:
        os.environ.pop(ALLOW_UNSUPPORTED_ENV, None)


def ignored_options() -> dict[str, str]:
    """``{option: function}`` of every unsupported option a policy set and that was
    ignored because the operator allowed it."""
    return dict(_ignored)


def refuse_unsupported(name: str, path: Path) -> None:
    """A KumoMTA option kumocore does not act on: a :class:`ConfigError` naming it,
    unless the operator opted in, in which case it is remembered and logged once."""
    where = path.child(name)
    if os.environ.get(ALLOW_UNSUPPORTED_ENV) != "1":
        raise ConfigError(
            f"KumoMTA's option {name!r} is not supported by kumocore yet "
            f"({where.key!r} in {where.function}); remove it, or start kumocore with "
            "--allow-unsupported to run with it ignored"
        )
    if name not in _ignored:
        import structlog

        _ignored[name] = where.function
        structlog.get_logger("kumocore.config").warning(
            "KumoMTA option not supported by kumocore yet; ignored (--allow-unsupported)",
            option=name,
            function=where.function,
        )
