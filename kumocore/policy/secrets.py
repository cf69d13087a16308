"""``kumo.secrets.load(SOURCE)``: the bytes a KumoMTA KeySource names.

Supported sources: a file name (``'/etc/kumo/passwd'``) and inline data
(``{ key_data = '...' }``). HashiCorp Vault sources (``{ vault_path = ... }``) and
event-based sources (``{ event_name = ... }``) are refused with a clear error: kumocore
has no Vault client, and guessing would hand the policy the wrong credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function
from kumocore.regular_file import read_regular_file

_VAULT_KEYS = ("vault_mount", "vault_path", "vault_address", "vault_token", "vault_key")


def load_secret(source: Any) -> bytes:
    """The bytes of a KeySource; raises :class:`ConfigError` saying why it cannot."""
    if isinstance(source, str):
        try:
            return read_regular_file(source)  # a FIFO or a device would hold the loop
        except OSError as exc:
            raise ConfigError(f"kumo.secrets.load: cannot read {source!r}: {exc.strerror}") from exc
    if isinstance(source, Mapping):
        if "key_data" in source:
            data = source["key_data"]
            if isinstance(data, str):
                return data.encode("utf-8")
            if isinstance(data, bytes):
                return data
            raise ConfigError(f"kumo.secrets.load: key_data must be a string, got {data!r}")
        if any(key in source for key in _VAULT_KEYS):
            raise ConfigError(
                "kumo.secrets.load: HashiCorp Vault key sources are not supported by kumocore "
                "yet; use a file name or { key_data = ... }")
        if "event_name" in source:
            raise ConfigError(
                "kumo.secrets.load: event-based key sources ({ event_name = ... }) are not "
                "supported by kumocore yet; use a file name or { key_data = ... }")
    raise ConfigError(
        f"kumo.secrets.load: expected a file name or {{ key_data = ... }}, got {source!r:.80}")


def make_secrets_functions() -> dict[str, Callable[..., Any]]:
    """The ``secrets.load`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=False)
    def load(source: Any) -> bytes:
        """``kumo.secrets.load(SOURCE)``: the secret's bytes (a Lua string)."""
        return load_secret(source)

    return {"secrets.load": load}
