"""The ``site_name`` of an MX host set, computed exactly as KumoMTA's mailexchanger crate.

A site name identifies an egress *site*: every domain whose MX records resolve to the same
host set shares one ready queue and one set of connection/rate limits (e.g. the thousands of
Google Workspace domains all land on ``(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com``).
It must therefore be byte-identical to KumoMTA's so that shaping rules, TSA automation and
log consumers written for KumoMTA keep matching.

The algorithm factors each label *position* independently (TLD first), so it is a compact
label, not a true regex of the host set, and it depends on the order of ``hosts`` (KumoMTA
feeds it hosts sorted by preference, then by name). Newer KumoMTA releases replaced it with
an order-independent branch factoring; this module keeps the documented, widely deployed
per-position form.
"""

from __future__ import annotations

from collections.abc import Sequence

from kumocore.digits import decimal, port_number

#: Placeholder for "this host has no label at this position" while collecting columns.
_MISSING = "?"


def split_port(name: str) -> tuple[str, int | None]:
    """Split ``host:port`` into ``(host, port)``; ``(name, None)`` without a numeric port.

    Only a suffix of decimal digits after the *last* colon counts, and a name with more than
    one colon is an IPv6 address, not ``host:port``.
    """
    host, sep, port = name.rpartition(":")
    value = port_number(port)
    if not sep or ":" in host or value is None or not host:
        return name, None
    return host, value


def split_bracketed(text: str) -> tuple[str, int | None]:
    """Split ``[address]`` or ``[address]:port`` (``text`` starts with ``[``) into the
    address and the port (None without one); ``ValueError`` when anything but ``:`` and
    one to five ASCII digits follows the ``]``. The port's range is the caller's check."""
    inner, _, rest = text[1:].partition("]")
    port = decimal(rest[1:], max_digits=5) if rest.startswith(":") else None
    if rest and port is None:
        raise ValueError(f"{text!r}: expected '[address]' or '[address]:port'")
    return inner, port


def _labels(name: str) -> list[str] | None:
    """The reversed (TLD first) lower-case labels of ``name``, port glued to the TLD label.

    Returns None for names that are not valid host names (an empty label such as
    ``a..b``); KumoMTA silently leaves those out of the site name, and so do we.
    """
    host, port = split_port(name)
    host = host.lower().removesuffix(".")
    labels = host.split(".") if host else []
    if any(not label for label in labels):
        return None
    if port is not None and labels:
        labels[-1] = f"{labels[-1]}:{port}"
    labels.reverse()
    return labels


def _render(column: list[str]) -> str:
    """``a`` / ``(a|b)``, plus ``?`` when some host had no label at this position."""
    optional = _MISSING in column
    labels = [label for label in column if label != _MISSING]
    text = labels[0] if len(labels) == 1 else f"({'|'.join(labels)})"
    return f"{text}?" if optional else text


def factor_names(hosts: Sequence[str]) -> str:
    """Summarise ``hosts`` as KumoMTA's pseudo-regex ``site_name``.

    >>> factor_names(["mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net"])
    '(mta5|mta6).am0.yahoodns.net'
    >>> factor_names(["gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"])
    'alt1?.gmail-smtp-in.l.google.com'
    >>> factor_names(["."])  # null MX: no labels at all
    ''
    """
    split = [labels for labels in map(_labels, hosts) if labels is not None]
    width = max((len(labels) for labels in split), default=0)
    # One column per label position (0 = TLD); each keeps distinct labels in first-seen
    # order, which is what makes the result depend on the preference order of ``hosts``.
    columns: list[list[str]] = [[] for _ in range(width)]
    for labels in split:
        for position, column in enumerate(columns):
            label = labels[position] if position < len(labels) else _MISSING
            if label not in column:
                column.append(label)
    return ".".join(_render(column) for column in reversed(columns))
