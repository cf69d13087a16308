"""A running kumocore node for tests: policy, spool, listeners, logs, SMTP sink and DNS.

A :class:`Node` is what ``kumocore serve`` runs — a :class:`kumocore.node.runtime.Runtime`
loaded with a policy and started by :class:`kumocore.node.server.Server` — plus three test
parts around it:

* a :class:`~kumocore.testing.dns.TestDnsServer` the node resolves through, serving the
  given ``zones`` and, unless ``sink=False``, answering every other name with an MX that
  points at 127.0.0.1, so all mail goes to
* a :class:`~kumocore.testing.smtp_sink.RecordingSink` on 127.0.0.1 (the node's default
  egress path connects to its port and allows loopback), and
* a :class:`~kumocore.testing.logs.RecordingLogSink` holding every log record.

The node adds an ESMTP and an HTTP listener on 127.0.0.1 (free ports) in ``pre_init``;
the policy's own ``init`` runs afterwards and may add more. What a test then does with it
(``send``, ``inject``, ``admin``, ``wait_for``...) is :mod:`kumocore.testing.node_client`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from kumocore.hookspecs import hookimpl
from kumocore.testing.logs import RecordingLogSink
from kumocore.testing.node_client import NodeClient

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.node.runtime import Runtime
    from kumocore.node.server import Server
    from kumocore.testing.dns import TestDnsServer
    from kumocore.testing.smtp_sink import RecordingSink

SINK_HOST = "sink.kumocore.test"
HOSTNAME = "node.kumocore.test"
Spool = Literal["memory", "rocksdb"]
_DEFAULTS: Mapping[str, Any] = MappingProxyType({})  # a listener with default options


class NodePlugin:
    """The node's own plugin: name server, spools, listeners, log sink and the default
    egress path to the sink. Registered before the policy, so the policy overrides it."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @hookimpl
    def kumo_register_log_sinks(self) -> list[RecordingLogSink]:
        return [self.node.log_sink]

    @hookimpl
    def kumo_pre_init(self, kumo: Any) -> None:
        node = self.node
        kumo.dns.configure_resolver(name_servers=[node.dns.address])
        if node.spool == "rocksdb":
            for name in ("data", "meta"):
                kumo.define_spool(name=name, path=str(node.tmp_path / "spool" / name),
                                  kind="RocksDB")
        if node.esmtp is not None:
            kumo.start_esmtp_listener(**{"listen": "127.0.0.1:0", "hostname": node.hostname,
                                         **node.esmtp})
        if node.http is not None:
            kumo.start_http_listener(**{"listen": "127.0.0.1:0", "hostname": node.hostname,
                                        **node.http})

    @hookimpl
    def kumo_get_egress_path_config(self) -> EgressPathConfig | None:
        if self.node.sink is None:
            return None  # the core's defaults
        from kumocore.config import EgressPathConfig

        return EgressPathConfig.from_options({
            "smtp_port": self.node.sink.port,
            "prohibited_hosts": [],  # the sink is on loopback
            "idle_timeout": 0.2,  # let connections go quickly, so stop() is quick
        })


class Node(NodeClient):
    """A kumocore node on loopback. Use ``async with Node(...) as node`` (or
    :meth:`start`/:meth:`stop`), or the ``make_node`` pytest fixture.

    ``policy``: a path (``Path``, or a ``str`` naming an existing ``.lua``/``.py`` file) or
    policy source text (Lua, unless ``language="python"``). ``plugins``: objects with
    ``@hookimpl`` methods (or ``(name, object)`` pairs), registered in order before
    ``policy`` is loaded, so the later ones go first (a Python policy without a file).
    ``zones``: DNS zones as :class:`TestDnsServer` takes them.
    ``spool``: ``"memory"`` or ``"rocksdb"`` (in ``tmp_path``; needs the RocksDB plugin).
    ``sink``: ``False`` for no sink (mail goes where DNS says), or a started
    :class:`RecordingSink` of the test's own (e.g. one offering STARTTLS). ``dns``: a
    started :class:`TestDnsServer` of the test's own to resolve through instead (``zones``
    then go unused and no name is routed to the sink by the node).
    ``esmtp``/``http``: extra listener options (``listen=False``: no listeners at all).
    ``entrypoints``: load installed plugins (default: as ``kumocore serve`` does).
    """

    def __init__(
        self,
        policy: str | Path | None = None,
        *,
        language: Literal["lua", "python"] = "lua",
        plugins: Iterable[object | tuple[str, object]] = (),
        zones: Mapping[str, Mapping[str, Any]] | None = None,
        sink: bool | RecordingSink = True,
        dns: TestDnsServer | None = None,
        spool: Spool = "memory",
        esmtp: Mapping[str, Any] | None = _DEFAULTS,
        http: Mapping[str, Any] | None = _DEFAULTS,
        listen: bool = True,
        entrypoints: bool | None = None,
        hostname: str = HOSTNAME,
        tmp_path: Path | None = None,
    ) -> None:
        if spool not in ("memory", "rocksdb"):
            raise ValueError(f"spool must be 'memory' or 'rocksdb', not {spool!r}")
        self.policy, self.language = policy, language
        self.plugins = tuple(plugins)
        self.zones = dict(zones or {})
        self.spool: Spool = spool
        self.esmtp = dict(esmtp) if listen and esmtp is not None else None
        self.http = dict(http) if listen and http is not None else None
        self.entrypoints, self.hostname = entrypoints, hostname
        self._own_tmp = tmp_path is None
        self.tmp_path = Path(tempfile.mkdtemp(prefix="kumocore-node-")) if tmp_path is None \
            else tmp_path
        self.log_sink = RecordingLogSink()
        self._want_sink = sink is not False
        # Parts the test passed in are the test's to stop; the node stops what it started.
        self._given = [part for part in (sink, dns) if part is not True and part]
        self.sink: RecordingSink | None = None if isinstance(sink, bool) else sink
        self._dns: TestDnsServer | None = dns
        self._server: Server | None = None
        self._stopped: Server | None = None
        self._running = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> Node:
        """Start the DNS server and sink, load the policy, start the server."""
        from kumocore.node.runtime import Runtime
        from kumocore.node.server import Server
        from kumocore.testing.dns import TestDnsServer
        from kumocore.testing.smtp_sink import RecordingSink

        zones = dict(self.zones)
        if self._want_sink:
            if self.sink is None:
                self.sink = await RecordingSink().start()
            zones.setdefault("*", {"MX": [(10, SINK_HOST)]})
            zones.setdefault(SINK_HOST, {"A": ["127.0.0.1"]})
        if self._dns is None:
            self._dns = TestDnsServer(zones).start()
        extra: list[tuple[str, object]] = [("kumocore.testing", NodePlugin(self))]
        for i, plugin in enumerate(self.plugins):
            if isinstance(plugin, tuple):
                extra.append(plugin)
            else:
                extra.append((f"policy-object-{i}", plugin))
        try:
            runtime = Runtime(load_entrypoints=self.entrypoints, extra_plugins=tuple(extra),
                              hostname=self.hostname)
            policy_file = self._policy_file()
            if policy_file is None:
                await runtime.run_init()
            else:
                await runtime.load(policy_file)
            self._server = Server(runtime)
            await self._server.start()
            self._running = True
        except BaseException:
            await self.stop()
            raise
        return self

    def _policy_file(self) -> Path | None:
        policy = self.policy
        if policy is None:
            return None
        if isinstance(policy, Path):
            return policy
        if "\n" not in policy and policy.endswith((".lua", ".py")) and Path(policy).is_file():
            return Path(policy)
        suffix = ".py" if self.language == "python" else ".lua"
        path = self.tmp_path / f"policy{suffix}"
        path.write_text(policy)
        return path

    async def stop(self, timeout: float = 3.0) -> None:
        """Stop the server (it flushes logs), then the sink and the DNS server. Stopping
        twice is harmless; :attr:`runtime` stays readable afterwards."""
        server, self._running = self._server, False
        if server is not None and server is not self._stopped:
            self._stopped = server  # stays readable (e.g. what is still spooled)
            await server.stop(timeout)
        if self.sink is not None and self.sink not in self._given:
            await self.sink.stop()
        if self._dns is not None and self._dns not in self._given:
            self._dns.stop()
        if self._own_tmp:
            shutil.rmtree(self.tmp_path, ignore_errors=True)

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ parts
    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the node is not started")
        return self._server

    @property
    def runtime(self) -> Runtime:
        """The node's runtime, for white-box tests of kumocore itself."""
        return self.server.runtime

    @property
    def dns(self) -> TestDnsServer:
        if self._dns is None:
            raise RuntimeError("the node is not started")
        return self._dns

    def _listener(self, kind: str) -> tuple[str, int]:
        if not self._running:
            raise RuntimeError("the node is not running")
        for listener in self.server.listeners:
            if type(listener).__name__ == kind:
                return listener.address[:2]
        raise RuntimeError(f"the node has no {kind} (esmtp=None/http=None or listen=False?)")

    @property
    def smtp_port(self) -> int:
        """The port of the first ESMTP listener (on 127.0.0.1)."""
        return self._listener("EsmtpListener")[1]

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the first HTTP listener."""
        host, port = self._listener("HttpListener")
        return f"http://{host}:{port}"


async def start_node(policy: str | Path | None = None, **options: Any) -> Node:
    """``Node(policy, **options)``, started."""
    return await Node(policy, **options).start()
