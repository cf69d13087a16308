"""The Prometheus text format 0.0.4 and kumocore's ``/metrics.json``, written from
collected families (:mod:`kumocore.admin.metrics`).

prometheus_client's text encoder would rename a counter ``x`` to ``x_total``, so the text
is written here from the families, sample names exactly as collected. Both are written a
family (or a sample) at a time, so that :mod:`kumocore.admin.scrape` can let the event
loop run in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "family_lines", "format_sample_line", "go_float", "help_line",
           "json_samples", "render_json", "render_text", "type_line"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# prometheus_client leaves this untyped; the annotation keeps mypy --strict satisfied.
_go_float: Callable[[float], str] = floatToGoString
_TYPE_NAMES = {
    "unknown": "untyped",
    "info": "gauge",
    "stateset": "gauge",
    "gaugehistogram": "histogram",
}


def _escape(value: str, *, quote: bool = True) -> str:
    # HELP text escapes backslash and newline; label values also escape the double quote.
    value = value.replace("\\", r"\\").replace("\n", r"\n")
    return value.replace('"', r"\"") if quote else value


def _exposed_name(metric: Metric) -> str:
    # prometheus_client's own counters name the family "x" and the samples "x_total";
    # ours name both "x". Announce the name the samples actually carry.
    total = metric.name + "_total"
    if metric.type == "counter" and any(s.name == total for s in metric.samples):
        return total
    return metric.name


def go_float(value: float) -> str:
    """A sample value as Prometheus' text format writes it (``30.0``, ``+Inf``)."""
    return _go_float(value)


def help_line(name: str, documentation: str) -> str:
    return f"# HELP {name} {_escape(documentation, quote=False)}\n"


def type_line(name: str, kind: str) -> str:
    return f"# TYPE {name} {_TYPE_NAMES.get(kind, kind)}\n"


def format_sample_line(name: str, labels: Mapping[str, str], value: float) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{text}}} {_go_float(value)}\n" if text else f"{name} {_go_float(value)}\n"


def family_lines(metric: Metric) -> Iterator[str]:
    """One family in the text format: its HELP and TYPE lines, then a line per sample."""
    name = _exposed_name(metric)
    yield help_line(name, metric.documentation)
    yield type_line(name, metric.type)
    for sample in metric.samples:
        if sample.name == metric.name + "_created":
            continue  # OpenMetrics-only series; the 0.0.4 format has no place for it
        yield format_sample_line(sample.name, sample.labels, sample.value)


def render_text(registry: CollectorRegistry) -> bytes:
    """Prometheus text exposition format 0.0.4, sample names exactly as collected."""
    return "".join(line for metric in registry.collect()
                   for line in family_lines(metric)).encode("utf-8")  # fmt: skip


def json_samples(result: dict[str, Any], metric: Metric) -> Iterator[None]:
    """Add ``metric``'s samples to a ``/metrics.json`` answer (:func:`render_json`),
    yielding after each."""
    for sample in metric.samples:
        entry = result.setdefault(
            sample.name,
            {
                "type": _TYPE_NAMES.get(metric.type, metric.type),
                "help": metric.documentation,
                "value": {},
            },
        )
        if not sample.labels:
            entry["value"] = sample.value
        else:
            node = entry["value"]
            items = sorted(sample.labels.items())
            for key, label_value in items[:-1]:
                node = node.setdefault(key, {}).setdefault(label_value, {})
            node.setdefault(items[-1][0], {})[items[-1][1]] = sample.value
        yield None


def render_json(registry: CollectorRegistry) -> dict[str, Any]:
    """``/metrics.json``: ``{name: {"type", "help", "value"}}``.

    ``value`` is a number for an unlabelled metric, else ``{label: {label_value: number}}``
    (multi-label families nest in label-name order: ``{label: {value: {label2: ...}}}``).
    """
    result: dict[str, Any] = {}
    for metric in registry.collect():
        for _ in json_samples(result, metric):
            pass
    return result
