"""``kumocore provider-summary``: kcli's view of a node's traffic by provider.

One row per provider (a ``provider_name`` the policy set, else the destination's MX site
name), or per provider and pool with ``--by-pool``: messages delivered (D), transiently
failed (T) and failed (F) since start, connections open now (C) and messages queued now,
scheduled and ready (Q). Rows are ordered by volume (D + T + F + Q), largest first, then
by name in natural order (``mx2`` before ``mx10``).

Like kcli it reads the provider metrics from the node's metrics (``/metrics.json``); with
``--show-domains`` a DOMAINS column lists, for a row named by a site, the destination
domains whose scheduled queues hold messages now and resolved to that site. kcli resolves
those domains' MX records itself; kumocore reads the sites the node found, which the queue
summary lists for each scheduled queue. The table is for people: as kcli warns of its own,
scripts should read the metrics.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kumocore.admin.kcli_table import count, natural_key, tabulate
from kumocore.mail.queue_name import parse_queue_name

__all__ = ["ProviderRow", "add_provider_summary_subcommand", "format_provider_summary",
           "provider_rows", "site_domains"]  # fmt: skip

#: (column, metric of the provider view, metric of the provider-and-pool view).
_COLUMNS = (
    ("delivered", "total_messages_delivered_by_provider",
     "total_messages_delivered_by_provider_and_source"),
    ("transfail", "total_messages_transfail_by_provider",
     "total_messages_transfail_by_provider_and_source"),
    ("fail", "total_messages_fail_by_provider", "total_messages_fail_by_provider_and_source"),
    ("connections", "connection_count_by_provider", "connection_count_by_provider_and_pool"),
    ("queued", "queued_count_by_provider", "queued_count_by_provider_and_pool"),
)  # fmt: skip


@dataclass
class ProviderRow:
    name: str
    pool: str | None = None
    delivered: int = 0
    transfail: int = 0
    fail: int = 0
    connections: int = 0
    queued: int = 0

    @property
    def volume(self) -> int:
        return self.delivered + self.transfail + self.fail + self.queued


def _samples(value: Any, labels: dict[str, str]) -> Iterator[tuple[dict[str, str], float]]:
    """The (labels, value) pairs of one ``/metrics.json`` value (nested by label name)."""
    if isinstance(value, int | float):
        yield labels, float(value)
        return
    if isinstance(value, Mapping):
        for label, by_value in value.items():
            if isinstance(by_value, Mapping):
                for label_value, inner in by_value.items():
                    yield from _samples(inner, {**labels, label: str(label_value)})


def provider_rows(metrics: Mapping[str, Any], *, by_pool: bool) -> list[ProviderRow]:
    """The rows from ``/metrics.json``, ordered by volume then natural name (and pool)."""
    rows: dict[tuple[str, str | None], ProviderRow] = {}
    for column, by_provider, by_provider_and_pool in _COLUMNS:
        family = metrics.get(by_provider_and_pool if by_pool else by_provider, {})
        for labels, value in _samples(family.get("value", {}), {}):
            name = labels.get("provider", "")
            pool = labels.get("pool", "") if by_pool else None
            row = rows.get((name, pool))
            if row is None:
                row = rows[(name, pool)] = ProviderRow(name, pool)
            setattr(row, column, getattr(row, column) + int(value))  # summed over sources
    return sorted(rows.values(), key=lambda r: (-r.volume, natural_key(r.name),
                                                natural_key(r.pool or "")))  # fmt: skip


def site_domains(summary: Mapping[str, Any]) -> dict[str, list[str]]:
    """Site name -> the sorted destination domains of the scheduled queues that hold
    messages now and whose site the node found (the queue summary's ``site``)."""
    domains: dict[str, set[str]] = {}
    for entry in summary.get("scheduled", []):
        site = entry.get("site")
        if site and entry.get("count"):
            parts = parse_queue_name(entry["name"])
            domains.setdefault(site, set()).add(parts.routing_domain or parts.domain)
    return {site: sorted(names) for site, names in domains.items()}


def format_provider_summary(
    rows: list[ProviderRow], *, by_pool: bool, limit: int | None = None,
    domains: Mapping[str, list[str]] | None = None,
) -> str:
    """The table, at most ``limit`` rows; a DOMAINS column when ``domains`` has any."""
    shown = rows if limit is None else rows[:limit]
    headers = ["PROVIDER", *(["POOL"] if by_pool else []), "D", "T", "F", "C", "Q"]
    with_domains = bool(domains)
    if with_domains:
        headers.append("DOMAINS")
    table = []
    for row in shown:
        cells = [row.name, *([row.pool or ""] if by_pool else []),
                 *(count(n) for n in (row.delivered, row.transfail, row.fail, row.connections,
                                      row.queued))]  # fmt: skip
        if with_domains:
            assert domains is not None
            cells.append(", ".join(domains.get(row.name, [])))
        table.append(cells)
    return "\n".join(tabulate(headers, table, right={"D", "T", "F", "C", "Q"}))


def _run(args: argparse.Namespace) -> int:
    from kumocore.admin.cli_client import check_limit, run

    check_limit("provider-summary", args.limit)
    rows = provider_rows(run(args, "GET", "/metrics.json"), by_pool=args.by_pool)
    domains = None
    if args.show_domains:
        from kumocore.admin.summary import MAX_LISTED

        # The most queues the summary lists: the domains of the busiest ones.
        summary = run(args, "GET", f"/api/admin/queue-summary/v1?limit={MAX_LISTED}")
        domains = site_domains(summary)
    print(format_provider_summary(rows, by_pool=args.by_pool, limit=args.limit,
                                  domains=domains))  # fmt: skip
    return 0


def add_provider_summary_subcommand(subparsers: Any) -> None:
    """Add ``provider-summary`` (kcli's name and options) to the admin CLI."""
    from kumocore.admin.cli_client import client_options, guarded

    parser = subparsers.add_parser(
        "provider-summary", help="traffic and queues by provider or destination site",
        description="One row per provider (the policy's provider_name, else the MX site): "
        "D delivered, T transiently failed, F failed since start; C connections and Q "
        "messages queued (scheduled and ready) now; largest volume first. For people, "
        "not scripts: they read /metrics. Example: kumocore provider-summary --by-pool")
    parser.add_argument("--by-pool", action="store_true",
                        help="a POOL column: one row per provider and egress pool")
    parser.add_argument("--show-domains", action="store_true",
                        help="a DOMAINS column: the domains with scheduled messages now "
                        "whose MX site names the row")  # fmt: skip
    parser.add_argument("--limit", type=int, help="at most this many rows")
    client_options(parser)
    parser.set_defaults(handler=guarded(_run))
