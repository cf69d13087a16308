"""The harness shared by ``tests/`` and ``bench/``: the parts that play the Internet.

A real ``kumocore serve`` process (:mod:`.serve_process` for tests; :mod:`.server`, the
reliability bench's restartable one, its generated policy in
:mod:`.server_policy`, the surrounding :mod:`.world`), the test DNS server
(:mod:`.dns_server`), recording SMTP sinks (:mod:`.sink`), hostile and authenticating MXes
(:mod:`.hostile_mx`, :mod:`.auth_mx`), a private ``redis-server`` (:mod:`.redis_server`),
raw SMTP clients (:mod:`.smtp_client` asynchronous, :mod:`.client` blocking) and the
multi-worker node of the status page tests (:mod:`.status_node`).
"""
