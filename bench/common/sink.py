"""The recording SMTP sink now ships with kumocore (``kumocore.testing.smtp_sink``);
re-exported here for the tests and benchmarks that import it from its old place."""

from kumocore.testing.smtp_sink import Received, RecordingSink, SinkState, _Handler, _SinkSMTP

__all__ = ["Received", "RecordingSink", "SinkState", "_Handler", "_SinkSMTP"]
