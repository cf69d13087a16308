"""The queue machine: scheduled queues, egress source selection, ready queues, dispatch."""

from __future__ import annotations
