"""``kumo.secrets.load(SOURCE)``: the bytes a KumoMTA KeySource names.

Supported sources: a file name (``'/etc/kumo/passwd'``), inline data
(``{ key_data = '...' }``) and HashiCorp Vault (``{ vault_mount = ..., vault_path = ... }``,
read by :mod:`kumocore.config.vault`). ``kumo.secrets.load`` of a Vault source gives Lua
an awaitable (a Python policy awaits it), as the read goes over the network; the
synchronous :func:`load_secret`, which options read while a connection is made use, refuses
Vault. Event-based sources (``{ event_name = ... }``) are refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kumocore.config.key_source import key_source_bytes
from kumocore.config.vault import then_with_secrets
from kumocore.policy.policyfn import policy_function


def load_secret(source: Any, who: str = "kumo.secrets.load") -> bytes:
    """The bytes of a file or inline KeySource; raises :class:`ConfigError` saying why it
    cannot (a Vault source: see :func:`load_secret_or_vault`)."""
    return key_source_bytes(source, who, sync="this key is read synchronously")


def load_secret_or_vault(source: Any, who: str = "kumo.secrets.load") -> Any:
    """The bytes of any KeySource: at once for a file or inline data, an awaitable of
    them for a HashiCorp Vault source."""
    return then_with_secrets(who, [source], lambda resolved: load_secret(resolved, who))


def make_secrets_functions() -> dict[str, Callable[..., Any]]:
    """The ``secrets.load`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    def load(source: Any) -> Any:
        """``kumo.secrets.load(SOURCE)``: the secret's bytes (a Lua string); for a
        HashiCorp Vault source an awaitable of them (Lua waits for it unseen)."""
        return load_secret_or_vault(source)

    return {"secrets.load": load}
