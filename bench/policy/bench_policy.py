"""The benchmark's kumocore policy: what a production relay would run, pointed at a sink.

* two spools, synced before every 250: ``data`` (bodies) and ``meta`` (envelopes) of
  kind ``LMDB`` at one path, so that one transaction writes both, as kumocore
  recommends (docs/operations.md; ``KUMOCORE_BENCH_META_KIND=RocksDB`` keeps envelopes
  in RocksDB, and ``KUMOCORE_BENCH_DATA_KIND=RocksDB`` bodies too, KumoMTA's kind);
* local logs (zstd JSON lines) for every record;
* every message DKIM-signed (RSA 2048, relaxed/relaxed, From To Subject Date Message-ID);
* one egress source in one egress pool, used by every queue;
* the test domain's MX is found through DNS (``KUMOCORE_BENCH_DNS``, a test DNS server
  the benchmark runs on loopback) and reached on ``smtp_port`` = the sink's port, with
  ``prohibited_hosts = {}`` because that MX is 127.0.0.1;
* mail for ``capture.example`` goes to the harness's capture server
  (``KUMOCORE_BENCH_SAMPLE_PORT``), which checks signing and queueing on one sample;
* ``connection_limit`` = Postfix's ``smtp_destination_concurrency_limit`` in the same run.

Everything variable comes from ``KUMOCORE_BENCH_*`` environment variables set by
:mod:`bench.perf.kumocore_side`; the file is copied into the run's temp dir and served from
there (``kumocore serve --policy <tmp>/bench_policy.py``).
"""

from __future__ import annotations

import os
from typing import Any

from kumocore import hookimpl

ENV = os.environ
VAR = ENV.get("KUMOCORE_BENCH_VAR", "/tmp/kumocore-bench")
SMTP_LISTEN = ENV.get("KUMOCORE_BENCH_SMTP", "127.0.0.1:2025")
HTTP_LISTEN = ENV.get("KUMOCORE_BENCH_HTTP", "")
DNS = ENV.get("KUMOCORE_BENCH_DNS", "")
SINK_PORT = int(ENV.get("KUMOCORE_BENCH_SINK_PORT", "25"))
# The harness's sample check (bench/perf/sample.py): mail for this domain goes to its
# capture server.
SAMPLE_DOMAIN = "capture.example"
SAMPLE_PORT = int(ENV.get("KUMOCORE_BENCH_SAMPLE_PORT", "0") or 0)
CONNECTIONS = int(ENV.get("KUMOCORE_BENCH_CONNECTIONS", "20"))
DKIM_KEY = ENV.get("KUMOCORE_BENCH_DKIM_KEY", "")
SIGNING_DOMAIN = ENV.get("KUMOCORE_BENCH_SIGNING_DOMAIN", "bench.example")
LOCAL_LOGS = ENV.get("KUMOCORE_BENCH_LOCAL_LOGS", "1") == "1"
DATA_KIND = ENV.get("KUMOCORE_BENCH_DATA_KIND", "LMDB")
META_KIND = ENV.get("KUMOCORE_BENCH_META_KIND", "LMDB")
#: LMDB envelopes share the LMDB bodies' path, hence their environment and transactions.
META_PATH = f"{VAR}/spool/{'data' if META_KIND == DATA_KIND == 'LMDB' else 'meta'}"

_kumo: Any = None


@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    if DNS:
        kumo.dns.configure_resolver(name_servers=[DNS])
    kumo.define_spool(name="data", path=f"{VAR}/spool/data", kind=DATA_KIND)
    kumo.define_spool(name="meta", path=META_PATH, kind=META_KIND)
    if LOCAL_LOGS:
        kumo.configure_local_logs(log_dir=f"{VAR}/logs", max_segment_duration="10s")
    kumo.start_esmtp_listener(
        listen=SMTP_LISTEN, hostname="kumocore.bench.example", relay_hosts=["127.0.0.0/8"]
    )
    if HTTP_LISTEN:
        kumo.start_http_listener(listen=HTTP_LISTEN, trusted_hosts=["127.0.0.0/8"])
    kumo.define_egress_source(
        name="ip-1", source_address="127.0.0.1", ehlo_domain="mta1.bench.example"
    )
    kumo.define_egress_pool(name="pool-1", entries=[{"name": "ip-1"}])


@hookimpl
def kumo_get_queue_config(
    domain: str, tenant: str | None, campaign: str | None, routing_domain: str | None
) -> Any:
    return _kumo.make_queue_config(egress_pool="pool-1", retry_interval="1m", max_age="1 day")


@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    return _kumo.make_egress_path(
        connection_limit=CONNECTIONS,
        smtp_port=SAMPLE_PORT if domain == SAMPLE_DOMAIN and SAMPLE_PORT else SINK_PORT,
        prohibited_hosts=[],
        max_deliveries_per_connection=1000,
    )


def _sign(message: Any) -> None:
    if not DKIM_KEY:
        return
    signer = _kumo.dkim.rsa_sha256_signer(
        domain=SIGNING_DOMAIN,
        selector="bench",
        headers=["From", "To", "Subject", "Date", "Message-ID"],
        key=DKIM_KEY,
    )
    message.dkim_sign(signer)


@hookimpl
def kumo_smtp_server_message_received(message: Any) -> None:
    message.set_meta("tenant", "bench")
    _sign(message)  # signing comes last


@hookimpl
def kumo_http_message_generated(message: Any) -> None:
    message.set_meta("tenant", "bench")
    _sign(message)
