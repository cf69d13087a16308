"""The connection metadata SMTP events receive (``conn_meta``), with the session's AuthInfo.

``conn_meta`` is a live dict, as KumoMTA's: what one event stores (``conn_meta:set_meta``)
the next one reads, and what it holds when a message is accepted becomes the message's meta.
Beside the meta entries it carries the session's :class:`~kumocore.auth_info.AclAuthInfo`,
which is not a meta entry (KumoMTA keeps it apart too): ``conn_meta:auth_info()`` gives a
copy of it in Lua, for ``kumo.aaa.query_resource_access``. It starts with the client's
address and gains identities and groups when ``AUTH`` succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kumocore.auth_info import AclAuthInfo, Identity, parse_peer_ip

__all__ = ["ConnMeta", "session_auth_info"]

#: The identity contexts of SMTP AUTH's two names (KumoMTA's).
AUTHN_CONTEXT = "SmtpAuthPlainAuthentication"
AUTHZ_CONTEXT = "SmtpAuthPlainAuthorization"


class ConnMeta(dict[str, Any]):
    """A dict of meta entries, plus ``auth_info`` (who the session is)."""

    __slots__ = ("auth_info",)

    def __init__(self, *args: Any, auth_info: AclAuthInfo | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auth_info = AclAuthInfo() if auth_info is None else auth_info


def session_auth_info(meta: Mapping[str, Any]) -> AclAuthInfo:
    """The AuthInfo of the session ``meta`` describes.

    A :class:`ConnMeta` carries its own. Any other mapping (a message's meta, as the deferred
    SMTP injection rebuilds a session from it, or a plain dict from a plugin's test) is read
    as KumoMTA reads a message's: the peer from ``received_from``, and the ``authn_id`` and
    ``authz_id`` entries as the AUTH identities."""
    if isinstance(meta, ConnMeta):
        return meta.auth_info
    identities = tuple(
        Identity(meta[key], context)
        for key, context in (("authn_id", AUTHN_CONTEXT), ("authz_id", AUTHZ_CONTEXT))
        if isinstance(meta.get(key), str)
    )
    return AclAuthInfo(parse_peer_ip(meta.get("received_from")), identities)
