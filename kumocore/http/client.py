"""``kumo.http.build_client { ... }``: an HTTP client for policies (webhooks, lookups).

Shapes follow KumoMTA: ``client:get(url)``/``:post``/``:put`` return a request; request
methods (``header``, ``headers``, ``basic_auth``, ``bearer_auth``, ``body``,
``form_url_encoded``, ``form_multipart_data``, ``timeout``) configure it and return it, so
calls chain;
``request:aws_sign_v4 {...}`` signs it for AWS (with the Lua policy plugin's signer,
:func:`set_aws_signer`); ``request:send()`` returns a response with ``status_code()``,
``status_reason()``, ``status_is_*()``, ``headers()`` (lower-case names),
``content_length()``, ``text()`` and ``bytes()``. The client keeps one aiohttp session
(a connection pool) until ``client:close()``.
"""

from __future__ import annotations

import asyncio
import base64
import weakref
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import aiohttp

from kumocore.config.duration import duration_seconds
from kumocore.digits import decimal
from kumocore.errors import ConfigError
from kumocore.http.form_data import encode_form_data
from kumocore.policy.policyfn import policy_function, string_argument

_CLIENT_OPTIONS = ("user_agent", "timeout", "pool_idle_timeout", "connection_verbose",
                   "accept_invalid_certs")
DEFAULT_TIMEOUT = 60.0


def _seconds(value: Any, what: str) -> float:
    try:
        return float(duration_seconds(value))
    except (ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(f"kumo.http: {what}: invalid duration {value!r}") from exc


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return string_argument("kumo.http", what, value)


class HttpResponse:
    """A received response; its body is read before it is handed to the policy."""

    __kumo_methods__ = True

    def __init__(self, status: int, reason: str | None, headers: dict[str, str],
                 body: bytes, charset: str | None) -> None:
        self._status, self._reason, self._headers = status, reason, headers
        self._body, self._charset = body, charset

    def status_code(self) -> int:
        return self._status

    def status_reason(self) -> str | None:
        try:
            return HTTPStatus(self._status).phrase
        except ValueError:
            return self._reason or None

    def status_is_informational(self) -> bool:
        return 100 <= self._status < 200

    def status_is_success(self) -> bool:
        return 200 <= self._status < 300

    def status_is_redirection(self) -> bool:
        return 300 <= self._status < 400

    def status_is_client_error(self) -> bool:
        return 400 <= self._status < 500

    def status_is_server_error(self) -> bool:
        return 500 <= self._status < 600

    def headers(self) -> dict[str, str]:
        """Header names in lower case (index with lower-case names)."""
        return dict(self._headers)

    def content_length(self) -> int | None:
        value = self._headers.get("content-length")
        return decimal(value) if value is not None else None

    def bytes(self) -> bytes:
        return self._body

    def text(self) -> str:
        body = self._body
        if body.startswith(b"\xef\xbb\xbf"):
            return body[3:].decode("utf-8", "replace")
        try:
            return body.decode(self._charset or "utf-8", "replace")
        except LookupError:  # an unknown charset name: fall back as KumoMTA does
            return body.decode("utf-8", "replace")


class HttpRequest:
    """A request being configured; ``send()`` performs it."""

    __kumo_methods__ = True

    def __init__(self, client: HttpClient, method: str, url: str) -> None:
        self._client, self._method, self._url = client, method, url
        self._headers: dict[str, str] = {}
        self._body: bytes | None = None
        self._timeout = client.timeout

    def header(self, name: Any, value: Any) -> HttpRequest:
        self._headers[_text(name, "header name")] = _text(value, "header value")
        return self

    def headers(self, headers: Any) -> HttpRequest:
        if not isinstance(headers, Mapping):
            raise ConfigError("kumo.http: request:headers takes a table of name = value")
        for name, value in headers.items():
            self.header(name, value)
        return self

    def basic_auth(self, username: Any, password: Any = None) -> HttpRequest:
        secret = "" if password is None else _text(password, "password")
        pair = f"{_text(username, 'username')}:{secret}".encode()
        self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return self

    def bearer_auth(self, token: Any) -> HttpRequest:
        self._headers["Authorization"] = f"Bearer {_text(token, 'token')}"
        return self

    def body(self, body: Any) -> HttpRequest:
        self._body = body if isinstance(body, bytes) else _text(body, "body").encode("utf-8")
        return self

    def form_url_encoded(self, params: Any) -> HttpRequest:
        from urllib.parse import urlencode

        if not isinstance(params, Mapping):
            raise ConfigError("kumo.http: request:form_url_encoded takes a table")
        fields = {_text(k, "form field"): _text(v, "form value") for k, v in params.items()}
        self._headers["Content-Type"] = "application/x-www-form-urlencoded"
        self._body = urlencode(fields).encode("ascii")
        return self

    def form_multipart_data(self, params: Any) -> HttpRequest:
        """Fields as a ``multipart/form-data`` body (:mod:`kumocore.http.form_data`)."""
        content_type, self._body = encode_form_data(params)
        self._headers["Content-Type"] = content_type
        return self

    def timeout(self, duration: Any) -> HttpRequest:
        self._timeout = _seconds(duration, "request:timeout")
        return self

    def aws_sign_v4(self, params: Any) -> HttpRequest:
        """``request:aws_sign_v4 { access_key, secret_key, region, service, ... }``: sign
        this request (AWS SigV4) and set its ``Authorization`` and ``X-Amz-*`` headers.
        The signing code belongs to the Lua policy plugin (``kumo.crypto.aws_sign_v4``),
        which installs it with :func:`set_aws_signer`."""
        if _aws_signer is None:
            raise ConfigError("kumo.http: request:aws_sign_v4 needs the Lua policy plugin")
        for name, value in _aws_signer(self._method, self._url, params).items():
            self._headers[name] = value
        return self

    async def send(self) -> HttpResponse:
        session = self._client.session()
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with session.request(
                self._method, self._url, headers=self._headers, data=self._body,
                timeout=timeout, allow_redirects=True,
            ) as response:
                body = await response.read()
                headers = {name.lower(): value for name, value in response.headers.items()}
                return HttpResponse(response.status, response.reason, headers, body,
                                    response.charset)
        except TimeoutError as exc:
            raise ConfigError(
                f"kumo.http: {self._method} {self._url} timed out after {self._timeout} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConfigError(f"kumo.http: {self._method} {self._url} failed: {exc}") from exc


# Lua may pass binary (non-UTF-8) field values: the Lua plugin's mark for methods taking
# byte strings (kumocore_lua_policy.byte_strings.BYTES_ATTR), set here as core cannot
# import it.
setattr(HttpRequest.form_multipart_data, "__kumo_bytes__", True)  # noqa: B010


#: ``(method, url, params) -> headers to set``: what ``request:aws_sign_v4`` calls.
AwsSigner = Callable[[str, str, Any], dict[str, str]]
_aws_signer: AwsSigner | None = None


def set_aws_signer(signer: AwsSigner) -> None:
    """Install the SigV4 signer of ``request:aws_sign_v4`` (done by the Lua policy
    plugin, which holds the SigV4 code and reads its key sources)."""
    global _aws_signer
    _aws_signer = signer


#: Pool closings started by a finalizer, referenced until done.
_closing: set[asyncio.Future[None]] = set()


def release_session(session: aiohttp.ClientSession) -> None:
    """Close the pooled connections of a client dropped without ``client:close()``."""
    if session.closed:
        return
    connector = session.connector
    if connector is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # Collected outside any loop (by a later synchronous caller's gc, or at exit): its
        # pool cannot be closed politely; detached, the session does not warn "unclosed"
        # (the connector closes what it still pools when it is collected).
        session.detach()
        return
    session.detach()  # no "Unclosed client session" warning: its pool is closed here
    task: asyncio.Future[None] = asyncio.ensure_future(connector.close(), loop=loop)
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class HttpClient:
    """What ``kumo.http.build_client`` returns."""

    __kumo_methods__ = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        for key in options:
            if key not in _CLIENT_OPTIONS:
                raise ConfigError(
                    f"kumo.http.build_client: unknown option {key!r}; "
                    f"expected one of {', '.join(_CLIENT_OPTIONS)}")
        self.user_agent = options.get("user_agent")
        self.timeout = _seconds(options.get("timeout", DEFAULT_TIMEOUT), "timeout")
        self.pool_idle = _seconds(options.get("pool_idle_timeout", 90), "pool_idle_timeout")
        self.verify = not bool(options.get("accept_invalid_certs", False))
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": str(self.user_agent)} if self.user_agent else None
            connector = aiohttp.TCPConnector(keepalive_timeout=self.pool_idle, ssl=self.verify)
            self._session = aiohttp.ClientSession(headers=headers, connector=connector)
            # Policies often build a client per request and never call client:close()
            # (KumoMTA's own examples do): free its pool when the client is collected.
            weakref.finalize(self, release_session, self._session)
        return self._session

    def get(self, url: Any) -> HttpRequest:
        return HttpRequest(self, "GET", _text(url, "URL"))

    def post(self, url: Any) -> HttpRequest:
        return HttpRequest(self, "POST", _text(url, "URL"))

    def put(self, url: Any) -> HttpRequest:
        return HttpRequest(self, "PUT", _text(url, "URL"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None



def make_http_client_functions() -> dict[str, Callable[..., Any]]:
    """The ``http.build_client`` entry of ``kumo_register_policy_functions``."""

    @policy_function(table=True)
    def build_client(**options: Any) -> HttpClient:
        """``kumo.http.build_client { user_agent = ..., timeout = '10s' }``."""
        return HttpClient(options)

    return {"http.build_client": build_client}
