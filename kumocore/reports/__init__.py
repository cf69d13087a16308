"""Parsers for the reports that come back to a sender: DSN bounces and ARF complaints.

* :func:`parse_rfc3464` — RFC 3464 delivery status notifications (out-of-band bounces);
* :func:`parse_rfc5965` — RFC 5965 ARF feedback reports, as KumoMTA's ``feedback_report``;
* :func:`kumocore.reports.trim.trim_report` — a received report cut to the bounded parts
  its records need, before either parser sees it.

Both return None for a message that is not such a report and raise :class:`ReportError`
for one that claims to be but is malformed.

Owns reading and writing report formats. It does not own when a report is recognised on
reception (:mod:`kumocore.reception.smtp.reports`) or how it is logged
(:mod:`kumocore.logs.journal`).
"""

from __future__ import annotations

from kumocore.reports.report_fields import RemoteMta, ReportError
from kumocore.reports.rfc3464 import (
    DeliveryStatusReport,
    DiagnosticCode,
    Recipient,
    RecipientStatus,
    ReportStatus,
    parse_rfc3464,
)
from kumocore.reports.rfc5965 import parse_rfc5965

__all__ = [
    "DeliveryStatusReport",
    "DiagnosticCode",
    "Recipient",
    "RecipientStatus",
    "RemoteMta",
    "ReportError",
    "ReportStatus",
    "parse_rfc3464",
    "parse_rfc5965",
]
