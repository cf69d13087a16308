"""``kumo.api.inject.inject_v1(REQUEST)`` and ``kumo.set_httpinject_recipient_rate_limit``.

``inject_v1`` injects from a policy with the request shape of ``POST /api/inject/v1``
(docs/http-api.md): the same checks, templates, ``http_message_generated`` event and
spooling (:class:`kumocore.http.inject.InjectHandler`, without its HTTP layer), and it
returns what the API answers, ``{success_count, fail_count, failed_recipients, errors}``.
A request the API would refuse as a whole (a 4xx) raises an error naming the problem.

As in KumoMTA the request appears to come from the local system: ``received_from`` is
``127.0.0.1``, ``http_auth`` is ``kumomta.internal``, and there is no listener, so the
messages carry no ``received_via`` or ``hostname`` meta (the ``Received:`` header and
generated Message-IDs use the node's hostname); the limits are an HTTP listener's
defaults (``inject_generated_size_limit``, ``max_rendered_size``). The recipient rate
limit does not apply to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from kumocore.errors import ConfigError
from kumocore.http.auth import AuthInfo
from kumocore.http.inject import InjectRefused
from kumocore.http.inject_deferred import QueueingInjectHandler
from kumocore.policy.policy_host import running
from kumocore.policy.policyfn import policy_function

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost

INJECT_V1 = "kumo.api.inject.inject_v1"
#: The request keys whose value is an array (an empty Lua table arrives as a mapping).
_ARRAYS = frozenset({"recipients", "attachments", "include_meta_names"})
#: KumoMTA's ``AuthInfo::new_local_system()``: the loopback peer, identity kumomta.internal.
LOCAL_SYSTEM = AuthInfo(peer_address="127.0.0.1", trusted=True, user="kumomta.internal")


def _plain(value: Any, where: str) -> Any:
    """A Lua table's data as the JSON the HTTP API decodes. Lua strings may reach Python as
    bytes (``msg:get_data()`` as ``content``): they must be UTF-8 text, as in JSON."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{INJECT_V1}: {where} is not valid UTF-8 text") from None
    if isinstance(value, Mapping):
        if not value and where.rsplit(".", 1)[-1] in _ARRAYS:
            return []  # Lua's {} is both; these keys hold arrays
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def make_inject_api_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """The ``api.inject.inject_v1`` and ``set_httpinject_recipient_rate_limit`` entries
    of ``kumo_register_policy_functions``."""
    from kumocore.config import HttpListenerConfig

    handler: list[QueueingInjectHandler] = []  # made on first use: the hostname is known by then

    @policy_function(table=True)
    async def inject_v1(**request: Any) -> dict[str, Any]:
        """Inject like ``POST /api/inject/v1`` (the same request table, checks,
        ``http_message_generated`` and spooling, as from ``127.0.0.1``); returns the API's
        ``{success_count, fail_count, failed_recipients, errors}``. A request the API
        refuses whole raises its error. Not subject to the recipient rate limit."""
        running(runtime, INJECT_V1)
        if not handler:
            config = HttpListenerConfig.from_options({"hostname": runtime.hostname})
            handler.append(QueueingInjectHandler(runtime, config))
        body = _plain(request, "request")
        try:
            inject, templates = await handler[0].prepare(body)
            return await handler[0].answer(orjson.dumps(body), inject, templates,
                                           LOCAL_SYSTEM, None)  # fmt: skip
        except InjectRefused as exc:
            raise ConfigError(f"{INJECT_V1}: {exc.text}") from None

    @policy_function(table=False)
    def set_httpinject_recipient_rate_limit(spec: Any = None) -> None:
        """``'local:10,000/s'`` or nil: the recipients per period all HTTP injection
        requests of the node may add (each request waits for its turn)."""
        runtime.httpinject_rate_limit.set(spec)

    return {
        "api.inject.inject_v1": inject_v1,
        "set_httpinject_recipient_rate_limit": set_httpinject_recipient_rate_limit,
    }
