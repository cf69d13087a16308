"""The admin side of kumocore: the ``/api/admin/*`` HTTP API, its CLI and queue views.

:func:`kumocore.admin.routes.add_admin_routes` adds the endpoints (and ``/metrics``) to the
HTTP listener's aiohttp application; :mod:`kumocore.admin.cli` is the ``kumocore`` command
line over that API; :mod:`kumocore.admin.summary` builds the read-only views both share.
Access control is the HTTP listener's job (trusted hosts), not this package's.

Owns the operator's view and control of a running node over HTTP. It does not own the queues
it acts on (:mod:`kumocore.queue`), the status page (:mod:`kumocore.status`) or automation
actions (:mod:`kumocore.tsa`).
"""

from __future__ import annotations
