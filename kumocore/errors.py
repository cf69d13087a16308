"""The error types of kumocore's public API.

There is exactly one way for policy code to refuse something: raise :class:`Rejection`.
Only the SMTP and HTTP adapters turn it into a wire reply; everything in between lets it
propagate untouched.
"""

from __future__ import annotations

#: How a refusal ends (or keeps) the SMTP session, KumoMTA's ``RejectDisconnect`` names:
#: ``If421`` closes only after a 421; ``FollowWith421`` closes after any code, first
#: sending a synthesized 421 when the code was not one; ``ForceDisconnect`` closes after
#: the reply whatever its code.
DISCONNECT_DISPOSITIONS: tuple[str, ...] = ("If421", "FollowWith421", "ForceDisconnect")


class Rejection(Exception):
    """Refuse the current SMTP command / injected message with a specific reply.

    ``kumo.reject(code, text)`` raises this. Over SMTP the client sees ``<code> <text>``;
    a 421 (or ``disconnect=True``) also closes the connection, as KumoMTA does.
    ``kumo.disconnect(code, text, disposition)`` raises it with ``disposition`` (one of
    :data:`DISCONNECT_DISPOSITIONS`), which decides whether the session ends. Outside an
    SMTP session the disposition has no effect: the refusal is just ``code text``.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        disconnect: bool | None = None,
        disposition: str | None = None,
    ) -> None:
        if not 200 <= int(code) <= 599:
            raise ValueError(f"reject code must be an SMTP reply code 200..599, got {code!r}")
        if disposition is not None and disposition not in DISCONNECT_DISPOSITIONS:
            raise ValueError(
                "expected one of 'If421', 'FollowWith421' or 'ForceDisconnect', "
                f"but got {disposition!r}"
            )
        super().__init__(f"{code} {message}")
        self.code = int(code)
        self.message = str(message)
        self.disposition = disposition
        if disposition is not None and disconnect is None:
            disconnect = disposition != "If421" or self.code == 421
        self.disconnect = (self.code == 421) if disconnect is None else disconnect

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def follow_with_421(self) -> bool:
        """The session must send a synthesized 421 after this (non-421) reply, then close."""
        return self.disposition == "FollowWith421" and self.code != 421


class ConfigError(ValueError):
    """A policy configured something wrongly: an unknown key, a bad value, a missing field.

    The message always names the offending key (and, where it helps, the allowed values).
    """


class PolicyError(Exception):
    """A policy failed while running (a Lua error, a Python exception in a hook).

    ``where`` is ``"file:line"`` when known. Reception adapters answer
    ``421 4.3.0 <hostname> technical difficulties`` for it.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.detail = message


class WrongAnswerError(PolicyError):
    """A lookup handler answered with something its event cannot take (a string where
    ``kumo.make_queue_config{...}`` belongs). That fails every message, not one, so
    ``kumocore validate`` reports it as an error; ``where`` names the handler(s).
    """


class HookError(Exception):
    """A plugin's hook implementation failed; names the plugin and the hook."""

    def __init__(self, plugin: str, hook: str, cause: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {cause}")
        self.plugin = plugin
        self.hook = hook
        self.cause = cause
