"""The bytes of a file or inline KumoMTA KeySource, read at once.

A KeySource names a secret: a file name (``'/etc/kumo/hmac.key'``), inline data
(``{ key_data = '...' }``), HashiCorp Vault (``{ vault_mount = ..., vault_path = ... }``,
read over the network by :mod:`kumocore.config.vault` before this is asked) or a policy
event (``{ event_name = ... }``, not supported). ``kumo.secrets.load``, the HMAC digests and
AES functions all read through :func:`key_source_bytes`, so a source means the same, and a
refusal reads the same, wherever a policy gives one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kumocore.config.vault import is_vault_source
from kumocore.errors import ConfigError
from kumocore.policy.policyfn import lua_type_name
from kumocore.regular_file import read_regular_file

_INLINE_OR_FILE = "use a file name or { key_data = ... }"


def key_source_bytes(
    source: Any, who: str, *, what: str = "", limit: int | None = None, sync: str = ""
) -> bytes:
    """The bytes ``source`` names; :class:`ConfigError` saying why not.

    ``who`` and ``what`` open every error (``"kumo.crypto.aes_encrypt_block: key: ..."``);
    ``limit`` bounds a key file's size (a key read whole into memory must not be a log
    file); ``sync`` says why a Vault source cannot be read here (it must be resolved
    first, where the caller may await).
    """
    prefix = f"{who}: {what}" if what else who
    if isinstance(source, str | bytes):
        return _file_bytes(os.fsdecode(source), prefix, limit)
    if isinstance(source, Mapping):
        if "key_data" in source:
            data = source["key_data"]
            if isinstance(data, bytes):
                return data
            if isinstance(data, str):
                return data.encode("utf-8")
            raise ConfigError(f"{prefix}: key_data must be a string, got {lua_type_name(data)}")
        if is_vault_source(source):
            why = f" ({sync})" if sync else ""
            raise ConfigError(f"{prefix}: HashiCorp Vault key sources are not supported "
                              f"here by kumocore yet{why}; {_INLINE_OR_FILE}")  # fmt: skip
        if "event_name" in source:
            raise ConfigError(f"{prefix}: event-based key sources ({{ event_name = ... }}) "
                              f"are not supported by kumocore yet; {_INLINE_OR_FILE}")  # fmt: skip
    raise ConfigError(f"{prefix} must be a file name, {{ key_data = ... }} or {{ vault_mount"
                      f" = ..., vault_path = ... }}, got {lua_type_name(source)}")  # fmt: skip


def _file_bytes(name: str, prefix: str, limit: int | None) -> bytes:
    try:
        # Regular files only: a FIFO or a device would hold the event loop.
        data = read_regular_file(name, limit)
    except OSError as exc:
        raise ConfigError(f"{prefix}: cannot read key file {name!r}: {exc.strerror}") from None
    except ValueError:  # a NUL byte: no file has such a name
        raise ConfigError(f"{prefix}: invalid key file name {name!r}") from None
    if limit is not None and len(data) > limit:
        raise ConfigError(f"{prefix}: key file {name!r} is larger than {limit} bytes")
    return data
