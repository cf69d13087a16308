"""Reading a node's ``/metrics`` text in tests: every sample by (name, sorted labels), and
one family's series by their label values (in label-name order); :func:`scrape` reads a
running node's, :func:`scrape_after_delivering` once it relayed a message."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kumocore.testing.node import SINK_HOST

__all__ = ["SINK_PATH_SERVICE", "Samples", "samples", "scrape", "scrape_after_delivering",
           "series"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

#: The ``service`` label of a test node's one egress path (to its recording sink).
SINK_PATH_SERVICE = f"smtp_client:unspecified->{SINK_HOST}@smtp_client"


def samples(text: str) -> Samples:
    """Every sample of ``text``; a counter's under its family name (no ``_total``)."""
    return {
        (sample.name.removesuffix("_total") if family.type == "counter" else sample.name,
         tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(values: Samples, name: str) -> dict[tuple[str, ...], float]:
    """The series of family ``name``, keyed by their label values in label-name order."""
    return {tuple(v for _, v in labels): value for (n, labels), value in values.items()
            if n == name}


async def scrape(node: Any) -> Samples:
    """Every sample of ``node``'s ``/metrics`` now (a :class:`kumocore.testing.node.Node`)."""
    return samples((await node.admin("GET", "/metrics"))[1])


async def scrape_after_delivering(node: Any, recipients: list[str]) -> Samples:
    """Send ``node`` one message for ``recipients``, wait until each one's ``Delivery``
    record is written, then :func:`scrape`."""
    assert await node.send(recipients=recipients) == {}
    await node.wait_for("Delivery", count=len(recipients))
    return await scrape(node)
