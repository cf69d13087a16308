"""A private Haraka instance, the scripting-language peer of the benchmark.

Haraka (npm package ``Haraka``, with ``haraka-plugin-dkim``) is installed by
``scripts/setup.sh`` into ``bench/peers/node_modules`` (``npm ci --prefix bench/peers``,
versions pinned by ``bench/peers/package-lock.json``); nothing is downloaded at run time.

Each instance lives in a temp dir (``haraka -c <dir>``): ``config/`` written here,
``queue/`` (Haraka's outbound disk queue: every accepted message is written to a queue
file with an fsync before the ``250``), ``plugins/bench_route.js`` (routes deliveries to
the sink) and ``haraka.log``. Settings:

* cluster mode, one Node.js process per core (``nodes``), listening on 127.0.0.1;
* ``relay`` with an ACL for 127.0.0.0/8, so mail from the load generator is relayed
  through Haraka's outbound queue (no inbound checks: no DNS, SPF or DNSBL plugins);
* ``outbound.ini``: no TLS, ``concurrency_max`` = the node's share of the 20 connections
  Postfix and kumocore open to the sink;
* with a key: ``dkim`` signs every message (RSA 2048, relaxed/relaxed, the same five
  headers as kumocore and OpenDKIM); inbound verification off, as on the other sides;
* logs at ``notice`` (Haraka's ``info`` writes several lines per SMTP command to stdout).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.perf.child import ChildProcess
from bench.perf.load import SENDER_DOMAIN, LoadError, wait_for_port

PEERS = Path(__file__).resolve().parents[1] / "peers"
HARAKA_BIN = PEERS / "node_modules" / "Haraka" / "bin" / "haraka"
ROUTE_PLUGIN = PEERS / "haraka" / "bench_route.js"
SIGNED_HEADERS = "From, To, Subject, Date, Message-ID"


def haraka_missing() -> str | None:
    """Why Haraka cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/setup.sh installs Haraka with npm)"
    if not HARAKA_BIN.exists():
        return f"{HARAKA_BIN} is missing (scripts/setup.sh: npm ci --prefix bench/peers)"
    if not (PEERS / "node_modules" / "haraka-plugin-dkim").exists():
        return "haraka-plugin-dkim is missing (scripts/setup.sh: npm ci --prefix bench/peers)"
    return None


def haraka_version() -> str:
    try:
        import json

        return str(json.loads((HARAKA_BIN.parent.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


class HarakaInstance(ChildProcess):
    """One Haraka relaying ``dest.example`` to the sink and ``sample_domain`` to a capture
    server, optionally DKIM-signing with ``dkim_key`` (selector ``bench``)."""

    def __init__(
        self,
        root: Path,
        *,
        smtpd_port: int,
        relay_port: int,
        sample_port: int,
        sample_domain: str,
        dkim_key: Path | None = None,
        nodes: int = 2,
        connections: int = 20,
    ) -> None:
        # cluster mode: the master's workers share its process group and die with it
        super().__init__("haraka", root / "haraka.log", stop_timeout=15, process_group=True)
        self.root = root
        self.config = root / "config"
        self.queue = root / "queue"
        self.smtpd_port = smtpd_port
        self.relay_port = relay_port
        self.sample_port = sample_port
        self.sample_domain = sample_domain
        self.dkim_key = dkim_key
        self.nodes = nodes
        self.connections = connections

    def write_config(self) -> None:
        (self.root / "plugins").mkdir(parents=True, exist_ok=True)
        # Haraka's own defaults first (as ``haraka -i`` does): connection.ini and friends.
        shutil.copytree(HARAKA_BIN.parent.parent / "config", self.config, dirs_exist_ok=True)
        shutil.copyfile(ROUTE_PLUGIN, self.root / "plugins" / "bench_route.js")
        plugins = ["relay", "bench_route"] + (["dkim"] if self.dkim_key else [])
        per_node = max(self.connections // self.nodes, 1)
        files = {
            "plugins": "\n".join(plugins) + "\n",
            "me": "haraka.bench.example\n",
            "smtp.ini": (
                f"[main]\nlisten=127.0.0.1:{self.smtpd_port}\nnodes={self.nodes}\n"
                "force_shutdown_timeout=5\n"
            ),
            "log.ini": "[main]\nlevel=notice\ntimestamps=true\nformat=default\n",
            "relay.ini": "[relay]\nacl=true\n",
            "relay_acl_allow": "127.0.0.0/8\n",
            "outbound.ini": (
                f"[main]\nenable_tls=false\nconcurrency_max={per_node}\n"
                "received_header=Haraka outbound\n"
            ),
            "bench_route.ini": (
                f"[main]\nsink_port={self.relay_port}\nsample_port={self.sample_port}\n"
                f"sample_domain={self.sample_domain}\n"
            ),
        }
        if self.dkim_key:
            files["dkim.ini"] = (
                f"[main]\n\n[sign]\nenabled=true\nheaders={SIGNED_HEADERS}\n\n"
                "[canon]\nbody=relaxed\n\n[verify]\nenabled=false\n"
            )
            keys = self.config / "dkim" / SENDER_DOMAIN
            keys.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.dkim_key, keys / "private")
            (keys / "selector").write_text("bench\n")
        for name, text in files.items():
            (self.config / name).write_text(text)

    def start(self, timeout: float = 60) -> HarakaInstance:
        missing = haraka_missing()
        if missing:
            raise LoadError(f"haraka: {missing}")
        self.write_config()
        self.launch(
            ["node", str(HARAKA_BIN), "-c", str(self.root)],
            lambda: wait_for_port("127.0.0.1", self.smtpd_port, timeout, alive=self.alive),
            cwd=self.root,
        )
        return self

    def errors_logged(self) -> list[str]:
        lines = self.log_text().splitlines()
        return [line[:300] for line in lines if "[ERROR]" in line or "[CRIT]" in line]
