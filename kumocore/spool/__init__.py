"""Spools: the contract and the in-memory implementation."""

from __future__ import annotations

from kumocore.spool.base import MemorySpool, Spool, SpoolFactory

__all__ = ["MemorySpool", "Spool", "SpoolFactory"]
