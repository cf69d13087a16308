"""The live status page (``GET /status``): one HTML page, its data and its event stream.

* :mod:`~kumocore.status.responses` — recent receiver responses per site (bounded);
* :mod:`~kumocore.status.data` — one worker's status as JSON (merged for the node by
  :func:`kumocore.admin.merge.merge_statuses`);
* :mod:`~kumocore.status.page` — the server-rendered HTML (readable without JavaScript);
* :mod:`~kumocore.status.routes` — the page's routes and the Server-Sent Events stream
  (the data endpoint itself is an admin route, :mod:`kumocore.admin.routes`).

Static assets (``static/status.js``, ``static/status.css``) are package data, written for
kumocore: no build step, no CDN, no third-party code.

Owns the human-facing status page, its data view and event stream, and the bounded log of
recent receiver responses (one per node, held by the queue manager). It does not own the
queue counts and rates it shows (the queue manager and node metrics keep those) nor the
admin endpoint that serves its data (:mod:`kumocore.admin`).
"""
