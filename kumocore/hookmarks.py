"""The pluggy markers of kumocore's hook contract (:mod:`kumocore.hookspecs`).

A leaf, so that the modules declaring hooks (``hookspecs``, ``hookspecs_providers``) share
one project name and one pair of markers without importing each other in a circle.
Plugins import ``hookimpl`` from :mod:`kumocore` (or :mod:`kumocore.hookspecs`).
"""

from __future__ import annotations

import pluggy

PROJECT = "kumocore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]
