"""The test DNS server now ships with kumocore (``kumocore.testing.dns``); re-exported here
for the tests and benchmarks that import it from its old place."""

from kumocore.testing.dns import TestDnsServer, Zones, add_dkim_txt, reference_zones

__all__ = ["TestDnsServer", "Zones", "add_dkim_txt", "reference_zones"]
