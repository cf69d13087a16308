"""The live status page (``GET /status``): one HTML page, its data and its event stream.

* :mod:`~kumocore.status.responses` — recent receiver responses per site (bounded);
* :mod:`~kumocore.status.snapshot` — one worker's status as JSON, and the node's;
* :mod:`~kumocore.status.page` — the server-rendered HTML (readable without JavaScript);
* :mod:`~kumocore.status.routes` — the routes and the Server-Sent Events stream.

Static assets (``static/status.js``, ``static/status.css``) are package data, written for
kumocore: no build step, no CDN, no third-party code.
"""
