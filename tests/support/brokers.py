"""Real message brokers on loopback for the log-hook tests: RabbitMQ and nats-server
(Debian packages ``rabbitmq-server`` and ``nats-server``), each with its data in a temp
directory and on free ports; stopped (by pid) when the test ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.common.ports import free_port as free_port

RABBITMQ = "/usr/lib/rabbitmq/bin/rabbitmq-server"
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"broker exited:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"broker did not listen on {port}:\n{log.read_text()[-3000:]}")


class Broker:
    """A broker child process in its own session, listening on ``port``."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port, self.log = port, log
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait(self, timeout: float) -> Broker:
        _wait_port(self.port, self.process, self.log, timeout)
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def available(program: str) -> bool:
    return Path(program).exists()


def start_nats(tmp: Path, port: int | None = None) -> Broker:
    """nats-server with JetStream (stream storage under ``tmp``)."""
    port = port or free_port()
    argv = [NATS, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "nats")]
    return Broker(argv, dict(os.environ), port, tmp / "nats.log").wait(20)


def start_rabbitmq(tmp: Path, port: int | None = None) -> Broker:
    """A RabbitMQ node of its own (name, ports, data and cookie under ``tmp``)."""
    port = port or free_port()
    home = tmp / "rabbit-home"
    home.mkdir(parents=True, exist_ok=True)
    conf = tmp / "rabbitmq"
    conf.write_text("loopback_users = none\n")  # rabbitmq.conf (the suffix is implied)
    env = {
        **os.environ, "HOME": str(home),
        "RABBITMQ_NODENAME": f"kumotest{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(tmp / "mnesia"), "RABBITMQ_LOG_BASE": str(tmp / "rlog"),
        "RABBITMQ_CONFIG_FILE": str(conf),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(tmp / "rabbit.pid"),
        "RABBITMQ_LOGS": "-",
    }
    (tmp / "enabled_plugins").write_text("[].\n")
    return Broker([RABBITMQ], env, port, tmp / "rabbitmq.log").wait(90)
