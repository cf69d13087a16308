"""Egress secrets kept in HashiCorp Vault: the path's ``smtp_auth_plain_password``,
``tls_certificate`` and ``tls_private_key``, the source's ``socks5_proxy_password``.

The SMTP client reads these synchronously while it opens a connection, where it cannot
wait for Vault. So they are read here, on the event loop, when routing asks the policy
for the path's (or source's) configuration, and the configuration the client sees holds
the secret as ``{ key_data = ... }``: a connection never waits for Vault. Routing asks
again whenever the configuration is due for a refresh; a secret read in the last
:data:`SECRET_TTL` seconds is taken from memory (one read at a time per secret, whatever
the number of paths asking), so a Vault outage costs nothing until it expires, and a
rotated password is in use within that time. A failed read raises the
:class:`~kumocore.errors.ConfigError` of :func:`~kumocore.config.vault.read_vault_secret`
(mount, path and status, never the token): routing then defers the messages with it,
as for any configuration error.
"""

from __future__ import annotations

from typing import TypeVar

from kumocore.config.vault_cache import SecretCache, inline_vault_fields

__all__ = ["SECRET_TTL", "forget_secrets", "read_egress_vault_sources"]

#: Seconds a secret read from Vault is used before it is read again (KumoMTA's TLS and
#: connection caches keep theirs five minutes too).
SECRET_TTL = 300.0
#: Secrets kept at once: one per distinct Vault source a policy names (bounded by it);
#: the oldest go first past this.
MAX_SECRETS = 4096

_FIELDS = ("smtp_auth_plain_password", "tls_certificate", "tls_private_key",
           "socks5_proxy_password")  # fmt: skip

ConfigT = TypeVar("ConfigT")

#: The egress secrets (:mod:`kumocore.config.vault_cache`: one read at a time per secret).
_SECRETS = SecretCache(SECRET_TTL, MAX_SECRETS)


async def read_egress_vault_sources(config: ConfigT, who: str) -> ConfigT:
    """``config`` (an egress path's or source's configuration) with every Vault key
    source replaced by ``{ key_data = <secret> }``; ``config`` itself when it has none."""
    return await inline_vault_fields(config, _FIELDS, _SECRETS, who)


def forget_secrets() -> None:
    """Drop every remembered secret (tests; a policy reload keeps them)."""
    _SECRETS.forget()
