"""The live status page (``GET /status``): one HTML page, its data and its event stream.

* :mod:`~kumocore.status.responses` — recent receiver responses per site (bounded);
* :mod:`~kumocore.status.data` — one worker's status as JSON (merged for the node by
  :func:`kumocore.admin.merge.merge_statuses`);
* :mod:`~kumocore.status.page` — the server-rendered HTML (readable without JavaScript);
* :mod:`~kumocore.status.routes` — the page's routes and the Server-Sent Events stream
  (the data endpoint itself is an admin route, :mod:`kumocore.admin.routes`).

Static assets (``static/status.js``, ``static/status.css``) are package data, written for
kumocore: no build step, no CDN, no third-party code.
"""
