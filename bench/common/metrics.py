"""Reading a running server's ``/metrics`` (Prometheus text) from the benches."""

from __future__ import annotations

import urllib.request

__all__ = ["metric_samples"]


def metric_samples(http_port: int, name: str, labels: str | None = None) -> list[float]:
    """The values of ``name`` in the ``/metrics`` of the server on ``http_port``: the
    samples labelled exactly ``labels`` (e.g. ``'sink="slow"'``), or every sample of
    ``name`` when ``labels`` is None. Raises ``OSError`` when the server cannot be read."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values = []
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        sample_name, brace, rest = series.partition("{")
        if sample_name != name or line.startswith("#"):
            continue
        if labels is None or (brace and rest.removesuffix("}") == labels):
            values.append(float(value))
    return values
