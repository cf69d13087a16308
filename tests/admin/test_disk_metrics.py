"""KumoMTA's free-space gauges (``disk_free_bytes``, ``disk_free_percent``,
``disk_free_inodes``, ``disk_free_inodes_percent``, label ``name``) for the spools of a real
node, against what the file system reports to ``shutil.disk_usage``."""

from __future__ import annotations

import shutil

from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import scrape, series


async def test_free_space_under_each_spool_is_reported_as_kumomta_names_it(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    values = await scrape(node)
    for spool in ("data", "meta"):
        path = node.runtime.config.spools[spool].path
        usage = shutil.disk_usage(path)
        label = (f"{spool} spool",)
        assert abs(series(values, "disk_free_bytes")[label] - usage.free) < 64 << 20, spool
        percent = usage.free * 100 // usage.total
        assert abs(series(values, "disk_free_percent")[label] - percent) <= 1
        assert 0 <= series(values, "disk_free_inodes_percent")[label] <= 100
        assert series(values, "disk_free_inodes")[label] > 0
