"""An example third-party kumocore plugin.

Installing this distribution is all it takes: kumocore finds it through the ``kumocore``
entry point group. It adds ``kumo.hello.greet(name)`` to Lua and Python policies and
refuses ``MAIL FROM`` addresses listed with ``kumo.hello.block_sender{address=...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore import Rejection, hookimpl, policy_function


class HelloPlugin:
    """One instance per plugin manager, so the block list belongs to one server."""

    def __init__(self) -> None:
        self.blocked: set[str] = set()

    def greet(self, name: str) -> str:
        return f"hello, {name}"

    @policy_function(table=True)
    def block_sender(self, *, address: str) -> None:
        self.blocked.add(address.lower())

    @hookimpl
    def kumo_register_policy_functions(self) -> Mapping[str, Callable[..., Any]]:
        return {"hello.greet": self.greet, "hello.block_sender": self.block_sender}

    @hookimpl
    def kumo_smtp_server_mail_from(self, sender: Any) -> None:
        if str(sender).lower() in self.blocked:
            raise Rejection(550, f"5.7.1 {sender} is blocked by the hello plugin")
