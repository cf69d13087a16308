"""The reliability bench's sizes (:data:`MODES`) and shared state (:class:`Bench`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.reliability import abuse
from bench.reliability.crash import KumoServer, ServerSpec, World


@dataclass(frozen=True)
class Mode:
    crash_rounds: int
    crash_workers: int
    fuzz_sessions: int
    http_examples: int
    idle_connections: int
    partial_data_connections: int
    load_seconds: float


MODES = {
    "short": Mode(crash_rounds=20, crash_workers=8, fuzz_sessions=300, http_examples=20,
                  idle_connections=1000, partial_data_connections=50, load_seconds=3),
    "full": Mode(crash_rounds=50, crash_workers=16, fuzz_sessions=3000, http_examples=100,
                 idle_connections=10_000, partial_data_connections=300, load_seconds=10),
}  # fmt: skip


@dataclass
class Bench:
    mode: Mode
    world: World
    workdir: Path
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)
    servers: list[KumoServer] = field(default_factory=list)
    tags: int = 0
    hostile_cases: list[tuple[str, str, bool]] = field(default_factory=list)

    def server(self, **options: Any) -> KumoServer:
        spec = ServerSpec(dns=self.world.dns.address, sink_port=self.world.sink.port, **options)
        server = KumoServer(spec, tempfile.mkdtemp(dir=self.workdir))
        self.servers.append(server)
        return server.start()

    def tag(self, prefix: str) -> str:
        self.tags += 1
        return f"{prefix}{self.tags}"

    def problem(self, section: str, text: str) -> None:
        self.problems.append(f"[{section}] {text}")

    def hostile(self, section: str, case: str, held: bool, detail: str = "") -> bool:
        """Record one hostile case (an attack tried against a server) and whether it held.

        A case that did not hold is also a problem, with ``detail`` saying what was seen.
        """
        self.hostile_cases.append((section, case, held))
        if not held:
            self.problem(section, f"hostile case not held: {case}: {detail}")
        return held

    def probe_ok(self, server: KumoServer, section: str, what: str) -> bool:
        try:
            reply = abuse.probe(server.port, f"ok.{self.tag('probe')}@crash.test")
        except (OSError, ConnectionError, abuse.ProtocolViolation) as exc:
            self.problem(section, f"probe after {what} failed: {exc}")
            return False
        if reply.code != 250:
            self.problem(section, f"probe after {what} got {reply}")
            return False
        return True

    def delivered(self, recipients: list[str], timeout: float) -> list[str]:
        """The recipients not delivered at the sink within ``timeout`` seconds."""
        sink = self.world.sink
        abuse.wait_until(lambda: not sink.undelivered(recipients), timeout, 0.2)
        return sink.undelivered(recipients)

    def stop_servers(self) -> None:
        for server in self.servers:
            server.kill()
        self.servers.clear()


def say(text: str) -> None:
    print(text, flush=True)
