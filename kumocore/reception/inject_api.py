"""``kumo.make_message`` and ``kumo.inject_message``: a policy creates and queues mail.

``make_message(sender, recipient, body)`` builds a message that exists only in memory;
``inject_message(msg)`` resolves its queue configuration, spools it and queues it, as
KumoMTA does (no Reception record: the policy, not a client, produced it). Errors — an
unknown tenant, a full disk — are raised to the caller (``pcall`` in Lua).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.errors import ConfigError
from kumocore.mail.message import Message
from kumocore.policy.policy_host import running
from kumocore.policy.policyfn import lua_type_name, policy_function

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost


def make_inject_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """The ``make_message``/``inject_message`` entries of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    def make_message(sender: Any, recipient: Any, body: Any) -> Message:
        """``kumo.make_message(SENDER, RECIPIENT, BODY)``: an in-memory message."""
        if not isinstance(sender, str) or not isinstance(recipient, str):
            raise ConfigError("kumo.make_message: SENDER and RECIPIENT must be address strings")
        if not isinstance(body, str | bytes):
            raise ConfigError("kumo.make_message: BODY must be a string, "
                              f"got {lua_type_name(body)}")
        return Message(sender, recipient, body.encode() if isinstance(body, str) else body)

    @policy_function(table=False)
    async def inject_message(message: Any, deferred_spool: Any = None) -> None:
        """``kumo.inject_message(MSG [, DEFERRED_SPOOL])``: spool and queue a message from
        make_message (with ``true``: hold it in memory as ``deferred_spool`` does)."""
        if not isinstance(message, Message):
            raise ConfigError(
                "kumo.inject_message: expected a message from kumo.make_message, "
                f"got {message!r:.60}")
        if deferred_spool is not None and not isinstance(deferred_spool, bool):
            raise ConfigError("kumo.inject_message: DEFERRED_SPOOL must be a boolean, "
                              f"got {deferred_spool!r:.40}")
        intake = running(runtime, "kumo.inject_message").intake
        [outcome] = await intake.accept(
            [message], reception_protocol="Lua",
            without_reception_record=frozenset({message.id}),
            deferred_spool=bool(deferred_spool))
        if outcome.error is not None:
            raise outcome.error

    return {"make_message": make_message, "inject_message": inject_message}
