"""The file-backed part of this process's RSS: what a memory-mapped spool's reads cost."""

from __future__ import annotations


def rss_file_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")
